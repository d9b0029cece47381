"""Reading training rows and BEIR corpora for the data tools that transform them (mine, score,
buckets, gen-queries).

* ``iter_rows(path)`` / ``read_rows(path)`` -> ``(lineno, row)`` pairs: every non-blank line of a
  FlagEmbedding training JSONL file, checked just enough for the tools to work on it (``query`` a
  non-empty string, ``pos`` a non-empty list of strings, ``neg`` absent or a list of strings). Full
  checking is ``bgeft data validate``; these messages point there.
* ``read_corpus(path)`` -> ``[(id, text)]``: a BEIR ``corpus.jsonl`` (``_id``, ``title``, ``text``) or
  a plain ``{"text": ...}`` pool as FlagEmbedding's mining script reads; ids default to line numbers.
* ``write_jsonl(path, rows)``: atomic (temp file + rename) JSONL writer.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator

from bgeft.data.io import atomic_writer, open_text
from bgeft.data.rejects import Rejects
from bgeft.data.schema import row_problems
from bgeft.errors import UserError

HINT = "run `bgeft data validate` on it for a full report"


def iter_json_lines(path: str | os.PathLike, encoding: str | None = None,
                    rejects: Rejects | None = None) -> Iterator[tuple[int, dict]]:
    """Yield ``(lineno, object)`` for every non-blank line; a line that is not a JSON object is a
    UserError naming ``file:line`` (with ``rejects``: handed to it, which may skip it)."""
    def bad(message: str, lineno: int, reason: str) -> None:
        if rejects is None:
            raise UserError(f"{message}; {HINT}")
        rejects.reject_message(path, lineno, message, reason)

    with open_text(path, encoding) as src:
        while True:
            try:
                line = src.readline()
            except UserError as exc:  # undecodable bytes; the reader has moved past this line
                bad(str(exc).split("; re-save")[0], src.lineno, "row: undecodable bytes")
                continue
            if not line:
                return
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                bad(f"{path}:{src.lineno}: invalid JSON ({exc.msg} at column {exc.colno})", src.lineno,
                    "row: invalid JSON")
                continue
            if not isinstance(obj, dict):
                bad(f"{path}:{src.lineno}: expected a JSON object, got {type(obj).__name__}", src.lineno,
                    "row: not a JSON object")
                continue
            yield src.lineno, obj


def row_problem(row: dict) -> tuple[str, str] | None:
    """The first problem that stops mining/scoring a row (``neg`` may be absent or empty), else None."""
    problems = row_problems({**row, "neg": row.get("neg", [])}, allow_empty_neg=True)
    for key, problem in problems:
        if key.split("[")[0] not in ("pos_scores", "neg_scores") and "identical to the query" not in problem:
            return key, problem
    return None


def iter_rows(path: str | os.PathLike, encoding: str | None = None,
              rejects: Rejects | None = None) -> Iterator[tuple[int, dict]]:
    """Stream the training rows of ``path`` with their line numbers (see module docstring). A bad row
    stops the run, or with ``rejects`` (``--skip-invalid``) is left out and recorded there."""
    empty = True
    for lineno, row in iter_json_lines(path, encoding, rejects):
        problem = row_problem(row)
        if problem is not None:
            if rejects is None:
                raise UserError(f"{path}:{lineno}: {problem[0]}: {problem[1]}; {HINT}")
            rejects.reject(path, lineno, *problem)
            continue
        empty = False
        yield lineno, row
    if empty:
        rejected = f" ({rejects.count} rejected: {rejects.summary_reasons()})" if rejects and rejects.count else ""
        raise UserError(f"{path}: no training rows{rejected or ' (the file is empty)'}")


def read_rows(path: str | os.PathLike, encoding: str | None = None,
              rejects: Rejects | None = None) -> list[tuple[int, dict]]:
    """All training rows of ``path`` with their line numbers."""
    return list(iter_rows(path, encoding, rejects))


def read_corpus(path: str | os.PathLike, encoding: str | None = None,
                rejects: Rejects | None = None) -> list[tuple[str, str]]:
    """``(id, text)`` for every passage of a corpus file; ``text`` must be a non-empty string."""
    passages = []
    for lineno, obj in iter_json_lines(path, encoding, rejects):
        text = obj.get("text")
        if not isinstance(text, str) or not text.strip():
            problem = ('expected a non-empty string (corpus rows look like {"_id": "d1", "title": "", '
                       '"text": "..."})')
            if rejects is None:
                raise UserError(f"{path}:{lineno}: text: {problem}")
            rejects.reject(path, lineno, "text", problem, "corpus text: empty or not a string")
            continue
        pid = obj.get("_id", obj.get("id", str(lineno)))
        passages.append((str(pid), text))
    if not passages:
        raise UserError(f"{path}: no passages (the file is empty)")
    return passages


def dump_row(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False) + "\n"


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write ``rows`` atomically; returns how many were written."""
    n = 0
    with atomic_writer(path) as out:
        for row in rows:
            out.write(dump_row(row))
            n += 1
    return n
