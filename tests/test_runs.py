"""Run directories: refusal, resume lookup, overwrite, redaction and log masking (no training)."""
from __future__ import annotations

import pytest

from bgeft.config.redaction import Masker, redact, secret_values
from bgeft.errors import UserError
from bgeft.train.rundir import checkpoints, prepare_output_dir


def test_empty_or_missing_output_dir_starts_fresh(tmp_path):
    assert prepare_output_dir(tmp_path / "new", resume=False, overwrite=False) is None
    (tmp_path / "empty").mkdir()
    assert prepare_output_dir(tmp_path / "empty", resume=False, overwrite=False) is None


def test_resume_picks_the_newest_complete_checkpoint_numerically(tmp_path):
    for step in (5, 40, 300):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-final").mkdir()
    (tmp_path / "checkpoint-400").mkdir()  # cut off mid-save: no trainer_state.json
    assert checkpoints(tmp_path)[-1].name == "checkpoint-300"
    assert prepare_output_dir(tmp_path, resume=True, overwrite=False) == tmp_path / "checkpoint-300"


def test_refusal_message_and_contradictory_flags(tmp_path):
    (tmp_path / "model.safetensors").write_text("x")
    with pytest.raises(UserError, match=r"is not empty \(1 entries: model.safetensors\); pass --resume"):
        prepare_output_dir(tmp_path, resume=False, overwrite=False)
    with pytest.raises(UserError, match=r"--resume and --overwrite contradict each other"):
        prepare_output_dir(tmp_path, resume=True, overwrite=True)
    (tmp_path / "bgeft_run.yaml").write_text("task: x\n")  # a run directory bgeft made
    assert prepare_output_dir(tmp_path, resume=False, overwrite=True) is None
    assert list(tmp_path.iterdir()) == []


def test_only_node_rank_0_clears_or_refuses_a_shared_output_dir(tmp_path):
    (tmp_path / "bgeft_run.yaml").write_text("task: x\n")  # node 0 got there first
    (tmp_path / "train.log").write_text("node 0\n")
    for overwrite in (False, True):
        assert prepare_output_dir(tmp_path, resume=False, overwrite=overwrite, node_rank=1) is None
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bgeft_run.yaml", "train.log"]
    assert prepare_output_dir(tmp_path, resume=False, overwrite=True, node_rank=0) is None
    assert list(tmp_path.iterdir()) == []


def test_dry_run_makes_every_refusal_and_touches_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="is the working directory; bgeft never writes over it"):
        prepare_output_dir(tmp_path, resume=False, overwrite=True, dry_run=True)
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="was not made by bgeft"):
        prepare_output_dir(run, resume=False, overwrite=True, dry_run=True)
    (run / "bgeft_run.yaml").write_text("task: x\n")
    (run / "notes.txt").unlink()
    assert prepare_output_dir(run, resume=False, overwrite=True, dry_run=True) is None
    assert prepare_output_dir(tmp_path / "new", resume=False, overwrite=False, dry_run=True) is None
    assert (run / "bgeft_run.yaml").exists() and not (tmp_path / "new").exists()


def test_output_dir_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match=r"training.output_dir .*/f is a file; choose a directory path"):
        prepare_output_dir(tmp_path / "f", resume=False, overwrite=False)


def test_redaction_by_exact_key_only():
    recipe = {"model": {"token": "hf_x", "tokenizer_name": "tok", "cache_dir": None},
              "training": {"hub_token": "hf_y", "average_tokens_across_devices": False}}
    assert redact(recipe) == {"model": {"token": "***", "tokenizer_name": "tok", "cache_dir": None},
                              "training": {"hub_token": "***", "average_tokens_across_devices": False}}


def test_secret_values_include_hf_token_and_masking_spans_chunks():
    secrets = secret_values({"model": {"token": "hf_recipe_tok"}, "training": {"average_tokens_across_devices": False}},
                            environ={"HF_TOKEN": "hf_env_token", "HOME": "/r", "TOKENIZERS_PARALLELISM": "false"})
    assert secrets == ["hf_recipe_tok", "hf_env_token"]
    masker = Masker(secrets)
    out = masker.feed(b"token='hf_env_") + masker.feed(b"token' ok\r 50%") + masker.feed(b"", final=True)
    assert out == b"token='***' ok\r 50%"
