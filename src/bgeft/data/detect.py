"""Which container and which record shape an input file has, from its extension and first record."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bgeft.data.io import open_text
from bgeft.data.readers import MSMARCO_COLUMNS, iter_records
from bgeft.data.schema import kind
from bgeft.errors import UserError

CONTAINERS = ("jsonl", "json", "csv", "tsv")
SHAPES = ("training", "retrieval", "sts", "classification", "clustering", "dureader", "squad", "pointwise")
FORMATS = ("auto", "jsonl", "json", "csv", "tsv", "dureader", "msmarco", "trec-xml", "squad", "sts",
           "classification", "clustering", "pointwise")
SHAPE_KEYS = (  # checked in order against the first record's keys
    ("training", {"query", "pos"}),
    ("retrieval", {"query", "positive"}),
    ("pointwise", {"query", "passage", "label"}),
    ("pointwise", {"query", "passage", "relevance"}),
    ("sts", {"sentence1", "sentence2"}),
    ("classification", {"text", "label"}),
    ("dureader", {"question", "documents"}),
    ("dureader", {"question", "answer_paragraphs"}),  # DuReader-retrieval
    ("squad", {"paragraphs"}),
)
SHAPE_HELP = ("query/pos/neg, query/positive/negative, query/passage/label, sentence1/sentence2/score, text/label, "
              "question/documents or question/answer_paragraphs (DuReader) or SQuAD's data/paragraphs/qas")


@dataclass
class Detected:
    path: str
    container: str          # jsonl json csv tsv msmarco trec-xml
    shape: str              # one of SHAPES, "msmarco" or "trec"
    encoding: str
    key: str | None = None  # the array key inside a top-level JSON object (SQuAD's "data")
    columns: tuple = ()

    def describe(self) -> str:
        what = {"msmarco": "MS MARCO TSV (query_id, query, doc_id, document, relevance)",
                "trec-xml": "TREC-style XML topics"}.get(self.container, self.container.upper())
        cols = f" with fields {', '.join(self.columns)}" if self.columns else ""
        shape = "" if self.shape in ("msmarco", "trec") else f", {self.shape} records"
        if self.shape in ("classification", "clustering"):
            shape += " (text/label; --format classification|clustering chooses)"
        return f"{self.path}: detected {what}{cols}{shape}, encoding {self.encoding}"


def detect(path: str | Path, fmt: str = "auto", encoding: str | None = None) -> Detected:
    path = str(path)
    with open_text(path, encoding) as src:
        enc = src.encoding
        head = _first_chars(src)
    if not head.strip():
        raise UserError(f"{path}: empty file")
    container = fmt if fmt in CONTAINERS + ("msmarco", "trec-xml") else _container(path, head, enc)
    if container == "trec-xml":
        return Detected(path, "trec-xml", "trec", enc)
    if container == "tsv" and fmt != "tsv" and _looks_msmarco(head):
        container = "msmarco"
    if container == "msmarco":
        return Detected(path, "msmarco", "msmarco", enc)
    key = None
    with open_text(path, enc) as src:
        if container == "json" and head.lstrip().startswith("{"):
            key = "data"  # SQuAD-style {"version": ..., "data": [...]}; otherwise one object
        line, first = _first_record(src, container, key)
    keys = set(first) if isinstance(first, dict) else set()
    if fmt in SHAPES:
        shape = fmt
    else:
        shape = next((name for name, needed in SHAPE_KEYS if needed <= keys), None)
        if shape == "classification" and "cluster" in Path(path).name.lower():
            shape = "clustering"  # text/label data is either; the file name decides, --format overrides
        if shape is None:
            found = f"fields {', '.join(sorted(keys))}" if isinstance(first, dict) else kind(first)
            raise UserError(f"{path}:{line}: cannot tell the record shape from {found}; expected {SHAPE_HELP} "
                            "(or pass --format)")
    if shape == "squad" and key is None:
        raise UserError(f"{path}: SQuAD files are one JSON object with a \"data\" array")
    columns = tuple(first) if isinstance(first, dict) and container in ("csv", "tsv") else ()
    return Detected(path, container, shape, enc, key, columns)  # key: SQuAD's and DuReader dumps' "data"


def _first_chars(src, limit: int = 8192) -> str:
    parts, size = [], 0
    while size < limit:
        chunk = src.read_chunk(limit)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return "".join(parts)


def _container(path: str, head: str, encoding: str) -> str:
    ext = Path(path).suffix.lower()
    if ext == ".jsonl":
        return "jsonl"
    if ext == ".xml":
        return "trec-xml"
    if ext == ".csv":
        return "csv"
    if ext == ".tsv":
        return "tsv"
    text = head.lstrip()
    if text.startswith("<"):
        return "trec-xml"
    if text.startswith("["):
        return "json"
    if text.startswith("{"):
        return "jsonl" if _is_json_lines(path, encoding) else "json"
    first_line = head.splitlines()[0]
    if "\t" in first_line:
        return "tsv"
    if "," in first_line:
        return "csv"
    raise UserError(f"{path}: cannot tell the format from the extension or the content; pass --format")


def _is_json_lines(path: str, encoding: str, limit: int = 16 << 20) -> bool:
    """One complete object on the first line and more after it is JSON Lines even when the file is named
    .json; an object spread over lines (or one line holding the whole file) is a JSON document."""
    with open_text(path, encoding) as src:
        first = src.read_chunk(limit, line=True)  # the first line, or its first 16 MiB
        try:
            json.loads(first)
        except ValueError:
            return False
        return bool(src.read_chunk(1 << 16).strip())


def _looks_msmarco(head: str) -> bool:
    first = head.splitlines()[0].split("\t")
    if tuple(c.strip().lower() for c in first) == MSMARCO_COLUMNS:
        return True
    if len(first) != 5:
        return False
    try:
        float(first[4])
    except ValueError:
        return False
    return True


def _first_record(src, container: str, key: str | None):
    for line, record in iter_records(src, container, key):
        return line, record
    raise UserError(f"{src.path}: no records")
