"""Skip-and-report for every ``bgeft data`` verb that reads rows (``--skip-invalid``, ``--max-rejects``).

A verb hands each bad row to ``Rejects.reject(path, line, key, problem)``. Without ``--skip-invalid`` that
raises the usual ``file:line: key: problem`` message, now ending with how to skip such rows instead. With
it the row is left out and remembered; ``finish(kept)`` (called before the output is committed) fails
the command when more than ``--max-rejects`` were rejected, writes every rejected row to the rejects
file beside the output (``OUT.rejects``: JSON Lines of ``{"file", "line", "reason", "text"}`` with the
original line verbatim) and returns the summary line ``kept 1000, rejected 2: query: empty string (2)``.

The rejects file deliberately does not end in ``.jsonl``: FlagEmbedding trains on every .json/.jsonl
file of a ``train_data`` directory, and rejected rows must never be trained on.
"""
from __future__ import annotations

import argparse
import json
import os
import re
from collections import Counter
from pathlib import Path

from bgeft.data.io import SAMPLE_BYTES, atomic_writer, detect_encoding
from bgeft.errors import UserError
from bgeft.safety import check_output


def rejects_path(output: str | os.PathLike) -> Path:
    """Where the rejected rows of ``output`` go: ``OUT.rejects`` beside it."""
    return Path(f"{output}.rejects")


def parse_max_rejects(text: str | None) -> tuple[float, bool] | None:
    """``"10"`` -> (10, False); ``"5%"`` -> (5, True); None -> no limit."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%?)\s*", text)
    if not match or (not match.group(2) and "." in match.group(1)):
        raise UserError(f"--max-rejects {text}: expected a number of rows (e.g. 10) or a percentage (e.g. 5%)")
    value = float(match.group(1))
    if match.group(2) and value > 100:
        raise UserError(f"--max-rejects {text}: a percentage is at most 100%")
    return value, bool(match.group(2))


def reason_of(key: str, problem: str) -> str:
    """The summary bucket of a problem: ``pos[3]`` + ``empty string; ...`` -> ``pos: empty string``."""
    return f"{key.split('[')[0].split('.')[0].split(' ')[0]}: {problem.split(';')[0].split(' (')[0]}"


class Rejects:
    """Collects rejected rows of one run (see the module docstring)."""

    def __init__(self, output: str | os.PathLike | None = None, *, skip: bool = False,
                 max_rejects: str | None = None, what: str = "row"):
        self.skip = skip
        self.limit = parse_max_rejects(max_rejects)
        if self.limit is not None and not skip:
            raise UserError("--max-rejects goes with --skip-invalid (without it the first bad row stops the run)")
        self.path = rejects_path(output) if output is not None else None
        self.what = what
        self.items: list[tuple[str, int | None, str]] = []  # (file, line, message)
        self.reasons: Counter = Counter()
        self._keys: set = set()

    @classmethod
    def from_args(cls, args: argparse.Namespace, output, what: str = "row") -> Rejects:
        return cls(output, skip=args.skip_invalid, max_rejects=args.max_rejects, what=what)

    def _stop(self, message: str) -> str:
        return f"{message}; or pass --skip-invalid to leave bad {self.what}s out"

    @property
    def count(self) -> int:
        return len(self.items)

    def reject(self, path, line: int | None, key: str, problem: str, reason: str | None = None) -> None:
        """Leave one row out (``--skip-invalid``) or stop with its message."""
        where = f"{path}:{line}" if line is not None else str(path)
        message = f"{where}: {key}: {problem}" if key else f"{where}: {problem}"
        if not self.skip:
            raise UserError(self._stop(message))
        if self._seen(path, line):
            return
        self.items.append((str(path), line, message))
        if reason is None:
            reason = reason_of(key, problem) if key else problem.split(";")[0]
        self.reasons[reason] += 1

    def reject_message(self, path, line: int | None, message: str, reason: str) -> None:
        """Like ``reject`` for a reader's complete ``file:line: ...`` message (invalid JSON, bad bytes)."""
        if not self.skip:
            raise UserError(self._stop(message))
        if self._seen(path, line):
            return
        self.items.append((str(path), line, message))
        self.reasons[reason] += 1

    def _seen(self, path, line) -> bool:
        """A converter that reads its input twice (labels first) reports a bad record once."""
        key = (str(path), line)
        if line is not None and key in self._keys:
            return True
        self._keys.add(key)
        return False

    def check_limit(self, kept: int) -> None:
        if self.limit is None or not self.items:
            return
        value, percent = self.limit
        total = kept + self.count
        too_many = self.count * 100 > value * total if percent else self.count > value
        if too_many:
            shown = f"{value:g}%" if percent else f"{int(value)}"
            raise UserError(f"rejected {self.count} of {total} rows ({100 * self.count / max(total, 1):.1f}%), more "
                            f"than --max-rejects {shown} ({self.summary_reasons()}); is --format right? "
                            "nothing written")

    def summary_reasons(self) -> str:
        return ", ".join(f"{reason} ({n})" for reason, n in self.reasons.most_common())

    def finish(self, kept: int) -> str | None:
        """Check ``--max-rejects``, write the rejects file; the summary line (None when not skipping)."""
        if not self.skip:
            return None
        self.check_limit(kept)
        if self.path is not None:
            check_output(self.path, sorted({path for path, _, _ in self.items}), what="rejects file")
            texts = _original_lines(self.items)
            with atomic_writer(self.path) as out:
                for path, line, message in self.items:
                    where = f"{path}:{line}: " if line is not None else f"{path}: "
                    reason = message[len(where):] if message.startswith(where) else message
                    out.write(json.dumps({"file": path, "line": line, "reason": reason,
                                          "text": texts.get((path, line))}, ensure_ascii=False) + "\n")
        line = f"kept {kept}, rejected {self.count}"
        if self.items:
            line += f": {self.summary_reasons()}"
            if self.path is not None:
                line += f" (listed in {self.path})"
        return line


def _original_lines(items) -> dict[tuple[str, int], str]:
    """The text of each rejected ``(file, line)``, read back from the input as it is on disk."""
    wanted: dict[str, set[int]] = {}
    for path, line, _ in items:
        if line is not None:
            wanted.setdefault(path, set()).add(line)
    found = {}
    for path, lines in wanted.items():
        try:
            with open(path, "rb") as fh:
                codec = detect_encoding(fh.read(SAMPLE_BYTES), path)
                fh.seek(0)
                last = max(lines)
                for number, raw in enumerate(fh, 1):
                    if number in lines:
                        text = raw.decode("utf-8" if codec == "utf-8-sig" else codec, errors="replace")
                        found[(path, number)] = text.lstrip("\ufeff").rstrip("\r\n")
                    if number >= last:
                        break
        except (OSError, UserError):
            continue
    return found


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--skip-invalid", action="store_true",
                        help="leave bad rows out instead of stopping; each goes to OUT.rejects with its "
                             "file:line and reason, and a summary is printed")
    parser.add_argument("--max-rejects", metavar="N|P%",
                        help="with --skip-invalid: fail when more than N rows (or P%% of them) are rejected")
