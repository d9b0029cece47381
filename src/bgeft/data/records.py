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
from typing import Iterable, Iterator

from ..errors import UserError
from .io import atomic_writer, open_text

HINT = "run `bgeft data validate` on it for a full report"


def iter_json_lines(path: str | os.PathLike, encoding: str | None = None) -> Iterator[tuple[int, dict]]:
    """Yield ``(lineno, object)`` for every non-blank line; a line that is not a JSON object is a
    UserError naming ``file:line``."""
    with open_text(path, encoding) as src:
        for line in src:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{src.lineno}: invalid JSON ({exc.msg} at column {exc.colno}); "
                                f"{HINT}") from None
            if not isinstance(obj, dict):
                raise UserError(f"{path}:{src.lineno}: expected a JSON object, got {type(obj).__name__}; {HINT}")
            yield src.lineno, obj


def _check_str_list(path, lineno: int, row: dict, key: str, required: bool) -> None:
    value = row.get(key)
    if value is None and not required:
        return
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise UserError(f"{path}:{lineno}: {key}: expected a list of strings; {HINT}")
    if required and not value:
        raise UserError(f"{path}:{lineno}: {key}: empty list; {HINT}")


def iter_rows(path: str | os.PathLike, encoding: str | None = None) -> Iterator[tuple[int, dict]]:
    """Stream the training rows of ``path`` with their line numbers (see module docstring)."""
    empty = True
    for lineno, row in iter_json_lines(path, encoding):
        query = row.get("query")
        if not isinstance(query, str) or not query.strip():
            raise UserError(f"{path}:{lineno}: query: expected a non-empty string; {HINT}")
        _check_str_list(path, lineno, row, "pos", required=True)
        _check_str_list(path, lineno, row, "neg", required=False)
        empty = False
        yield lineno, row
    if empty:
        raise UserError(f"{path}: no training rows (the file is empty)")


def read_rows(path: str | os.PathLike, encoding: str | None = None) -> list[tuple[int, dict]]:
    """All training rows of ``path`` with their line numbers."""
    return list(iter_rows(path, encoding))


def read_corpus(path: str | os.PathLike, encoding: str | None = None) -> list[tuple[str, str]]:
    """``(id, text)`` for every passage of a corpus file; ``text`` must be a non-empty string."""
    passages = []
    for lineno, obj in iter_json_lines(path, encoding):
        text = obj.get("text")
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"{path}:{lineno}: text: expected a non-empty string (corpus rows look like "
                            '{"_id": "d1", "title": "", "text": "..."})')
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
