"""What a person sees: bgeft's own lines on the console, everything third-party in the command's log.

The contract, for every verb and pipeline stage:

* bgeft prints its own lines: what runs, on what, the result and where the outputs are (on stdout, as the
  tests and scripts read them), progress, notes and errors (on stderr, through :func:`say`).
* Everything third-party - transformers / DeepSpeed / FlagEmbedding / torch / datasets logging, Python
  warnings, load reports, their progress bars, whatever a C extension writes to file descriptor 2 - goes
  to the command's log file: ``train.log`` (training), ``stage.log`` in a pipeline stage's directory,
  ``--log FILE`` for the data and eval verbs (a temporary file without it, removed after a success).
  ``bgeft -v ...`` shows it on the console as well.
* A command that fails prints the last lines of its log and the log's path.
* Third-party warnings that need the user are translated, once per process: the :data:`KNOWN` table.
* Progress: :mod:`bgeft.console_progress` (a bar on a terminal, a plain line every ``interval`` seconds
  elsewhere; ``bgeft --no-progress`` hides both).

``capture(log)`` does the routing for one command or stage: file descriptor 2 (and so ``sys.stderr``,
every logging handler and ``warnings``) is pointed at a pipe whose reader appends to the log, while
bgeft's own stderr lines go to the terminal through :func:`stream`.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

TAIL_LINES = 20
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


@dataclass
class Settings:
    verbose: bool = False      # bgeft -v: third-party output on the console too
    progress: bool = True      # bgeft --no-progress: no bars, no progress lines
    interval: float = 30.0     # seconds to the first plain progress line when stderr is not a terminal,
    max_interval: float = 300.0   # then doubling gaps up to this


settings = Settings()
GLOBAL_FLAGS = {"-v": "verbose", "--verbose": "verbose", "--no-progress": "no-progress"}


def take_global_flags(argv: list[str]) -> list[str]:
    """``bgeft [-v] [--no-progress] VERB ...``: set :data:`settings` from the flags before the verb."""
    argv = list(argv)
    while argv and argv[0] in GLOBAL_FLAGS:
        if GLOBAL_FLAGS[argv.pop(0)] == "verbose":
            settings.verbose = True
        else:
            settings.progress = False
    return argv


def add_log_argument(parser) -> None:
    parser.add_argument("--log", metavar="FILE", default=None,
                        help="append third-party output (transformers, FlagEmbedding, warnings) to FILE; "
                             "without it: a temporary file, kept and named only when the command fails")


def check_log(path: str | None, args) -> None:
    """``--log FILE`` never lands on a file the command reads or writes, nor on a FIFO or device."""
    if not path:
        return
    from bgeft.errors import UserError

    log = Path(path)
    if log.exists() and not log.is_file():
        raise UserError(f"--log {path}: not a regular file; choose a file path")
    named = [v for key, value in vars(args).items() if key != "log"
             for v in (value if isinstance(value, list) else [value]) if isinstance(v, (str, os.PathLike))]
    target = log.resolve()
    for other in named:
        try:
            same = Path(other).resolve() == target
        except (OSError, ValueError):
            same = False
        if same:
            raise UserError(f"--log {path}: is also a file this command reads or writes ({other}); "
                            "choose another file")


# Third-party text -> what bgeft tells the user, once per process. The pattern is searched in every line
# that reaches a log (in-process output and the training worker's); ``note(key, subject=...)`` prints
# the same message when bgeft finds the condition itself (e.g. a reranker config without the head).
KNOWN: dict[str, tuple[re.Pattern, str]] = {
    "reranker-head": (
        re.compile(r"^\s*(classifier|score)\.(weight|bias)\s*\|\s*MISSING"),
        "note: {subject} has no trained classification head (its checkpoint lacks the classifier weights); "
        "FlagEmbedding initialised one at random, so its scores are meaningless until it is fine-tuned"),
    "out-of-memory": (
        re.compile(r"OutOfMemoryError|CUDA out of memory|NPU out of memory"),
        "note: the device ran out of memory; lower training.per_device_train_batch_size, data.train_group_size "
        "or data.passage_max_len (or set training.gradient_checkpointing=true), or the --batch-size of a data "
        "or eval verb"),
    "disk-full": (
        re.compile(r"No space left on device"),
        "note: the disk is full; free space where the outputs go (checkpoints: training.save_total_limit)"),
}
_noted: set[str] = set()


def note(key: str, subject: str = "the reranker being loaded") -> bool:
    """Print KNOWN[key]'s message unless it was printed already in this process; True when printed."""
    if key in _noted:
        return False
    _noted.add(key)
    say(KNOWN[key][1].format(subject=subject))
    return True


