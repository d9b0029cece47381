"""Running a plan: the training process(es) in their own process group, output teed, signals forwarded.

The plan's argv runs as a list (never a shell). Its output (secrets masked) streams to the terminal and
``output_dir/train.log``; SIGTERM/SIGINT/SIGHUP are forwarded. With ``prepare`` (``bgeft train``), the
processes start at once and stop at the start gate (train/gate.py) after their own checks, and bgeft
touches ``output_dir`` only when every one of them is ready.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Callable

from bgeft.config.redaction import Masker
from bgeft.console import plain, say, settings, show_tail
from bgeft.console_progress import WorkerLines
from bgeft.errors import UserError
from bgeft.safety import record_owned
from bgeft.train.gate import Gate
from bgeft.train.launch import Plan


def execute(plan: Plan, log_name: str = "train.log", secrets: list[str] | None = None,
            prepare: Callable[[dict], None] | None = None) -> int:
    """Run the plan, tee its output (secrets masked) into output_dir/train.log, forward signals.

    The worker runs in its own process group, so a Ctrl-C in the terminal reaches only bgeft, which
    forwards it once: the first SIGINT asks for a checkpoint at the end of the step, a second one
    stops at once. SIGHUP (the terminal closed) is forwarded as SIGTERM. Once a signal has stopped the
    worker, bgeft itself is only finishing (exit 130/143): a late second Ctrl-C is then ignored instead of
    killing bgeft mid-way through its last lines.

    ``prepare(found)`` (clear and create output_dir, write the manifest) runs once every training process
    is ready at the start gate, with what local rank 0 found (device, torch build); then train.log opens,
    starting with what they printed so far, and the gate opens. A refusal (gate.Refused), an exit before
    the gate or an error in ``prepare`` stops them there: output_dir untouched, the UserError raised."""
    gate = Gate(plan.device.kind, plan.nproc_per_node) if prepare is not None else None
    env = {**os.environ, **plan.env, **plan.secret_env, **(gate.env if gate else {}), "PYTHONUNBUFFERED": "1"}
    masker = Masker(secrets or [])
    log, early, ended = None, [], False  # early: output from before train.log may exist
    shown = WorkerLines()   # bgeft's lines and the training progress; everything goes to the log
    proc = subprocess.Popen(plan.argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            process_group=0)
    received: list[int] = []

    def forward(signum, frame):
        received.append(signum)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM if signum == signal.SIGHUP else signum)

    def pump(timeout: float | None = None) -> bool:
        """Copy one chunk of output to the terminal and the log (``timeout``: wait at most so long for
        it); False at the end of the output."""
        nonlocal ended
        if ended:
            time.sleep(timeout or 0)
            return False
        if timeout is not None and not select.select([proc.stdout], [], [], timeout)[0]:
            return True
        chunk = os.read(proc.stdout.fileno(), 65536)
        ended = not chunk
        text = masker.feed(chunk, final=ended)
        if log is None:
            early.append(text)
        else:
            log.write(text)
            log.flush()
        shown.write(text)
        return not ended

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        if gate is not None:
            try:
                prepare(gate.wait(proc, pump))
            except UserError as exc:
                if not settings.verbose and exc.exit_code == 1:  # it died before the gate: show its last lines
                    say("bgeft: the last lines of the training process:")
                    for line in plain(b"".join(early).decode(errors="replace")).splitlines()[-20:]:
                        say(f"  | {line[:400]}")
                raise
        log = open(plan.output_dir / log_name, "ab")
        log.write(b"".join(early))
        if gate is not None:
            gate.open()
        while pump():
            pass
        shown.close()
        code = proc.wait()
        if code not in (0, 130, 143) and not settings.verbose:
            show_tail(plan.output_dir / log_name, f"training exited with code {code}")
        return code
    finally:
        shown.close()
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_IGN if received else handler)
        if proc.poll() is None and log is None:  # refused or failed before the gate: nothing of it to keep
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        elif proc.poll() is None:  # bgeft itself is going down: do not leave the worker behind
            proc.terminate()
        if gate is not None:
            gate.close()
        if log is not None:
            log.close()
            record_owned(plan.output_dir)
