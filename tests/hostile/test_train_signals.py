"""Ctrl-C during training (issue 9 item 5) and a truncated newest checkpoint (item 4): the first SIGINT saves
a checkpoint at the end of the step and exits 130 with no traceback, a second stops at once, and --resume
skips a checkpoint whose files are cut off for the previous complete one, with a message."""
from __future__ import annotations

import json
import signal
import subprocess
import time

from bgeft.train.checkpoints import checkpoint_problem
from tests.test_train_integration import bgeft, start_training, write_recipe


def _start(tmp_path, tiny_xlmr, until):
    recipe = write_recipe(tmp_path, "embedder.base", tiny_xlmr, steps=400, save_steps=2)
    log = open(tmp_path / "console.txt", "w")
    proc = start_training(recipe, until, stdout=log, stderr=subprocess.STDOUT)
    return recipe, proc, log


def _steps(out):
    return sorted(int(p.parent.name.split("-")[1]) for p in out.glob("checkpoint-*/trainer_state.json"))


def test_ctrl_c_checkpoints_exits_130_and_a_truncated_checkpoint_is_skipped_on_resume(tmp_path, tiny_xlmr):
    out = tmp_path / "out"
    recipe, proc, log = _start(tmp_path, tiny_xlmr, lambda: len(_steps(out)) >= 1)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=300)
    log.close()
    console = (tmp_path / "console.txt").read_text()
    assert proc.returncode == 130, console[-3000:]
    assert "Traceback" not in console and "KeyboardInterrupt" not in console
    assert "bgeft.train.worker: received SIGINT; saving a checkpoint at the end of this step" in console
    assert f"bgeft: training was interrupted (Ctrl-C); full log: {out / 'train.log'}; continue with --resume" in console
    steps = _steps(out)
    assert len(steps) >= 2 and steps[-1] < 400 and not (out / "README.md").exists()
    newest = out / f"checkpoint-{steps[-1]}"
    weights = newest / "model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as f:
        f.truncate(size // 2)  # a kill or a full disk in the middle of the save
    assert checkpoint_problem(newest) == f"model.safetensors is truncated ({size // 2} of {size} bytes)"
    result = bgeft("train", recipe, "--resume", f"training.max_steps={steps[-2] + 1}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (f"bgeft: checkpoint-{steps[-1]} is incomplete (model.safetensors is truncated ({size // 2} of {size} "
            "bytes)); resuming from the previous complete checkpoint instead") in result.stderr
    assert f"resuming from {out / f'checkpoint-{steps[-2]}'}" in result.stdout
    state = json.loads((out / f"checkpoint-{steps[-2] + 1}" / "trainer_state.json").read_text())
    assert state["global_step"] == steps[-2] + 1


def test_second_ctrl_c_stops_at_once(tmp_path, tiny_xlmr):
    log_path = tmp_path / "out" / "train.log"
    recipe, proc, log = _start(tmp_path, tiny_xlmr,
                               lambda: log_path.is_file() and "'loss'" in log_path.read_text(errors="replace"))
    proc.send_signal(signal.SIGINT)
    # the second Ctrl-C must reach the worker while it finishes its step: send it the moment the worker
    # says it saw the first (a fixed pause lost that race on a loaded runner: the step had already ended)
    deadline = time.monotonic() + 60
    while "received SIGINT" not in (tmp_path / "console.txt").read_text(errors="replace"):
        assert time.monotonic() < deadline and proc.poll() is None, "the worker never reported the first SIGINT"
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    log.close()
    console = (tmp_path / "console.txt").read_text()
    assert proc.returncode == 130, console[-3000:]
    assert "bgeft.train.worker: second SIGINT; stopping now (the last saved checkpoint stays resumable)" in console
    assert "Traceback" not in console
