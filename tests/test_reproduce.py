"""`bgeft reproduce`: a recorded run re-launched from its manifest, drift checked first, --check
comparing the loss curves. Two CPU runs of the demo recipe with the same seed give identical loss at
every logged step, with one process and with two (gloo, launch.deterministic: true)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bgeft.errors import UserError
from bgeft.train import drift
from bgeft.train.launch import Device
from bgeft.train.reproduce import compare_curves, launch_overrides
from tests.test_train_integration import REPO, RETRIEVAL, bgeft

DEMO = REPO / "recipes" / "demo_cpu_m3.yaml"


def demo_overrides(out: Path, model: Path, data: Path = RETRIEVAL, *extra: str) -> list[str]:
    """The demo recipe, cut to 2 optimizer steps of the tiny model."""
    return [f"training.output_dir={out}", f"model.model_name_or_path={model}", f"data.train_data=[{data}]",
            "data.train_group_size=2", "data.query_max_len=16", "data.passage_max_len=48",
            "training.per_device_train_batch_size=2", "training.max_steps=2", "training.save_steps=2", *extra]


def losses(run: Path) -> list[float]:
    state = json.loads((run / "trainer_state.json").read_text())
    return [h["loss"] for h in state["log_history"] if "loss" in h]


@pytest.mark.parametrize("launch", [
    pytest.param([], id="1-process"),
    pytest.param(["launch.nproc_per_node=2", "launch.deterministic=true"], id="2-process-gloo-deterministic",
                 marks=pytest.mark.slow)])
def test_reproduce_check_gives_zero_difference(tmp_path, tiny_xlmr, launch):
    first, second = tmp_path / "run", tmp_path / "again"
    res = bgeft("train", DEMO, *demo_overrides(first, tiny_xlmr), *launch)
    assert res.returncode == 0, res.stderr[-3000:]
    res = bgeft("reproduce", first, "-o", second, "--check")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    # same machine, same packages, same data: nothing refused or re-planned (a commit made while the test
    # runs may show as a "git sha ... differs" row, which is information, not drift that matters)
    table = res.stdout.split("task:")[0]
    assert "REFUSE" not in table and "re-plan" not in table and "package " not in table
    assert "check: 2 logged step(s) compared" in res.stdout and "largest difference 0 " in res.stdout
    assert len(losses(first)) == 2 and losses(first) == losses(second)   # identical, not close
    env = json.loads((second / "environment.json").read_text())
    assert env["launch"]["nproc_per_node"] == (2 if launch else 1)
    assert env["launch"]["deterministic"] is bool(launch)
    # the new run's manifest is the recorded recipe with only output_dir changed
    assert (second / "bgeft_run.yaml").read_text().splitlines()[1:] == \
        (first / "bgeft_run.yaml").read_text().replace(str(first), str(second)).splitlines()[1:]


def _recorded_run(tmp_path, model, data) -> Path:
    """A run directory holding the manifest `bgeft train` writes before training (no training)."""
    from bgeft.train.api import prepare
    from bgeft.train.rundir import write_manifest

    out = tmp_path / "run"
    recipe, plan = prepare(str(DEMO), demo_overrides(out, model, data))
    write_manifest(plan, recipe.data, recipe.path)
    return out


def test_an_edited_training_row_refuses_naming_the_file_and_both_hashes(tmp_path, tiny_xlmr, run_cli):
    from bgeft.train.rundir import sha256_file

    data = tmp_path / "train.jsonl"
    shutil.copy(RETRIEVAL, data)
    run = _recorded_run(tmp_path, tiny_xlmr, data)
    before = sha256_file(data)
    lines = data.read_text().splitlines()
    row = json.loads(lines[0])
    row["query"] += " (edited)"
    data.write_text("\n".join([json.dumps(row)] + lines[1:]) + "\n")
    code, out, err = run_cli("reproduce", run, "--dry-run")
    assert code == 2
    assert (f"bgeft: error: bgeft reproduce refuses {run}: 1 change(s) since the run change what it computes:\n"
            f"  training file {data} changed since the run: recorded sha256 {before}, now sha256 {sha256_file(data)}\n"
            "Restore them, or pass --allow-drift to run anyway") in err
    assert f"data {data}" in out and "REFUSE" in out          # the drift table came first
    assert not (tmp_path / "run-reproduce").exists()
    # --allow-drift goes on to the plan
    code, out, err = run_cli("reproduce", run, "--dry-run", "--allow-drift")
    assert code == 0, err
    assert f"output_dir:  {tmp_path / 'run-reproduce'}" in out


def test_a_deleted_training_file_and_a_missing_manifest(tmp_path, tiny_xlmr, run_cli):
    data = tmp_path / "train.jsonl"
    shutil.copy(RETRIEVAL, data)
    run = _recorded_run(tmp_path, tiny_xlmr, data)
    data.unlink()
    code, _, err = run_cli("reproduce", run, "--dry-run")
    assert code == 2 and f"training file {data} changed since the run: recorded sha256 " in err
    assert "now the file is missing" in err
    (run / "environment.json").unlink()
    code, _, err = run_cli("reproduce", run)
    assert code == 2
    assert f"bgeft: error: {run}: no environment.json: not a run made by `bgeft train`" in err
    code, _, err = run_cli("reproduce", tmp_path / "nowhere")
    assert code == 2 and "not a directory; give the output_dir of a finished `bgeft train` run" in err


def test_output_inside_the_recorded_run_is_refused(tmp_path, tiny_xlmr, run_cli):
    run = _recorded_run(tmp_path, tiny_xlmr, RETRIEVAL)
    code, _, err = run_cli("reproduce", run, "-o", run / "sub", "--dry-run")
    assert code == 2 and f"-o {run / 'sub'}: the new run cannot go into the recorded run {run}" in err


def test_env_json_is_the_record_environment_json_holds(tmp_path, tiny_xlmr, run_cli):
    run = _recorded_run(tmp_path, tiny_xlmr, RETRIEVAL)
    recorded = json.loads((run / "environment.json").read_text())
    code, out, _ = run_cli("env", "--json")
    assert code == 0
    now = json.loads(out)
    assert set(recorded) - set(now) == {"launch", "train_data_sha256"} and set(now) <= set(recorded)
    for key in ("python", "packages", "torch_build", "device", "image", "git_sha"):
        assert now[key] == recorded[key], key
    assert now["torch_build"]["torch"] == now["packages"]["torch"]


RECORD = {"python": "3.11.7", "packages": {"FlagEmbedding": "1.4.2", "transformers": "5.23.0", "torch": "2.13.0",
                                           "peft": "0.21.2"},
          "torch_build": {"cuda": "12.6"}, "device": {"kind": "cuda", "count": 4, "name": "H100"},
          "git_sha": "a" * 40, "image": {"base_digest": "sha256:" + "1" * 64}, "launch": {"nproc_per_node": 4}}


def test_drift_verdicts():
    now = json.loads(json.dumps(RECORD))
    now["packages"].update(transformers="5.24.0", peft="0.22.0")
    now["device"]["count"] = 2
    now["image"]["base_digest"] = "sha256:" + "2" * 64
    rows = {r[0]: r for r in drift.compare(RECORD, now)}
    assert rows["package transformers"] == ("package transformers", "5.23.0", "5.24.0", "REFUSE")
    assert rows["package peft"][3] == "differs" and rows["package FlagEmbedding"][3] == "same"
    assert rows["device count"] == ("device count", "4", "2", "re-plan")
    assert rows["image base_digest"][3] == "differs" and rows["torch build cuda"][3] == "same"
    assert drift.refusals(rows.values()) == ["transformers changed since the run: recorded 5.23.0, now 5.24.0"]
    table = drift.render(list(rows.values()))
    assert table.splitlines()[0].split() == ["what", "recorded", "now", "verdict"]
    assert "package FlagEmbedding" not in table and "other recorded facts match this machine" in table


def test_a_changed_device_count_re_plans_with_a_note():
    notes: list[str] = []
    assert launch_overrides(RECORD, Device("cuda", 2, True, "H100"), notes) == ["launch.nproc_per_node=auto"]
    assert notes == ["recorded with 4 processes per node, this machine has 2 cuda device(s): re-planned to 2 "
                     "(the global batch changes)"]
    notes = []
    assert launch_overrides(RECORD, Device("cuda", 8, True, "H100"), notes) == ["launch.nproc_per_node=4"]
    assert notes == []
    assert launch_overrides(RECORD, Device("cpu", 1), notes) == ["launch.device=auto", "launch.nproc_per_node=4"]
    assert "recorded on cuda, this machine has cpu" in notes[0]


def test_compare_curves_reports_the_largest_difference():
    def state(*loss, final=0.5):
        return {"log_history": [{"step": i + 1, "loss": v, "learning_rate": 1e-5} for i, v in enumerate(loss)]
                + [{"step": len(loss), "train_loss": final, "train_runtime": 9.0}]}
    assert compare_curves(state(1.0, 0.8), state(1.0, 0.8)) == (0.0, "nowhere", [])
    worst, where, problems = compare_curves(state(1.0, 0.8), state(1.0, 0.5, final=0.45))
    assert (round(worst, 6), where, problems) == (0.3, "loss at step 2", [])
    assert compare_curves(state(1.0, 0.8), state(1.0))[2] == ["logged steps differ: recorded [1, 2], new [1]"]


def test_deterministic_switch_sets_what_each_device_needs(tmp_path):
    from bgeft.config import recipe as recipes
    from bgeft.train.launch import make_plan

    r = recipes.validate(recipes.apply_overrides(recipes.load(DEMO), [f"training.output_dir={tmp_path}",
                                                                      "launch.deterministic=true"]))
    cuda = make_plan(r, Device("cuda", 1, True, "H100"), env={})
    assert cuda.env["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8" and cuda.env["PYTHONHASHSEED"] == "42"
    assert cuda.argv[cuda.argv.index("--full_determinism") + 1] == "True"
    npu = make_plan(r, Device("npu", 1, True, "910B"), env={})
    assert npu.env["HCCL_DETERMINISTIC"] == "true" and "CUBLAS_WORKSPACE_CONFIG" not in npu.env
    assert any(n.startswith("deterministic: full_determinism and") for n in npu.notes)
    off = make_plan(recipes.validate(recipes.apply_overrides(recipes.load(DEMO), [f"training.output_dir={tmp_path}"])),
                    Device("cuda", 1, True, "H100"), env={})
    assert "--full_determinism" not in off.argv and "CUBLAS_WORKSPACE_CONFIG" not in off.env


def test_deterministic_must_be_a_boolean(tmp_path):
    from bgeft.config import recipe as recipes

    with pytest.raises(UserError, match=r"launch.deterministic: expected true \| false .*, got 'always'"):
        recipes.validate(recipes.apply_overrides(recipes.load(DEMO), ["launch.deterministic=always"]))


def test_environment_records_the_image_record_inside_an_image(tmp_path, monkeypatch):
    from bgeft.train import envrecord

    image = {"flavor": "cuda", "base_image": "pytorch/pytorch:2.13.0-cuda12.6-cudnn9-devel@sha256:" + "a" * 64,
             "base_digest": "sha256:" + "a" * 64, "version": "0.1.0", "revision": "b" * 40,
             "source": "unknown", "created": "2026-01-01T00:00:00Z"}
    path = tmp_path / "bgeft-image.json"
    path.write_text(json.dumps(image))
    monkeypatch.setattr(envrecord, "IMAGE_RECORD", path)
    assert envrecord.record(Device("cpu", 1), tmp_path)["image"] == image
    path.write_text("{broken")
    assert envrecord.record(Device("cpu", 1), tmp_path)["image"] is None
    # and a changed base digest shows in the drift table
    rows = {r[0]: r for r in drift.compare({"image": image}, {"image": {**image, "base_digest": "sha256:" + "c" * 64}})}
    assert rows["image base_digest"][3] == "differs"
