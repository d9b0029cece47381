"""Secrets (issue 9 items 9 and 10): a token in the recipe reaches the worker by environment and appears in no
argv, printed plan, --dry-run, log, bgeft_run.yaml, command.txt or training_args.bin; masking is by exact key and
by value, so ``tokenizer_name`` / ``average_tokens_across_devices`` stay readable and bgeft_run.yaml validates."""
from __future__ import annotations

import copy
import pickle
from dataclasses import dataclass

from bgeft.config.redaction import SECRET_ENV, redact, secret_values
from tests.hostile.conftest import PLANTED_SECRET, TreeGuard, assert_no_secret
from tests.test_train_integration import bgeft, write_recipe

TOKENS = [f"model.token={PLANTED_SECRET}", f"training.hub_token={PLANTED_SECRET}"]


def test_dry_run_plan_has_no_secret(run_cli, tmp_path, tiny_xlmr):
    recipe = write_recipe(tmp_path, "embedder.base", tiny_xlmr)
    guard = TreeGuard(tmp_path)
    code, out, err = run_cli("train", recipe, *TOKENS, "--dry-run")
    guard.assert_only()
    assert code == 0, err
    assert "--token" not in out and "--hub_token" not in out and "BGEFT_SECRET" not in out
    assert_no_secret(out, err)


def test_plan_carries_secrets_only_in_its_hidden_environment(tmp_path, tiny_xlmr):
    from bgeft.train.api import prepare
    from bgeft.train.launch import Device

    recipe = write_recipe(tmp_path, "embedder.base", tiny_xlmr)
    _, plan = prepare(str(recipe), TOKENS, device=Device("cpu", 1, True, "cpu"), env={})
    assert PLANTED_SECRET not in " ".join(plan.argv) and PLANTED_SECRET not in plan.render()
    assert PLANTED_SECRET not in repr(plan)
    assert plan.secret_env == {"BGEFT_SECRET_MODEL_TOKEN": PLANTED_SECRET, "BGEFT_SECRET_HUB_TOKEN": PLANTED_SECRET}


def test_worker_restores_secrets_and_pickles_args_without_hub_token():
    from transformers import TrainingArguments

    from bgeft.train.worker import _restore_secrets

    @dataclass
    class ModelArgs:
        token: str | None = None

    model_args = ModelArgs()
    training_args = TrainingArguments(output_dir="unused", use_cpu=True, report_to="none")
    environ = {name: PLANTED_SECRET for name in SECRET_ENV.values()}
    _restore_secrets(model_args, training_args, environ)
    assert environ == {}  # taken out of the environment: not inherited by anything the worker starts
    assert model_args.token == PLANTED_SECRET and training_args.hub_token == PLANTED_SECRET
    saved = pickle.dumps(training_args)
    assert PLANTED_SECRET.encode() not in saved
    loaded = pickle.loads(saved)
    assert type(loaded) is TrainingArguments and loaded.hub_token is None and loaded.output_dir == "unused"
    assert copy.deepcopy(training_args).hub_token is None


def test_masking_is_by_exact_key_and_value():
    recipe = {"model": {"token": PLANTED_SECRET, "tokenizer_name": "tok-dir"},
              "training": {"hub_token": PLANTED_SECRET, "average_tokens_across_devices": False, "run_name": "r"}}
    assert redact(recipe) == {"model": {"token": "***", "tokenizer_name": "tok-dir"},
                              "training": {"hub_token": "***", "average_tokens_across_devices": False, "run_name": "r"}}
    assert secret_values(recipe, environ={"TOKENIZERS_PARALLELISM": "false", "OPENAI_API_KEY": "sk-123456789",
                                          "PATH": "/usr/bin"}) == [PLANTED_SECRET, "sk-123456789"]


def test_training_with_tokens_leaks_them_nowhere(tmp_path, tiny_xlmr):
    recipe = write_recipe(tmp_path, "embedder.base", tiny_xlmr, steps=2, save_steps=1)
    result = bgeft("train", recipe, *TOKENS)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "out"
    assert (out / "training_args.bin").is_file() and list(out.glob("checkpoint-*/training_args.bin"))
    assert_no_secret(result.stdout, result.stderr, dirs=[tmp_path])
    # the worker got the token: FlagEmbedding logs its model arguments, masked by value
    assert "token='***'" in (out / "train.log").read_text()
    run_yaml = (out / "bgeft_run.yaml").read_text()
    assert "token: '***'" in run_yaml and "hub_token: '***'" in run_yaml
    check = bgeft("validate", out / "bgeft_run.yaml")
    assert check.returncode == 0, check.stderr
