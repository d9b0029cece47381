"""The one atomic writer (bgeft.io): no temp file survives any exit, non-regular targets are refused, a full
disk is a message (issue 9, items 3, 6, 17)."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bgeft import io as bio
from bgeft.errors import UserError

ROW = json.dumps({"query": "what is river {i}", "pos": ["River {i} is water."], "neg": ["Hill {i}."]})


def _rows(path, n):
    path.write_text("".join(ROW.replace("{i}", str(i)) + "\n" for i in range(n)))
    return path


def _wait_for_temp(folder, proc, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        temps = [p for p in folder.iterdir() if p.name.endswith(".tmp") and p.stat().st_size > 0]
        if temps:
            return temps
        time.sleep(0.01)
    pytest.fail(f"no temporary output appeared (exit {proc.poll()})")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signal_during_convert_leaves_no_temp_file(tmp_path, tree, sig):
    src = _rows(tmp_path / "in.jsonl", 60000)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "train.jsonl").write_text("previous\n")
    tree.snapshot()
    # the signal's default action in the child, as in a terminal: under `nohup` SIGHUP is inherited as
    # ignored, and bgeft rightly leaves an ignored signal ignored
    proc = subprocess.Popen([sys.executable, "-m", "bgeft.cli.main", "data", "convert", str(src), "-o",
                             str(out_dir / "train.jsonl")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(sig, signal.SIG_DFL))
    _wait_for_temp(out_dir, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and err.endswith("bgeft: interrupted\n")
    else:
        assert proc.returncode == 128 + sig
        assert err.endswith(f"bgeft: terminated by signal {int(sig)}; unfinished outputs were removed\n")
    assert (out_dir / "train.jsonl").read_text() == "previous\n"
    tree.assert_untouched()
    tree.assert_no_temp()


def test_sigterm_during_a_directory_write_removes_it(tmp_path, tree):
    code = ("import time, sys; from bgeft.io import atomic_dir\n"
            "with atomic_dir(sys.argv[1]) as tmp:\n"
            "    (tmp / 'a.jsonl').write_text('x')\n    print('ready', flush=True)\n    time.sleep(60)\n")
    tree.snapshot()
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "buckets")], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 143
    tree.assert_untouched()
    tree.assert_no_temp()


def test_disk_full_during_convert(tmp_path, tree, run_cli, monkeypatch):
    src = _rows(tmp_path / "in.jsonl", 50)
    out = tmp_path / "train.jsonl"
    out.write_text("previous\n")
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, handle):
            self.handle, self.written = handle, 0

        def write(self, text):
            self.written += len(text)
            if self.written > 500:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.handle.write(text)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    monkeypatch.setattr(bio.os, "fdopen", lambda *a, **k: Full(real_fdopen(*a, **k)))
    tree.snapshot()
    code, _, err = run_cli("data", "convert", src, "-o", out)
    assert code == 1
    assert err == (f"bgeft: error: {out}: cannot write (No space left on device); nothing was written and the old "
                   "file, if any, is unchanged: free some space or write elsewhere\n")
    assert out.read_text() == "previous\n"
    tree.assert_untouched()
    tree.assert_no_temp()


def test_unwritable_directory(tmp_path, tree):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only directories")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    tree.snapshot()
    with pytest.raises(UserError, match=r"locked/o.jsonl: cannot write \(Permission denied\); nothing was written"):
        bio.atomic_write_text(locked / "o.jsonl", "x")
    tree.assert_untouched()


def test_parent_is_a_file(tmp_path, tree):
    (tmp_path / "f").write_text("x")
    tree.snapshot()
    with pytest.raises(
        UserError,
        match=r"^.*f/o.jsonl: part of its directory path is a file, not a directory; choose another output path$",
    ):
        bio.atomic_write_text(tmp_path / "f" / "o.jsonl", "x")
    tree.assert_untouched()


def test_error_and_ctrl_c_inside_the_block_remove_the_temp_file(tmp_path, tree):
    tree.snapshot()
    for exc in (ValueError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with bio.atomic_writer(tmp_path / "o.txt") as out:
                out.write("half")
                raise exc
    tree.assert_untouched()
    tree.assert_no_temp()


def test_writer_refuses_links_and_fifos(tmp_path, tree):
    (tmp_path / "real.txt").write_text("keep")
    (tmp_path / "link.txt").symlink_to(tmp_path / "real.txt")
    os.mkfifo(tmp_path / "pipe")
    tree.snapshot()
    with pytest.raises(UserError, match=r"link.txt: is a symbolic link \(to .*real.txt\); bgeft does not write through "
                                        "or replace links"):
        bio.atomic_write_text(tmp_path / "link.txt", "x")
    with pytest.raises(UserError, match=r"pipe: is a FIFO \(named pipe\); bgeft writes only regular files"):
        bio.atomic_write_text(tmp_path / "pipe", "x")
    with pytest.raises(UserError, match=r"real.txt: is a file; give a directory path"):
        with bio.atomic_dir(tmp_path / "real.txt"):
            pass
    tree.assert_untouched()


def test_atomic_dir_keeps_the_old_directory_until_the_new_one_is_complete(tmp_path):
    target = tmp_path / "d"
    target.mkdir()
    (target / "old.jsonl").write_text("old")
    with pytest.raises(RuntimeError):
        with bio.atomic_dir(target, replace=True) as tmp:
            (tmp / "new.jsonl").write_text("new")
            raise RuntimeError("half way")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"] and (target / "old.jsonl").read_text() == "old"
    with bio.atomic_dir(target, replace=True) as tmp:
        (tmp / "new.jsonl").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"] and [p.name for p in target.iterdir()] == ["new.jsonl"]


def test_signal_handlers_are_restored(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    with bio.atomic_writer(tmp_path / "o.txt") as out:
        assert before is not signal.SIG_DFL or signal.getsignal(signal.SIGTERM) is bio._raise_terminated
        out.write("x")
    assert signal.getsignal(signal.SIGTERM) is before
