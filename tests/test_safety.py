"""The one guard: inputs, outputs and what --overwrite may delete (bgeft.safety)."""
from __future__ import annotations

import os

import pytest

from bgeft.errors import UserError
from bgeft.safety import INVENTORY, check_input, check_output, clear_owned_dir, record_owned


def test_input_fifo_refused(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match=r"^IN .*pipe: is a FIFO \(named pipe\), not a regular file"):
        check_input(fifo, "IN")


def test_input_dir_only_when_allowed(tmp_path):
    assert check_input(tmp_path, "data", allow_dir=True) == tmp_path
    with pytest.raises(UserError, match="is a directory; give a file"):
        check_input(tmp_path, "data")
    with pytest.raises(UserError, match="no such file"):
        check_input(tmp_path / "missing", "data")


@pytest.mark.parametrize("where, why", [("/", "a filesystem root"), ("~", "your home directory"),
                                        (".", "the working directory"), ("..", "a parent of the working directory")])
def test_output_protected_places(tmp_path, monkeypatch, where, why):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.raises(UserError, match=f"is {why}.*; bgeft never writes over it"):
        check_output(where, is_dir=True)


def test_output_equal_or_containing_input(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("{}\n")
    with pytest.raises(UserError, match="is also an input"):
        check_output(data / "train.jsonl", [data / "train.jsonl"])
    with pytest.raises(UserError, match="contains the input"):
        check_output(tmp_path, [data / "train.jsonl"], is_dir=True)
    assert check_output(tmp_path / "out" / "a.jsonl", [data / "train.jsonl"]) == (tmp_path / "out" / "a.jsonl")


def test_output_non_regular_refused(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="is a FIFO"):
        check_output(fifo)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "real")
    with pytest.raises(UserError, match="is a symbolic link"):
        check_output(link)
    with pytest.raises(UserError, match="is a character device"):
        check_output("/dev/null")


def test_clear_refuses_foreign_dir_and_foreign_entries(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="was not made by bgeft .no bgeft_run.yaml in it"):
        clear_owned_dir(run, marker="bgeft_run.yaml")
    (run / "bgeft_run.yaml").write_text("task: x\n")
    with pytest.raises(UserError, match=r"holds 1 entry bgeft did not write \(notes.txt\); nothing was deleted"):
        clear_owned_dir(run, marker="bgeft_run.yaml", known=["checkpoint-*"])
    assert (run / "notes.txt").read_text() == "mine"


def test_clear_deletes_owned_entries(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "bgeft_run.yaml").write_text("task: x\n")
    (run / "checkpoint-2").mkdir()
    (run / "model.safetensors").write_bytes(b"x")
    record_owned(run)
    assert INVENTORY in os.listdir(run)
    (run / "checkpoint-4").mkdir()  # written after the inventory: known pattern
    assert clear_owned_dir(run, marker="bgeft_run.yaml", known=["checkpoint-*"]) == run.resolve()
    assert list(run.iterdir()) == []


def test_clear_is_all_or_nothing(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("bgeft_run.yaml", "a", "b", "c"):
        (run / name).write_text(name)
    record_owned(run)
    real_rename = os.rename
    calls = []

    def flaky(src, dst):
        calls.append(src)
        if len(calls) == 3:
            raise PermissionError(13, "Permission denied")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", flaky)
    with pytest.raises(UserError, match="cannot clear .* nothing was deleted"):
        clear_owned_dir(run, marker="bgeft_run.yaml")
    monkeypatch.setattr(os, "rename", real_rename)
    assert sorted(p.name for p in run.iterdir()) == sorted(["bgeft_run.yaml", "a", "b", "c", INVENTORY])
