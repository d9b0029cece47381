"""The console contract's pieces: capture into a log, translated notes, progress off a terminal, the log tail."""
from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import textwrap

import pytest

from bgeft import console
from bgeft.console_progress import Progress, TrainLines, duration, quiet_library_bars

ANSI = re.compile(r"\x1b\[")


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    """A fresh interpreter (fd 2 redirection must not meet pytest's capture), stdout/stderr to pipes."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          timeout=120)


CAPTURED = """
    import logging, os, sys, warnings
    from bgeft import console
    console.take_global_flags(sys.argv[1:])
    with console.capture(sys.argv[-1]):
        print("bgeft result on stdout")
        print("third-party text on stderr", file=sys.stderr)
        warnings.warn("`max_length` is ignored when `padding`=`True`")
        logging.getLogger("transformers").warning("\\x1b[1mBertForSequenceClassification LOAD REPORT\\x1b[0m")
        logging.getLogger("transformers").warning("classifier.bias   | MISSING | ")
        os.write(2, b"Compute Scores:  20%|##  | 1/5\\rCompute Scores: 100%|#####| 5/5\\n")
        console.say("bgeft: own line on stderr")
"""


def test_capture_sends_third_party_output_to_the_log_only(tmp_path):
    log = tmp_path / "cmd.log"
    res = _run(CAPTURED, str(log))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "bgeft result on stdout\n"
    assert sorted(res.stderr.splitlines()) == [   # the note comes from the log's reader thread: any order
        "bgeft: own line on stderr",
        "note: the reranker being loaded has no trained classification head (its checkpoint lacks the classifier "
        "weights); FlagEmbedding initialised one at random, so its scores are meaningless until it is fine-tuned"]
    assert "\r" not in res.stderr and not ANSI.search(res.stderr)
    held = log.read_text()
    for text in ("third-party text on stderr", "max_length", "LOAD REPORT", "classifier.bias", "Compute Scores"):
        assert text in held and text not in res.stderr


def test_the_note_is_printed_once_and_verbose_shows_third_party_output(tmp_path):
    log = tmp_path / "cmd.log"
    res = _run(CAPTURED.replace("console.say(", "logging.getLogger('x').warning('classifier.weight | MISSING');"
                                                 "console.say("), "-v", str(log))
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("note: the reranker being loaded has no trained classification head") == 1
    assert "third-party text on stderr" in res.stderr and "LOAD REPORT" in res.stderr      # -v
    assert "third-party text on stderr" in log.read_text()


def test_an_unexpected_failure_prints_the_log_tail_and_one_error_naming_the_log():
    res = _run("""
        import sys
        from bgeft import console
        from bgeft.errors import UserError
        try:
            with console.capture(None):
                for i in range(30):
                    print(f"library line {i}", file=sys.stderr)
                raise RuntimeError("boom")
        except UserError as exc:
            print(f"bgeft: error: {exc}", file=sys.stderr)
            sys.exit(exc.exit_code)
    """)
    assert res.returncode == 1
    m = re.search(r"bgeft: failed; the last 20 lines of (\S+):\n", res.stderr)
    assert m, res.stderr
    log = m.group(1)
    assert res.stderr.endswith(f"bgeft: error: RuntimeError: boom (the full traceback is in {log})\n")
    assert "  | RuntimeError: boom\n" in res.stderr and "Traceback" not in res.stderr.replace("  | Traceback", "")
    assert "library line 0\n" in open(log).read()     # the whole story stays in the log
    os.unlink(log)


def test_a_user_error_removes_the_temporary_log_and_prints_no_tail(tmp_path):
    res = _run(f"""
        import sys, tempfile
        tempfile.tempdir = {str(tmp_path)!r}
        from bgeft import console
        from bgeft.errors import UserError
        try:
            with console.capture(None):
                print("library line", file=sys.stderr)
                raise UserError("bad input")
        except UserError:
            pass
    """)
    assert res.returncode == 0 and res.stderr == ""
    assert list(tmp_path.iterdir()) == []


def test_plain_keeps_the_last_frame_and_drops_ansi():
    assert console.plain("\x1b[1mbold\x1b[0m\rbar 1\rbar 2\r\nnext") == "bar 2\nnext"


def test_global_flags_before_the_verb(monkeypatch):
    monkeypatch.setattr(console, "settings", console.Settings())
    assert console.take_global_flags(["-v", "--no-progress", "data", "mine", "-v"]) == ["data", "mine", "-v"]
    assert console.settings.verbose and not console.settings.progress


@pytest.fixture
def lines(monkeypatch):
    said: list[str] = []
    monkeypatch.setattr(console, "settings", console.Settings(interval=0.0))
    monkeypatch.setattr("bgeft.console_progress.settings", console.settings)
    monkeypatch.setattr("bgeft.console_progress.say", said.append)
    monkeypatch.setattr("bgeft.console_progress.interactive", lambda: False)
    return said


def test_progress_off_a_terminal_prints_plain_lines(lines):
    with Progress(4917, "encode", "passages") as bar:
        bar.update(1200)
        bar.update(3717)
    assert re.fullmatch(r"encode 1,200/4,917 passages, [\d,.e+]+/s, ETA \d+ s", lines[0]), lines
    assert re.fullmatch(r"encode 4,917/4,917 passages, [\d,.e+]+/s, took \d+ s", lines[1]), lines
    assert len(lines) == 2


def test_no_progress_prints_nothing(lines):
    console.settings.progress = False
    with Progress(10, "encode", "passages") as bar:
        bar.update(10)
    assert lines == []


def test_train_lines_become_one_progress(lines):
    train = TrainLines()
    assert not train.feed("{'loss': '1.4', 'grad_norm': '51.33'}")
    for line in ("bgeft.train: step 6/12", "bgeft.train: step 7/12 loss=1.36 lr=1.4e-05",
                 "bgeft.train: step 12/12 loss=0.5 lr=0"):
        assert train.feed(line)
    train.close()
    assert lines[0].startswith("train 7/12 steps, loss 1.36, lr 1.4e-05, ")
    assert lines[-1].startswith("train 12/12 steps, loss 0.5, lr 0, ") and "took" in lines[-1]


def test_duration():
    assert [duration(s) for s in (4.4, 100, 7300)] == ["4 s", "1 min 40 s", "2 h 1 min"]


def test_flagembedding_bars_are_silenced(capfd):
    from FlagEmbedding.inference.reranker.encoder_only import base

    quiet_library_bars()
    for _ in base.tqdm(range(3), desc="Compute Scores", disable=False):
        pass
    assert "Compute Scores" not in capfd.readouterr().err


def test_known_warnings_table_translates_out_of_memory(monkeypatch):
    said: list[str] = []
    monkeypatch.setattr(console, "_noted", set())
    monkeypatch.setattr(console, "say", said.append)
    console.translate("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
    console.translate("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
    logging.getLogger(__name__).debug("%s", said)
    assert len(said) == 1 and "per_device_train_batch_size" in said[0]


def test_worker_output_shows_only_bgeft_lines_and_the_training_progress(lines, monkeypatch):
    from bgeft.console_progress import WorkerLines

    monkeypatch.setattr(console, "_noted", set())
    monkeypatch.setattr(console, "say", lines.append)
    worker = WorkerLines()
    worker.write(b"[WARNING] [real_accelerator.py:213:get_accelerator] Setting accelerator to CPU.\n"
                 b"\x1b[1mBertForSequenceClassification LOAD REPORT\x1b[0m\nclassifier.bias | MISSING |\n"
                 b"bgeft.train: step 0/2\n{'loss': '1.4', 'grad_norm': '51.33'}\nbgeft.train: step 1/2 lo")
    worker.write(b"ss=1.4 lr=2e-05\nbgeft.worker: received SIGINT; saving\n"
                 b"torch.OutOfMemoryError: CUDA out of memory\nbgeft.train: step 2/2 loss=1.2 lr=0")
    worker.close()
    assert lines[0].startswith("train 1/2 steps, loss 1.4, lr 2e-05, ")
    assert lines[1] == "bgeft.worker: received SIGINT; saving"
    assert lines[2].startswith("note: the device ran out of memory")
    assert lines[3].startswith("train 2/2 steps, loss 1.2, lr 0, ") and "took" in lines[3]
    assert len(lines) == 4


def test_plain_lines_come_at_doubling_intervals(lines, monkeypatch):
    """A long step off a terminal stays a handful of lines: after 30 s, then 60, 120 ... at most max_interval."""
    console.settings.interval, console.settings.max_interval = 30.0, 100.0
    clock = [0.0]
    monkeypatch.setattr("bgeft.console_progress.time", type("Clock", (), {"monotonic": staticmethod(lambda: clock[0])}))
    bar = Progress(1000, "encode", "passages")
    for second in range(1, 400):
        clock[0] = float(second)
        bar.update(1)
    assert [int(line.split()[1].split("/")[0]) for line in lines] == [30, 90, 190, 290, 390]
