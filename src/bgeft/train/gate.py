"""The start gate between ``bgeft train`` and its training processes.

bgeft starts the training process(es) before its own checks, so their imports (torch, transformers,
FlagEmbedding: seconds) overlap the data check and the manifest instead of following them, and bgeft
itself never imports torch. Each training process parses its arguments with FlagEmbedding's own
dataclasses (the one ``HfArgumentParser`` parse of a run) and checks the device with torch, then stops
at the gate: it reports ready (with what it found: the device, the torch build) or the problems that
refuse the run, and waits for bgeft's word. bgeft touches ``output_dir`` (``--overwrite``, the manifest)
only once every local process is ready, and then opens the gate; a refusal leaves ``output_dir`` as it
was. The gate is a private directory, not a pipe: torchrun's workers do not inherit bgeft's descriptors.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bgeft.errors import UserError

ENV_DIR = "BGEFT_GATE"              # the gate directory
ENV_DEVICE = "BGEFT_GATE_DEVICE"    # the device kind the plan is for
ENV_PROCESSES = "BGEFT_GATE_PROCESSES"  # training processes on this node
POLL_SECONDS = 0.02


class Refused(UserError):
    """The training process found problems before it started (nothing was written)."""

    def __init__(self, problems: list[str]):
        super().__init__("\n  ".join(problems))
        self.problems = problems


def _write(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)  # the reader never sees half a file


class Gate:
    """bgeft's side: ``env`` goes to the training processes, ``poll`` says when they are ready."""

    def __init__(self, device_kind: str, processes: int):
        self.path = Path(tempfile.mkdtemp(prefix="bgeft-gate-"))
        self.processes = processes
        self.env = {ENV_DIR: str(self.path), ENV_DEVICE: device_kind, ENV_PROCESSES: str(processes)}

    def poll(self) -> dict | None:
        """What local rank 0 found, once every local process is ready; None while one is still starting.
        Raises Refused with every process's problems (each problem once)."""
        refused = sorted(self.path.glob("refused.*"))
        if refused:
            problems: list[str] = []
            for f in refused:
                problems += [p for p in json.loads(f.read_text(encoding="utf-8"))["problems"] if p not in problems]
            raise Refused(problems)
        if len(list(self.path.glob("ready.*"))) < self.processes:
            return None
        return json.loads((self.path / "ready.0").read_text(encoding="utf-8"))

    def wait(self, proc, pump: Callable[[float], bool]) -> dict:
        """``pump(timeout)`` the processes' output (False at its end) until every one is ready; returns what
        local rank 0 found. Raises Refused, or UserError when they exit before the gate: nothing was written."""
        while True:
            found = self.poll()
            if found is not None:
                return found
            if proc.poll() is not None:
                while pump(POLL_SECONDS):
                    pass
                self.poll()  # problems reported just before the exit
                code = proc.returncode
                if code in (130, 143, -2, -15):
                    ctrl_c = code in (130, -2)
                    raise UserError(f"training was {'interrupted (Ctrl-C)' if ctrl_c else 'stopped (SIGTERM)'} before "
                                    "it started; output_dir was not touched", exit_code=130 if ctrl_c else 143)
                raise UserError(f"the training process exited with code {code} before training started; output_dir "
                                "was not touched", exit_code=1)
            if not pump(POLL_SECONDS * 5):
                time.sleep(POLL_SECONDS)

    def open(self) -> None:
        _write(self.path / "go", {"go": True})

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def wait_at_gate(facts: dict, problems: list[str], stopping: Callable[[], bool], environ=os.environ) -> bool:
    """The training process's side: report ready (``facts``) or refused (``problems``), then wait for the
    word. True: train. False: stop without training (refused, bgeft gone, or ``stopping()``: a signal).
    Without a gate (the worker run by hand) it is True at once unless there are problems."""
    where = environ.pop(ENV_DIR, None)
    if where is None:
        return not problems
    gate, rank = Path(where), environ.get("LOCAL_RANK", "0")
    _write(gate / (f"refused.{rank}" if problems else f"ready.{rank}"), {"problems": problems} if problems else facts)
    if problems:
        return False
    while not (gate / "go").is_file():
        if stopping() or not gate.is_dir():
            return False
        time.sleep(POLL_SECONDS)
    return True


def gate_request(environ=os.environ) -> tuple[str | None, int]:
    """(device kind, processes on this node) the plan asks of this machine; kind None without a gate."""
    processes = environ.get("LOCAL_WORLD_SIZE") or environ.get(ENV_PROCESSES) or "1"
    return environ.get(ENV_DEVICE), int(processes)
