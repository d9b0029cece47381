"""Record readers for ``bgeft data convert``: each yields ``(line, record)`` one record at a time.

Containers: JSON Lines, JSON (an array, one object, or the array under a key such as SQuAD's ``data``),
CSV and TSV with a header row (list cells as JSON or Python-literal lists), MS MARCO's five-column TSV,
and TREC-style XML topics. Every problem names ``file:line``.
"""
from __future__ import annotations

import ast
import csv
import json
import math
from collections.abc import Iterator
from xml.parsers import expat

from bgeft.data.io import TextSource
from bgeft.data.jsonstream import iter_json_values, iter_jsonl
from bgeft.errors import UserError

MSMARCO_COLUMNS = ("query_id", "query", "doc_id", "document", "relevance")
REPEATED_TAGS = ("positive", "negative")  # TREC-style topics carrying their passages
csv.field_size_limit(16 << 20)  # a longer field is a quote left open, not a passage


def iter_records(src: TextSource, container: str, key: str | None = None,
                 on_error=None) -> Iterator[tuple[int, object]]:
    """``on_error(message)`` (JSON Lines only) gets each unreadable line, which is then skipped."""
    if container == "jsonl":
        return iter_jsonl(src, on_error)
    if container == "json":
        return iter_json_values(src, key)
    if container in ("csv", "tsv"):
        return iter_table(src, "," if container == "csv" else "\t")
    raise ValueError(container)


def iter_table(src: TextSource, delimiter: str) -> Iterator[tuple[int, dict]]:
    """Rows of a CSV (RFC 4180 quoting) or TSV (no quoting) file with a header row, as column -> cell."""
    if delimiter == ",":
        reader = csv.reader(src, delimiter=",", strict=True)
    else:
        reader = (line.rstrip("\n").split("\t") for line in src)
    header = None
    while True:
        start = src.lineno + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            hint = " (a field opened with a double quote is never closed)" if "end of data" in str(exc) or \
                "field larger" in str(exc) else ""
            raise UserError(f"{src.path}:{start}: broken CSV quoting: {exc}{hint}; quote fields as \"...\" and "
                            "double any quote inside them") from None
        if not cells or cells == [""]:
            continue
        if header is None:
            header = [c.strip().lstrip("\ufeff") for c in cells]
            if len(set(header)) != len(header) or not all(header):
                raise UserError(f"{src.path}:{start}: header row has empty or repeated column names "
                                f"({', '.join(header)}); give every column its own name")
            continue
        if len(cells) != len(header):
            raise UserError(f"{src.path}:{start}: expected {len(header)} columns ({', '.join(header)}), "
                            f"found {len(cells)}")
        yield start, dict(zip(header, cells))
    if header is None:
        raise UserError(f"{src.path}: empty file")


def cell_list(value: object, where: str, key: str) -> list:
    """A list from a JSON value or a table cell: a JSON/Python list literal, an empty cell, or one string."""
    if isinstance(value, list) or value is None:
        return [] if value is None else value
    if not isinstance(value, str):
        return [value]
    text = value.strip()
    if not text:
        return []
    if text.startswith("["):
        for parse in (json.loads, ast.literal_eval):
            try:
                parsed = parse(text)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                continue
            if isinstance(parsed, list):
                return parsed
        raise UserError(f"{where}: {key}: cell starts with '[' but is neither a JSON nor a Python list: "
                        f"{text[:60]!r}")
    return [value]


def number(value: object, where: str, key: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        result = float(value)
    else:
        try:
            result = float(str(value).strip())
        except ValueError:
            raise UserError(f"{where}: {key}: expected a number, found {value!r}") from None
    if not math.isfinite(result):
        raise UserError(f"{where}: {key}: non-finite number {value!r}")
    return result


def iter_msmarco(src: TextSource) -> Iterator[tuple[int, str, list[tuple[str, float]]]]:
    """``(first line, query, [(document, relevance)…])`` per contiguous run of one query_id."""
    current, line0, query, docs = None, 0, "", []
    for line in src:
        if not line.strip():
            continue
        cells = line.rstrip("\n").split("\t")
        where = f"{src.path}:{src.lineno}"
        if len(cells) != 5:
            raise UserError(f"{where}: expected 5 tab-separated columns ({', '.join(MSMARCO_COLUMNS)}), "
                            f"found {len(cells)}")
        if src.lineno == 1 and tuple(c.strip().lower() for c in cells) == MSMARCO_COLUMNS:
            continue  # header row
        qid, text, _, document, relevance = cells
        rel = number(relevance, where, "relevance")
        if qid != current:
            if current is not None:
                yield line0, query, docs
            current, line0, query, docs = qid, src.lineno, text, []
        docs.append((document, rel))
    if current is not None:
        yield line0, query, docs


def iter_trec_topics(src: TextSource) -> Iterator[tuple[int, dict]]:
    """``(line, {"number": ..., child tag: text, ...})`` per ``<topic>``/``<top>`` element, parsed
    incrementally with expat (the text is already decoded, so the XML declaration's encoding is ignored)."""
    parser = expat.ParserCreate("utf-8")
    done: list[tuple[int, dict]] = []
    state = {"topic": None, "tag": None, "text": [], "count": 0}

    def start(name, attrs):
        if name in ("topic", "top"):
            state["topic"] = {"number": attrs.get("number", attrs.get("id", "")), "_line": parser.CurrentLineNumber}
        elif state["topic"] is not None:
            state["tag"], state["text"] = name, []

    def end(name):
        topic = state["topic"]
        if topic is None:
            return
        if name in ("topic", "top"):
            done.append((topic.pop("_line"), topic))
            state["topic"] = None
            state["count"] += 1
        elif name == state["tag"]:
            value = " ".join("".join(state["text"]).split())
            if name in REPEATED_TAGS:  # passages given inline: any number of each
                topic.setdefault(name, []).append(value)
            else:
                topic[name] = value
            state["tag"] = None

    def text(data):
        if state["tag"] is not None:
            state["text"].append(data)

    parser.StartElementHandler, parser.EndElementHandler, parser.CharacterDataHandler = start, end, text
    try:
        for line in src:
            parser.Parse(line, False)
            yield from done
            done.clear()
        parser.Parse("", True)
    except expat.ExpatError as exc:
        raise UserError(f"{src.path}:{exc.lineno}: invalid XML: {expat.ErrorString(exc.code)}") from None
    yield from done
    if state["count"] == 0:
        raise UserError(f"{src.path}: no <topic> elements found (expected TREC-style "
                        "<topics><topic number=\"1\"><title>…</title></topic></topics>)")
