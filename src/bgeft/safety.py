"""The one guard of DESIGN.md §7: what a command may read, where it may write, what it may delete.

Every writer asks here before it touches the file system:

- :func:`check_input` — an input must exist and be a regular file (or, where allowed, a directory);
  FIFOs, devices and sockets are refused (reading one hangs or never ends).
- :func:`check_output` — an output may not be, or contain, one of the command's inputs, nor be a
  filesystem root, ``$HOME``, the working directory or one of their ancestors; an existing output must be
  a regular file (file outputs) or a directory (directory outputs) — never a symlink, FIFO or device,
  which an atomic rename would silently replace.
- :func:`clear_owned_dir` — ``--overwrite`` / ``--force``: empties a directory only when bgeft made it
  (its marker file is there) and every entry is one bgeft or the tool it ran wrote (listed in the
  directory's inventory, or matching the caller's known patterns). Entries are first moved aside into a
  hidden trash folder inside the directory (all or none), then deleted, so a failure never leaves a
  half-deleted tree where the output was, and a mount point stays a mount point.
- :func:`record_owned` — writes that inventory after a command filled a directory.
"""
from __future__ import annotations

import fnmatch
import json
import os
import shutil
import stat
import uuid
from collections.abc import Iterable
from pathlib import Path

from bgeft.errors import UserError
from bgeft.io import atomic_write_text, file_kind, refuse_kind

INVENTORY = ".bgeft-owned.json"
TRASH_PREFIX = ".bgeft-trash-"


def _abs(path: str | os.PathLike) -> Path:
    """Absolute, with ``~`` expanded and symlinks resolved where they exist (no strictness)."""
    return Path(os.path.expanduser(os.fspath(path))).resolve()


def check_input(path: str | os.PathLike, what: str, *, allow_dir: bool = False) -> Path:
    """Return ``path`` if it is a readable regular file (or a directory when ``allow_dir``)."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise UserError(f"{what} {p}: no such file") from None
    except OSError as exc:
        raise UserError(f"{what} {p}: cannot be read ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        if allow_dir:
            return p
        raise UserError(f"{what} {p}: is a directory; give a file")
    kind = file_kind(st.st_mode)
    if kind:
        raise UserError(f"{what} {p}: is {kind}, not a regular file; bgeft reads only regular files "
                        "(copy the data into a file first)")
    return p


def _protected(target: Path) -> str | None:
    """Why ``target`` must never be an output (None when it may be)."""
    if target == Path(target.anchor):
        return "a filesystem root"
    home = _abs(Path.home())
    cwd = _abs(Path.cwd())
    for place, name in ((home, "your home directory"), (cwd, "the working directory")):
        if target == place:
            return name
        if target in place.parents:
            return f"a parent of {name} ({place})"
    return None


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_output(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (), *, what: str = "-o",
                 is_dir: bool = False) -> Path:
    """Refuse an output that would destroy something; return its absolute path.

    ``inputs`` are every file or directory the command reads.
    """
    raw = Path(os.path.expanduser(os.fspath(path)))
    try:
        st = os.lstat(raw)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise UserError(f"{what} {raw}: cannot be inspected ({exc.strerror}); choose another path") from None
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise UserError(f"{what} {raw}: is a symbolic link (to {os.readlink(raw)}); bgeft does not replace "
                            "links: give the real path of the output instead")
        refuse_kind(st.st_mode, f"{what} {raw}", is_dir=is_dir)
    target = _abs(raw)
    why = _protected(target)
    if why:
        raise UserError(f"{what} {raw}: is {why}; bgeft never writes over it: choose a new directory "
                        "(e.g. outputs/NAME)")
    for item in inputs:
        src = _abs(item)
        if target == src or (os.path.exists(raw) and os.path.exists(item) and os.path.samefile(raw, item)):
            raise UserError(f"{what} {raw}: is also an input ({item}); write to a new path")
        if _inside(src, target):
            raise UserError(f"{what} {raw}: contains the input {item}; writing there could destroy it: "
                            "choose an output outside the inputs")
    return target


def _inventory(path: Path) -> set[str]:
    try:
        data = json.loads((path / INVENTORY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    return {str(x) for x in data.get("entries", [])} if isinstance(data, dict) else set()


def record_owned(path: str | os.PathLike, extra: Iterable[str] = ()) -> None:
    """Write the inventory of ``path``'s top-level entries: everything bgeft (or the tool it ran) wrote."""
    path = Path(path)
    entries = sorted({p.name for p in path.iterdir() if not p.name.startswith(TRASH_PREFIX)}
                     | set(extra) | {INVENTORY} | _inventory(path))
    atomic_write_text(path / INVENTORY, json.dumps({"entries": entries}, indent=1) + "\n")


def check_owned_dir(path: str | os.PathLike, *, marker: str, inputs: Iterable[str | os.PathLike] = (),
                    known: Iterable[str] = (), what: str = "--overwrite") -> Path:
    """Refuse unless ``path`` is absent, empty, or a directory :func:`clear_owned_dir` may empty; deletes
    nothing (for writers that build the new directory aside and swap it in only when it is complete)."""
    target = check_output(path, inputs, what=what, is_dir=True)
    if not target.exists():
        return target
    entries = sorted(p.name for p in target.iterdir())
    if not entries:
        return target
    if marker not in entries:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise UserError(f"{what}: {target} was not made by bgeft (no {marker} in it; it holds {shown}); "
                        "bgeft deletes only its own run directories: choose a new directory or empty it yourself")
    owned = _inventory(target) | {marker, INVENTORY}
    patterns = list(known)
    foreign = [e for e in entries if e not in owned and not e.startswith(TRASH_PREFIX)
               and not any(fnmatch.fnmatchcase(e, pat) for pat in patterns)]
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise UserError(f"{what}: {target} holds {len(foreign)} entr{'y' if len(foreign) == 1 else 'ies'} bgeft did "
                        f"not write ({shown}); nothing was deleted: move them out or choose a new directory")
    return target


def clear_owned_dir(path: str | os.PathLike, *, marker: str, inputs: Iterable[str | os.PathLike] = (),
                    known: Iterable[str] = (), what: str = "--overwrite") -> Path:
    """Empty ``path`` (a directory bgeft made, recognised by ``marker``); refuse anything else.

    An entry may go when it is listed in the inventory or matches one of ``known`` (glob patterns of
    what the command's tool writes). Returns the directory, now empty (created when missing).
    """
    target = check_owned_dir(path, marker=marker, inputs=inputs, known=known, what=what)
    if not target.exists():
        target.mkdir(parents=True)
        return target
    entries = sorted(p.name for p in target.iterdir())
    if not entries:
        return target
    trash = target / f"{TRASH_PREFIX}{uuid.uuid4().hex[:12]}"
    moved: list[str] = []
    try:
        trash.mkdir()
        for name in entries:
            if name.startswith(TRASH_PREFIX):
                continue
            os.rename(target / name, trash / name)
            moved.append(name)
    except OSError as exc:
        for name in reversed(moved):  # all or none: put back what was already moved
            os.rename(trash / name, target / name)
        if trash.exists():
            trash.rmdir()
        raise UserError(f"{what}: cannot clear {target} ({exc.strerror}); nothing was deleted") from None
    for old in target.glob(f"{TRASH_PREFIX}*"):
        shutil.rmtree(old, ignore_errors=True)
    if any(target.glob(f"{TRASH_PREFIX}*")):
        raise UserError(f"{what}: {target} was cleared but the moved-aside files could not all be deleted; "
                        f"remove {trash} by hand")
    return target