def translate(line: str, keys=None) -> None:
    """Print the note of every KNOWN entry (or of ``keys``) whose pattern ``line`` matches."""
    for key, (pattern, _) in KNOWN.items():
        if key not in _noted and (keys is None or key in keys) and pattern.search(line):
            note(key)


_console = None        # the terminal's stderr while a capture holds file descriptor 2
_fd2 = None            # a text stream on file descriptor 2 (whatever it points at)


def stream():
    """Where bgeft's own stderr lines go: the terminal, also while third-party output is captured."""
    return _console if _console is not None else sys.stderr


def say(message: str) -> None:
    print(message, file=stream(), flush=True)


def plain(text: str) -> str:
    """Text without ANSI sequences, progress-bar frames (\\r) reduced to their last state."""
    return "\n".join(ANSI.sub("", _last_frame(line)).rstrip() for line in text.replace("\r\n", "\n").split("\n"))


def _last_frame(line: str) -> str:
    frames = [frame for frame in line.split("\r") if frame.strip()]
    return frames[-1] if frames else ""


def tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last ``lines`` non-empty lines of a log, plain (see :func:`plain`)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 256 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line for line in plain(text).split("\n") if line.strip()][-lines:]


def show_tail(path: Path, why: str) -> None:
    shown = tail(path)
    if not shown:
        return
    say(f"bgeft: {why}; the last {len(shown)} lines of {path}:")
    for line in shown:
        say(f"  | {line[:400]}")


def _fd_is_stderr(obj) -> bool:
    try:
        return obj.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


def _pump(read_fd: int, log, console_fd: int | None) -> None:
    """Append what arrives on the pipe to the log (and the console with -v); translate known lines."""
    pending = b""
    while True:
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        log.write(chunk)
        log.flush()
        if console_fd is not None:
            try:
                os.write(console_fd, chunk)
            except OSError:
                pass
        pending += chunk
        *whole, pending = re.split(rb"[\r\n]", pending)
        for line in whole:
            translate(ANSI.sub("", line.decode("utf-8", "replace")))
        pending = pending[-65536:]


@contextmanager
def capture(log_path: str | Path | None):
    """Route everything written to stderr by anyone but bgeft into ``log_path`` for the block.

    ``None``: a temporary log, removed after a success or a user error. An unexpected exception (a bug, a
    broken model file) is written to the log with its traceback, the log's tail is printed, and it leaves
    as a UserError (exit 1) naming the log: one message, never a traceback on the console. A capture inside
    a capture leaves the outer one in charge."""
    global _console, _fd2
    if _console is not None:
        yield Path(log_path) if log_path else None
        return
    temporary = log_path is None
    if temporary:
        fd, name = tempfile.mkstemp(prefix="bgeft-", suffix=".log")
        os.close(fd)
        log_path = name
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")
    entry_stderr = sys.stderr
    entry_stderr.flush()
    saved = os.dup(2)
    _console = (open(saved, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
                if _fd_is_stderr(entry_stderr) else entry_stderr)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    if _fd2 is None:   # never closed: a logging handler made during the capture keeps a usable stream
        _fd2 = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
    sys.stderr = _fd2
    pump = threading.Thread(target=_pump, args=(read_fd, log, saved if settings.verbose else None), daemon=True)
    pump.start()
    failure: BaseException | None = None
    try:
        yield log_path
    except BaseException as exc:
        failure = exc
        if not _expected(exc):
            import traceback

            traceback.print_exc()    # into the log: fd 2 is still the pipe
    finally:
        try:
            _fd2.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 2)          # the pipe's last writer closes: the reader sees the end
        pump.join(timeout=10)
        os.close(read_fd)
        log.close()
        sys.stderr = entry_stderr
        if _console is not entry_stderr:
            _console.close()
        _console = None
        os.close(saved)
        if failure is None or _expected(failure):
            if temporary:
                log_path.unlink(missing_ok=True)
    if failure is None:
        return
    if _expected(failure):
        raise failure
    from bgeft.errors import UserError

    what = f"{type(failure).__name__}: {str(failure)[:300]}"
    show_tail(log_path, "failed")
    raise UserError(f"{what} (the full traceback is in {log_path})", exit_code=1) from None


def _expected(exc: BaseException) -> bool:
    """A user error (its message is the whole story) or a stop (Ctrl-C, SIGTERM): no log tail."""
    from bgeft.errors import UserError

    return isinstance(exc, (UserError, KeyboardInterrupt, SystemExit))
