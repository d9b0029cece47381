"""Fixtures of the hostile-input suite.

* ``tree`` - hashes a directory tree (every entry's type, mode, size, content or link target) before a
  command runs; ``tree.assert_untouched(allowed=...)`` then fails if anything outside the declared outputs
  changed, appeared or vanished, and ``tree.assert_no_temp()`` if a temporary file was left behind.
"""
from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

TEMP_MARKS = (".tmp", ".tmp-", ".bgeft-trash-", ".old")


def tree_digest(root: Path) -> dict[str, str]:
    """relative path -> a digest of what is there (not following links, not reading FIFOs/devices)."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = os.lstat(path)
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                found[rel] = f"link:{os.readlink(path)}"
            elif stat.S_ISREG(st.st_mode):
                found[rel] = f"file:{oct(st.st_mode)}:{hashlib.sha256(path.read_bytes()).hexdigest()}"
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = f"dir:{oct(st.st_mode)}"
            else:
                found[rel] = f"special:{oct(st.st_mode)}:{st.st_ino}"
    return found


class Tree:
    def __init__(self, root: Path):
        self.root = root
        self.before: dict[str, str] = {}

    def snapshot(self) -> "Tree":
        self.before = tree_digest(self.root)
        return self

    def changes(self) -> set[str]:
        after = tree_digest(self.root)
        return {k for k in self.before.keys() | after.keys() if self.before.get(k) != after.get(k)}

    def assert_untouched(self, allowed=()) -> None:
        """Nothing changed except paths equal to or under one of ``allowed`` (relative to root or absolute)."""
        allowed_rel = [str(Path(a).relative_to(self.root)) if Path(a).is_absolute() else str(a) for a in allowed]
        bad = sorted(c for c in self.changes()
                     if not any(c == a or c.startswith(a.rstrip("/") + "/") for a in allowed_rel))
        assert not bad, f"touched outside the declared output: {bad}"

    def assert_no_temp(self) -> None:
        left = sorted(rel for rel in tree_digest(self.root)
                      if any(mark in Path(rel).name for mark in TEMP_MARKS))
        assert not left, f"temporary files left behind: {left}"


@pytest.fixture
def tree(tmp_path) -> Tree:
    """A :class:`Tree` over ``tmp_path``; call ``tree.snapshot()`` once the test's files are in place."""
    return Tree(tmp_path)
