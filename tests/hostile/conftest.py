"""Shared tools of the hostile-input suite (issue 9): every case proves "no harm" the same way.

* ``tree_guard(root, ...)`` snapshots a tree (type, size, sha256 or link target of every entry);
  ``guard.assert_only(*allowed)`` then fails when anything outside ``allowed`` (paths or folders, each
  absolute or relative to the first root) was created, changed or deleted.
* ``PLANTED_SECRET`` and ``assert_no_secret(*texts, dirs=...)``: a planted secret must appear in no line
  printed and no file written (binary files included: ``training_args.bin`` is a pickle).
"""
from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

PLANTED_SECRET = "hf_PLANTEDsecretValue0123456789abcdefXYZ"


def _entry(path: Path) -> str:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return f"link:{os.readlink(path)}"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    if not stat.S_ISREG(st.st_mode):
        return f"special:{stat.S_IFMT(st.st_mode)}"
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"file:{st.st_size}:{h.hexdigest()}"


def snapshot(*roots: Path) -> dict[Path, str]:
    """Every entry under ``roots`` (symlinks not followed) -> what it is."""
    out: dict[Path, str] = {}
    for root in roots:
        root = Path(root)
        if not os.path.lexists(root):
            continue
        out[root] = _entry(root)
        for base, dirs, files in os.walk(root):
            for name in dirs + files:
                p = Path(base) / name
                out[p] = _entry(p)
    return out


class TreeGuard:
    def __init__(self, *roots: Path):
        self.roots = [Path(r) for r in roots]
        self.before = snapshot(*self.roots)

    def changes(self, *allowed: str | Path) -> list[str]:
        base = self.roots[0]
        keep = [Path(a) if Path(a).is_absolute() else base / a for a in allowed]
        after = snapshot(*self.roots)
        diff = []
        for path in sorted(set(self.before) | set(after)):
            if self.before.get(path) == after.get(path):
                continue
            if any(path == k or k in path.parents for k in keep):
                continue
            what = "created" if path not in self.before else "deleted" if path not in after else "changed"
            diff.append(f"{what}: {path}")
        return diff

    def assert_only(self, *allowed: str | Path) -> None:
        diff = self.changes(*allowed)
        assert not diff, "files outside the declared output were touched:\n  " + "\n  ".join(diff[:20])


@pytest.fixture
def tree_guard():
    return TreeGuard


def assert_no_secret(*texts: str, dirs=(), secret: str = PLANTED_SECRET) -> None:
    """``secret`` is in none of ``texts`` and in no file under ``dirs`` (read as bytes)."""
    for i, text in enumerate(texts):
        assert secret not in (text or ""), f"the planted secret was printed (text #{i}):\n{text[:2000]}"
    needle = secret.encode()
    for root in dirs:
        for base, _, files in os.walk(root):
            for name in files:
                p = Path(base) / name
                if p.is_file() and not p.is_symlink():
                    assert needle not in p.read_bytes(), f"the planted secret was written into {p}"


TEMP_MARKS = (".tmp", ".bgeft-trash-", ".old")


def assert_no_temp(root: Path) -> None:
    """No temporary file or folder of an atomic writer (``.NAME.*.tmp``, trash, ``.old``) is left under ``root``."""
    left = sorted(str(p) for p in snapshot(Path(root)) if any(mark in p.name for mark in TEMP_MARKS))
    assert not left, f"temporary files left behind: {left}"


class Tree:
    """``tree_guard`` bound to the test's ``tmp_path``: ``snapshot()`` once the files are in place, then
    ``assert_untouched(allowed)`` and ``assert_no_temp()``."""

    def __init__(self, root: Path):
        self.root = root
        self.guard: TreeGuard | None = None

    def snapshot(self) -> Tree:
        self.guard = TreeGuard(self.root)
        return self

    def assert_untouched(self, allowed=()) -> None:
        self.guard.assert_only(*allowed)

    def assert_no_temp(self) -> None:
        assert_no_temp(self.root)


@pytest.fixture
def tree(tmp_path) -> Tree:
    return Tree(tmp_path)
