"""The hostile suite's own tools catch what they claim to catch."""
from __future__ import annotations

import pytest

from tests.hostile.conftest import PLANTED_SECRET, assert_no_secret


def test_tree_guard_sees_create_change_delete(tmp_path, tree_guard):
    (tmp_path / "keep.txt").write_text("a")
    (tmp_path / "gone.txt").write_text("b")
    (tmp_path / "out").mkdir()
    guard = tree_guard(tmp_path)
    (tmp_path / "keep.txt").write_text("A")
    (tmp_path / "gone.txt").unlink()
    (tmp_path / "new.txt").write_text("c")
    (tmp_path / "out" / "model.bin").write_text("d")
    assert guard.changes("out") == [f"deleted: {tmp_path / 'gone.txt'}", f"changed: {tmp_path / 'keep.txt'}",
                                    f"created: {tmp_path / 'new.txt'}"]
    with pytest.raises(AssertionError, match="files outside the declared output were touched"):
        guard.assert_only("out")
    tree_guard(tmp_path).assert_only()


def test_assert_no_secret_reads_files_as_bytes(tmp_path):
    assert_no_secret("clean output", dirs=[tmp_path])
    (tmp_path / "args.bin").write_bytes(b"\x80\x04" + PLANTED_SECRET.encode() + b"\x00")
    with pytest.raises(AssertionError, match="written into .*args.bin"):
        assert_no_secret(dirs=[tmp_path])
    with pytest.raises(AssertionError, match="was printed"):
        assert_no_secret(f"--hub_token {PLANTED_SECRET}")
