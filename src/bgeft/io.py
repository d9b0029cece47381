"""The one atomic writer: every file and directory bgeft writes goes through here.

- :func:`atomic_writer` / :func:`atomic_write_text` / :func:`atomic_write_bytes` write a temporary file
  beside the target and rename it into place only when the block succeeds.
- :func:`atomic_dir` builds a directory under a temporary name beside the target and renames it into place.

Promises (docs/security.md, tests/hostile/test_atomic_writes.py):

- the target must be absent, a regular file (a directory for :func:`atomic_dir`); a symbolic link, FIFO,
  device or socket is refused, never replaced. Links are refused rather than written through: a rename
  would replace the link itself, and following it would write somewhere the command line does not name.
- the temporary file or directory is removed on every exit path: an error, Ctrl-C (KeyboardInterrupt),
  and SIGTERM/SIGHUP, which are turned into :class:`Terminated` (exit 128+signal) while a write is open
  when the process still had the default (kill) action for them.
- a full disk, a read-only or missing directory end in one :class:`UserError` naming the target; the old
  target is untouched.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from bgeft.errors import UserError

_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
_lock = threading.Lock()
_depth = 0
_saved: dict[int, object] = {}


class Terminated(SystemExit):
    """SIGTERM/SIGHUP arrived during an atomic write: unwinds (removing temp files), exits 128+signal."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum


def _raise_terminated(signum, _frame):
    raise Terminated(signum)


@contextlib.contextmanager
def _signals_unwind() -> Iterator[None]:
    """While open, SIGTERM/SIGHUP raise :class:`Terminated` instead of killing the process on the spot
    (only where their action was the default; a handler someone installed is left alone)."""
    global _depth
    main = threading.current_thread() is threading.main_thread()
    if main:
        with _lock:
            if _depth == 0:
                for sig in _SIGNALS:
                    if signal.getsignal(sig) is signal.SIG_DFL:
                        _saved[sig] = signal.signal(sig, _raise_terminated)
            _depth += 1
    try:
        yield
    finally:
        if main:
            with _lock:
                _depth -= 1
                if _depth == 0:
                    for sig, old in _saved.items():
                        signal.signal(sig, old)
                    _saved.clear()


def file_kind(mode: int) -> str | None:
    """A word for a non-regular, non-directory, non-link file type (None for regular files and directories)."""
    for test, word in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return word
    return None


def refuse_kind(mode: int, label: str, *, is_dir: bool) -> None:
    """An output ``label`` (a path, or ``-o PATH``) that exists must be a directory when ``is_dir``, else a file."""
    kind = file_kind(mode)
    if kind:
        raise UserError(f"{label}: is {kind}; bgeft writes only regular files and directories: choose another path")
    if is_dir and not stat.S_ISDIR(mode):
        raise UserError(f"{label}: is a file; give a directory path")
    if not is_dir and stat.S_ISDIR(mode):
        raise UserError(f"{label}: is a directory; give an output file path")


def check_target(path: str | os.PathLike, *, is_dir: bool = False) -> Path:
    """Refuse a write target that a rename would silently replace (link, FIFO, device, socket) or of the
    wrong kind (a directory where a file goes, or the reverse)."""
    target = Path(path)
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return target
    except NotADirectoryError:
        raise UserError(f"{target}: part of its directory path is a file, not a directory; "
                        "choose another output path") from None
    except OSError as exc:
        raise UserError(f"{target}: cannot be inspected ({exc.strerror}); choose another output path") from None
    if stat.S_ISLNK(st.st_mode):
        raise UserError(f"{target}: is a symbolic link (to {os.readlink(target)}); bgeft does not write through "
                        "or replace links: give the link's target path (or a new path) as the output")
    refuse_kind(st.st_mode, str(target), is_dir=is_dir)
    return target


def _write_error(target: Path, exc: OSError) -> UserError:
    why = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return UserError(f"{target}: cannot write ({why}); nothing was written and the old file, if any, is "
                         "unchanged: free some space or write elsewhere", exit_code=1)
    return UserError(f"{target}: cannot write ({why}); nothing was written: choose another output path", exit_code=1)


def _make_parent(target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{target}: cannot create its directory {target.parent} ({exc.strerror}); "
                        "choose another output path") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# writing or renaming the temporary failed (the last four: the target appeared or changed kind meanwhile)
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS, errno.EACCES, errno.EPERM,
                 errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR, errno.EBUSY)


def _own_error(exc: OSError, tmp: str) -> bool:
    """True when ``exc`` is about writing the temporary output (not, say, an input the block was reading)."""
    return (exc.filename is None or str(exc.filename).startswith(tmp)) and exc.errno in _WRITE_ERRNOS


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "w", encoding: str = "utf-8") -> Iterator[IO]:
    """Yield a handle on a temporary file beside ``path``; rename it to ``path`` when the block succeeds,
    remove it on any other exit (error, Ctrl-C, SIGTERM)."""
    target = check_target(path)
    _make_parent(target)
    with _signals_unwind():
        try:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        except OSError as exc:
            raise _write_error(target, exc) from None
        try:
            kwargs = {} if "b" in mode else {"encoding": encoding, "newline": "\n"}
            with os.fdopen(fd, mode, **kwargs) as handle:
                yield handle
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the output normal permissions
            check_target(target)  # still not a link/FIFO/device after the (possibly long) write
            os.replace(tmp, target)
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            if _own_error(exc, tmp):
                raise _write_error(target, exc) from None
            raise
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    with atomic_writer(path, encoding=encoding) as out:
        out.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_writer(path, "wb") as out:
        out.write(data)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, replace: bool = False) -> Iterator[Path]:
    """Yield a new temporary directory beside ``path`` to fill; on success it becomes ``path``.

    ``path`` must be absent or an empty directory, or — with ``replace`` — a directory the caller has
    already checked may go (``safety.clear_owned_dir`` rules); it is moved aside only once the new one is
    complete. On any other exit the temporary directory is removed."""
    target = check_target(path, is_dir=True)
    if target.exists() and any(target.iterdir()) and not replace:
        raise UserError(f"{target}: exists and is not empty; choose a new directory")
    _make_parent(target)
    with _signals_unwind():
        try:
            tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
        except OSError as exc:
            raise _write_error(target, exc) from None
        old = None
        try:
            yield tmp
            os.chmod(tmp, 0o777 & ~_umask())
            check_target(target, is_dir=True)
            if target.exists() and any(target.iterdir()):
                old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old"))
                os.replace(target, old / "d")
            os.replace(tmp, target)
        except OSError as exc:
            if old is not None and (old / "d").exists() and not target.exists():
                os.replace(old / "d", target)  # put the previous directory back
            shutil.rmtree(tmp, ignore_errors=True)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
            if _own_error(exc, str(tmp)):
                raise _write_error(target, exc) from None
            raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
