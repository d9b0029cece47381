"""The start gate (train/gate.py) and what it promises `bgeft train`: checks first, output_dir after.

The parent never imports torch, transformers or FlagEmbedding; the training process parses its
arguments once, checks the device, and a refusal there leaves output_dir untouched."""
from __future__ import annotations

import os
import select
import subprocess
import sys
import time

import pytest

from bgeft.errors import UserError
from bgeft.train.gate import Gate, Refused

# a stand-in training process: reports FACTS or PROBLEMS at the gate, then "trains" by writing a file
WORKER = """
import sys, pathlib
from bgeft.train.gate import wait_at_gate
problems = sys.argv[2:]
if wait_at_gate({"device": {"kind": "cpu"}}, problems, lambda: False):
    pathlib.Path(sys.argv[1]).write_text("trained")
    print("trained")
"""


def start(gate, *args, env=None):
    return subprocess.Popen([sys.executable, "-c", WORKER, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env={**os.environ, **gate.env, **(env or {})})


def pump_into(proc, lines):
    """bgeft's side of the output while waiting: one chunk, False at its end."""
    def pump(timeout):
        if not select.select([proc.stdout], [], [], timeout)[0]:
            return True
        chunk = proc.stdout.read1(65536)
        lines.append(chunk)
        return bool(chunk)
    return pump


def test_nothing_runs_past_the_gate_until_bgeft_opens_it(tmp_path):
    gate = Gate("cpu", 1)
    marker = tmp_path / "trained"
    proc = start(gate, marker)
    try:
        assert gate.wait(proc, pump_into(proc, [])) == {"device": {"kind": "cpu"}}
        time.sleep(0.2)
        assert not marker.exists() and proc.poll() is None  # waiting at the gate
        gate.open()
        assert proc.wait(timeout=60) == 0 and marker.read_text() == "trained"
    finally:
        gate.close()
    assert not gate.path.exists()


def test_every_process_must_be_ready_and_problems_refuse_the_run(tmp_path):
    gate = Gate("cpu", 2)
    ready = start(gate, tmp_path / "a", env={"LOCAL_RANK": "0"})
    refused = start(gate, tmp_path / "b", "bf16 was asked for but this cuda device (T4) does not support it",
                    env={"LOCAL_RANK": "1"})
    try:
        with pytest.raises(Refused, match=r"bf16 was asked for but this cuda device \(T4\)") as info:
            gate.wait(ready, pump_into(ready, []))
        assert info.value.problems == ["bf16 was asked for but this cuda device (T4) does not support it"]
        assert refused.wait(timeout=60) == 0 and not (tmp_path / "b").exists()
    finally:
        ready.kill()
        gate.close()
    assert not (tmp_path / "a").exists()


def test_a_process_that_dies_before_the_gate_is_reported_with_its_code():
    gate = Gate("cpu", 1)
    proc = subprocess.Popen([sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env={**os.environ, **gate.env})
    out: list[bytes] = []
    try:
        with pytest.raises(UserError, match="the training process exited with code 3 before training started"):
            gate.wait(proc, pump_into(proc, out))
    finally:
        gate.close()
    assert b"boom" in b"".join(out)


# `bgeft train` in a fresh interpreter, the device probe faked: its modules afterwards, and its exit code
PARENT = """
import sys
from bgeft.models import devices
import bgeft.train.api as api
api.probe_device = lambda: devices.Device("cuda", 8, True, "NVIDIA A100-SXM4-80GB")
from bgeft.cli.main import main
code = main(sys.argv[1:])
print("MODULES", *sorted(m for m in ("torch", "transformers", "FlagEmbedding") if m in sys.modules))
print("EXIT", code)
"""


def test_bgeft_plans_and_checks_without_importing_torch_and_the_worker_rechecks_the_device(tmp_path, tiny_xlmr):
    """The plan (a faked 8-GPU machine), the data check and --dry-run's worker check: bgeft itself imports
    none of torch, transformers, FlagEmbedding; the training process, with torch, sees no GPU and refuses."""
    from tests.test_train_integration import write_recipe

    recipe = write_recipe(tmp_path, "embedder.base", tiny_xlmr)
    # fp32: HF's own TrainingArguments would refuse bf16 on this CPU machine before the device check
    result = subprocess.run([sys.executable, "-c", PARENT, "train", str(recipe), "--dry-run", "launch.precision=fp32"],
                            capture_output=True,
                            text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)
    assert result.stdout.splitlines()[-2:] == ["MODULES", "EXIT 2"], result.stdout[-2000:] + result.stderr[-3000:]
    assert (f"bgeft: error: 1 problem(s) launching {recipe} on this machine (found by the training process before it "
            "started; nothing was written):\n  the plan is for cuda (the device tools list it) but torch sees cpu "
            "here") in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_refusal_in_the_worker_leaves_output_dir_untouched(tmp_path, tiny_xlmr):
    """--overwrite of a run directory bgeft made, with arguments FlagEmbedding's dataclasses reject: the
    training process refuses at the gate, before bgeft clears anything."""
    from tests.test_train_integration import bgeft, write_recipe

    recipe = write_recipe(tmp_path, "embedder.base", tiny_xlmr)
    out = tmp_path / "out"
    out.mkdir()
    before = {"bgeft_run.yaml": "task: embedder.base\n", "train.log": "an earlier run\n"}
    for name, text in before.items():
        (out / name).write_text(text)
    result = bgeft("train", recipe, "--overwrite", "training.load_best_model_at_end=true", "training.eval_strategy=no")
    assert result.returncode == 2, result.stderr[-3000:]
    assert (f"{recipe}: training: FlagEmbedding's AbsEmbedderTrainingArguments rejects it: "
            "--load_best_model_at_end requires the save and eval strategy to match") in result.stderr
    assert "Traceback" not in result.stderr
    assert {p.name: p.read_text() for p in out.iterdir()} == before


def test_dry_run_checks_a_torchrun_plan_as_one_rank_of_it(tmp_path, tiny_xlmr):
    """Two CPU processes: the plan adds ``--ddp_backend gloo``, whose parse starts a process group; the
    --dry-run check process gets the environment torchrun would give one rank (it once failed with
    "Default process group has not been initialized")."""
    from tests.test_train_integration import bgeft, write_recipe

    recipe = write_recipe(tmp_path, "embedder.base", tiny_xlmr)
    result = bgeft("train", recipe, "--dry-run", "launch.nproc_per_node=2", "launch.precision=fp32")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "-m torch.distributed.run --nproc_per_node 2 --standalone" in result.stdout
    assert "--ddp_backend gloo" in result.stdout and "process group" not in result.stderr
    assert not (tmp_path / "out").exists()
