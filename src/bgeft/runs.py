"""Run directories: output-dir safety, resume, the run manifest, execution and what follows it.

Before training: refuse a non-empty ``output_dir`` unless ``--resume`` / ``--overwrite``; write
``bgeft_run.yaml`` (resolved recipe), ``command.txt`` and ``environment.json`` (versions, git sha,
device, sha256 of every train file), secrets redacted. Then run the plan's argv (never a shell),
stream its output to the terminal and ``train.log``, and forward SIGTERM/SIGINT to it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from .errors import UserError
from .launch import Plan

SECRET_KEY = re.compile(r"(token|secret|password|api[_-]?key|credential)", re.I)


def checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first. The Trainer writes trainer_state.json last, so a checkpoint
    without it was cut off mid-save (a kill, a pre-empted pod) and cannot be resumed from."""
    found = [p for p in output_dir.glob("checkpoint-*")
             if p.is_dir() and p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def prepare_output_dir(output_dir: Path, resume: bool, overwrite: bool) -> Path | None:
    """Return the checkpoint to resume from (None = start fresh)."""
    if resume and overwrite:
        raise UserError("--resume and --overwrite contradict each other: --resume continues the run in "
                        "output_dir, --overwrite deletes it; pass one")
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"training.output_dir {output_dir} is a file; choose a directory path")
    content = sorted(p.name for p in output_dir.iterdir()) if output_dir.is_dir() else []
    if not content:
        return None
    if overwrite:
        shutil.rmtree(output_dir)
        return None
    if resume:
        found = checkpoints(output_dir)
        return found[-1] if found else None
    shown = ", ".join(content[:5]) + (", ..." if len(content) > 5 else "")
    raise UserError(f"training.output_dir {output_dir} is not empty ({len(content)} entries: {shown}); "
                    "pass --resume to continue from its newest checkpoint, --overwrite to delete it first, "
                    "or set training.output_dir=NEW_DIR")


def redact(value, key: str = ""):
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if SECRET_KEY.search(key) and value not in (None, ""):
        return "***"
    return value


def redact_argv(argv: list[str]) -> list[str]:
    out, hide = [], False
    for arg in argv:
        out.append("***" if hide else arg)
        hide = arg.startswith("--") and bool(SECRET_KEY.search(arg))
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def environment(plan: Plan, recipe_data: dict, recipe_path: Path) -> dict:
    """envrecord.record (the same record `bgeft env --json` prints) plus this run's launch and data."""
    from .data.validate import ValidationReport, training_files
    from .envrecord import record

    train_data = (recipe_data.get("data") or {}).get("train_data") or []
    return {
        **record(plan.device, recipe_path.parent),
        "launch": {"nproc_per_node": plan.nproc_per_node, "nnodes": plan.layout.nnodes,
                   "node_rank": plan.layout.node_rank, "layout_from": plan.layout.source,
                   "deterministic": bool((recipe_data.get("launch") or {}).get("deterministic"))},
        # the files FlagEmbedding loads for train_data (a directory's .json/.jsonl files, not its subfolders)
        "train_data_sha256": {str(p): sha256_file(p) for p in training_files(train_data, ValidationReport())},
    }


def write_manifest(plan: Plan, recipe_data: dict, recipe_path: Path) -> None:
    out = plan.output_dir
    out.mkdir(parents=True, exist_ok=True)
    resolved = dict(redact(recipe_data))
    (out / "bgeft_run.yaml").write_text(
        f"# resolved from {recipe_path}\n" + yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True),
        encoding="utf-8")
    (out / "command.txt").write_text(plan.command_line(redact_argv(plan.argv)) + "\n", encoding="utf-8")
    (out / "environment.json").write_text(json.dumps(environment(plan, recipe_data, recipe_path), indent=2) + "\n",
                                          encoding="utf-8")


def secret_values(recipe_data: dict, environ=None) -> list[str]:
    """Values to mask in the output: secret-named recipe keys, and HF_TOKEN (FlagEmbedding's
    model arguments default their ``token`` to it and log it)."""
    environ = os.environ if environ is None else environ
    found = [str(v) for sec in recipe_data.values() if isinstance(sec, dict)
             for k, v in sec.items() if SECRET_KEY.search(str(k)) and v not in (None, "")]
    found += [environ[k] for k in environ if SECRET_KEY.search(k) and len(environ[k]) >= 6]
    return sorted(set(found), key=len, reverse=True)


class _Masker:
    """Replace secret values in a byte stream, holding back a partial line between chunks."""

    def __init__(self, secrets: list[str]):
        self.secrets = [s.encode() for s in secrets if s]
        self.pending = b""

    def feed(self, chunk: bytes, final: bool = False) -> bytes:
        data = self.pending + chunk
        cut = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1 if not final else len(data)
        if self.secrets and cut == 0 and len(data) < 65536:
            self.pending = data
            return b""
        cut = cut or len(data)
        out, self.pending = data[:cut], data[cut:]
        for secret in self.secrets:
            out = out.replace(secret, b"***")
        return out


def execute(plan: Plan, log_name: str = "train.log", secrets: list[str] | None = None) -> int:
    """Run the plan, tee its output (secrets masked) into output_dir/train.log, forward SIGTERM/SIGINT."""
    env = {**os.environ, **plan.env, "PYTHONUNBUFFERED": "1"}
    log_path = plan.output_dir / log_name
    masker = _Masker(secrets or [])
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(plan.argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def forward(signum, frame):  # noqa: ARG001
            if proc.poll() is None:
                proc.send_signal(signum)

        previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            out = sys.stdout.buffer
            while True:
                chunk = os.read(proc.stdout.fileno(), 65536)
                text = masker.feed(chunk, final=not chunk)
                out.write(text)
                out.flush()
                log.write(text)
                if not chunk:
                    break
            return proc.wait()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
