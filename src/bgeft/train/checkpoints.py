"""Is a checkpoint whole? ``--resume`` trusts the newest checkpoint only when every file it would load is
complete: a kill or a full disk during a save leaves a truncated ``model.safetensors`` (or optimizer
state) behind, and loading it ends in a traceback deep inside torch. Such a checkpoint is skipped, with a
message, for the previous complete one.

Checks are structural and cheap (no tensor is read): a safetensors file's size must equal its 8-byte
header length + header + the largest data offset in the header; torch's ``.pt``/``.bin`` files are zip
archives whose central directory sits at the end (a truncated one has none); JSON files must parse.
"""
from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

MAX_HEADER = 100 * 1024 * 1024  # safetensors caps its JSON header at 100 MB


def checkpoints(output_dir: Path) -> list[Path]:
    """Checkpoints that finished saving, oldest first. The Trainer writes trainer_state.json last, so a
    checkpoint without it was cut off mid-save (a kill, a pre-empted pod) and cannot be resumed from."""
    found = [p for p in output_dir.glob("checkpoint-*")
             if p.is_dir() and p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def trainer_state(run_dir: Path) -> dict | None:
    """The run's trainer_state.json: the final one, else the newest complete checkpoint's."""
    candidates = [run_dir / "trainer_state.json"] + [c / "trainer_state.json" for c in reversed(checkpoints(run_dir))]
    for path in candidates:
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    return None


def safetensors_problem(path: Path) -> str | None:
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return f"{path.name} is truncated ({size} bytes, no header)"
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER or 8 + n > size:
                return f"{path.name} is truncated ({size} bytes; its header alone needs {8 + n})"
            header = json.loads(f.read(n))
    except (OSError, ValueError) as exc:
        return f"{path.name} cannot be read ({exc})"
    ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__" and isinstance(t, dict)
            and isinstance(t.get("data_offsets"), list) and len(t["data_offsets"]) == 2]
    want = 8 + n + max(ends, default=0)
    if size != want:
        return f"{path.name} is truncated ({size} of {want} bytes)"
    return None


def file_problem(path: Path) -> str | None:
    if path.suffix == ".safetensors":
        return safetensors_problem(path)
    if path.suffix in (".pt", ".pth", ".bin"):
        # torch.save writes a zip archive; a legacy (non-zip) pickle cannot be checked cheaply
        with open(path, "rb") as f:
            is_zip_start = f.read(4) == b"PK\x03\x04"
        if is_zip_start and not zipfile.is_zipfile(path):
            return f"{path.name} is truncated (its zip directory is missing)"
        return None
    if path.suffix == ".json":
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return f"{path.name} is not complete JSON"
    return None


def checkpoint_problem(ckpt: Path) -> str | None:
    """Why ``ckpt`` cannot be resumed from (None when every file is whole)."""
    for path in sorted(ckpt.rglob("*")):
        if path.is_file():
            problem = file_problem(path)
            if problem:
                return problem
    return None


def usable_checkpoint(found: list[Path], out=None) -> Path | None:
    """The newest of ``found`` (oldest first) whose files are whole; says which ones were skipped."""
    from bgeft.console import stream

    out = out or stream()
    for ckpt in reversed(found):
        problem = checkpoint_problem(ckpt)
        if problem is None:
            return ckpt
        print(f"bgeft: {ckpt.name} is incomplete ({problem}); resuming from the previous complete "
              "checkpoint instead", file=out, flush=True)
    return None
