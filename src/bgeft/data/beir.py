"""``bgeft data convert IN... --to beir -o DIR``: judged eval data -> a BEIR directory for ``bgeft eval``.

Writes ``DIR/corpus.jsonl`` (``_id``, ``title``, ``text``), ``DIR/queries.jsonl`` (``_id``, ``text``) and
``DIR/qrels/test.tsv`` (``query-id corpus-id score`` with a header; graded scores kept as integers) from

* DuReader-style records whose documents carry ``relevance`` (a grade), or ``is_relevant``/``is_selected``
  (true -> 1, false -> 0); DuReader-retrieval's ``answer_paragraphs`` are grade 1;
* pointwise records/columns ``query``, ``passage`` and ``relevance`` (or ``label``): one grade per pair;
* training rows ``{query, pos, neg}``: ``pos`` -> grade 1; ``neg`` passages join the corpus unjudged.

Passages and queries are deduplicated by their (stripped) text and get stable ids in first-seen order
(``d1``, ``d2``... / ``q1``, ``q2``...); the first grade given for a (query, passage) pair is kept. A grade
that is not a whole number of 0 or more stops the run with ``file:line: key: problem`` (or, with
``--skip-invalid``, the record is left out and listed). DIR is written through ``safety.check_output`` and
``io.atomic_dir``: it appears complete or not at all.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from bgeft.data.detect import detect
from bgeft.data.io import open_text
from bgeft.data.schema import kind
from bgeft.data.shapes import Options, _answer_paragraphs, _dureader_text, guarded, records
from bgeft.errors import UserError
from bgeft.io import atomic_dir
from bgeft.safety import check_output

SHAPES = ("training", "retrieval", "dureader", "pointwise")


class Judged:
    """Queries, passages and grades collected from every input, ids given in first-seen order."""

    def __init__(self) -> None:
        self.queries: dict[str, str] = {}   # text -> id
        self.corpus: dict[str, str] = {}    # text -> id
        self.qrels: dict[tuple[str, str], int] = {}

    def passage(self, text: str) -> str:
        return self.corpus.setdefault(text, f"d{len(self.corpus) + 1}")

    def add(self, query: str, judged: list[tuple[str, int]], unjudged: list[str] = ()) -> None:
        qid = self.queries.setdefault(query, f"q{len(self.queries) + 1}")
        for text, grade in judged:
            self.qrels.setdefault((qid, self.passage(text)), grade)
        for text in unjudged:
            self.passage(text)


def grade(value: object, where: str, key: str) -> int:
    """A relevance grade: a whole number of 0 or more (true/false -> 1/0; "2" and 2.0 -> 2)."""
    if isinstance(value, bool):
        return int(value)
    number = value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if isinstance(number, (int, float)) and number == number and number >= 0 and float(number).is_integer():
        return int(number)
    raise UserError(f"{where}: {key}: grade {value!r} is not a whole number of 0 or more; use integer relevance "
                    "grades (0 = not relevant, 1, 2, ... = more relevant)")


def _text(value: object, where: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        problem = "missing" if value is None else f"expected a non-empty string, found {kind(value)}"
        raise UserError(f"{where}: {key}: {problem}")
    return value.strip()


def _dureader(rec: object, where: str) -> tuple[str, list, list]:
    if not isinstance(rec, dict):
        raise UserError(f"{where}: expected a DuReader object with question and documents, found {kind(rec)}")
    query = _text(rec.get("question"), where, "question")
    if "answer_paragraphs" in rec and "documents" not in rec:
        return query, [(t, 1) for t in _answer_paragraphs(rec["answer_paragraphs"], where) if t], []
    docs = rec.get("documents")
    if not isinstance(docs, list):
        raise UserError(f"{where}: documents: expected a list of documents")
    judged = []
    for i, doc in enumerate(docs):
        key = f"documents[{i}]"
        if not isinstance(doc, dict):
            raise UserError(f"{where}: {key}: expected an object")
        name = next((k for k in ("relevance", "is_relevant", "is_selected") if doc.get(k) is not None), None)
        if name is None:
            raise UserError(f"{where}: {key}: relevance (a grade 0, 1, 2...) or is_relevant (true/false) missing")
        value = doc[name]
        if name != "relevance" and not isinstance(value, (bool, int)):
            raise UserError(f"{where}: {key}.{name}: must be true/false, found {kind(value)}")
        level = grade(value, where, f"{key}.{name}")
        text = _dureader_text(doc, key, where).strip()
        if text:
            judged.append((text, level))
    return query, judged, []


def _pointwise(rec: object, where: str) -> tuple[str, list, list]:
    if not isinstance(rec, dict):
        raise UserError(f"{where}: expected an object with query, passage, relevance, found {kind(rec)}")
    query, passage = _text(rec.get("query"), where, "query"), _text(rec.get("passage"), where, "passage")
    key = "relevance" if rec.get("relevance") not in (None, "") else "label"
    if rec.get(key) in (None, ""):
        raise UserError(f"{where}: relevance: missing (0 = not relevant, 1, 2, ... = more relevant)")
    return query, [(passage, grade(rec[key], where, key))], []


def _training(rec: object, where: str, names: tuple[str, str]) -> tuple[str, list, list]:
    if not isinstance(rec, dict):
        raise UserError(f"{where}: expected a JSON object, found {kind(rec)}")
    query = _text(rec.get("query"), where, "query")
    lists = []
    for name in names:
        items = rec.get(name, [])
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
            raise UserError(f"{where}: {name}: expected a list of strings, found {kind(items)}")
        lists.append([t.strip() for t in items if t.strip()])
    pos, neg = lists
    if not pos:
        raise UserError(f"{where}: {names[0]}: no positive passage (nothing to judge)")
    return query, [(t, 1) for t in pos], [t for t in neg if t not in pos]


def _reader(shape: str) -> Callable:
    if shape == "dureader":
        return _dureader
    if shape == "pointwise":
        return _pointwise
    names = ("positive", "negative") if shape == "retrieval" else ("pos", "neg")
    return lambda rec, where: _training(rec, where, names)


def convert_beir(inputs: list, output: str | Path, *, fmt: str = "auto", encoding: str | None = None,
                 options: Options | None = None, log: Callable[[str], None] = print) -> Judged:
    """Convert ``inputs`` into one BEIR directory at ``output``; returns what was collected."""
    opts = options or Options()
    check_output(output, inputs, is_dir=True)
    found = [detect(path, fmt, encoding) for path in inputs]
    for det in found:
        log(det.describe())
        if det.shape not in SHAPES:
            raise UserError(f"{det.path}: --to beir reads DuReader documents with relevance/is_relevant, pointwise "
                            f"query/passage/relevance records or query/pos/neg rows, not {det.shape} records")
    judged, kept = Judged(), [0]
    for det in found:
        read = _reader(det.shape)

        def make(rec, where, read=read):
            judged.add(*read(rec, where))
            kept[0] += 1
            return []

        with open_text(det.path, det.encoding) as src:
            for _ in guarded(det, opts, records(det, src, opts), make):
                pass
    rejected = opts.rejects.finish(kept[0]) if opts.rejects is not None and kept[0] else None
    if not judged.qrels:
        raise UserError(f"no judged (query, passage) pairs in {', '.join(map(str, inputs))}; nothing written")
    with atomic_dir(output) as tmp:
        _write(tmp, judged)
    if rejected:
        log(rejected)
    relevant = {qid for (qid, _), g in judged.qrels.items() if g > 0}
    grades = sorted({g for g in judged.qrels.values()})
    log(f"wrote BEIR data to {output}: {len(judged.corpus)} passages, {len(judged.queries)} queries, "
        f"{len(judged.qrels)} judgements (grades {', '.join(map(str, grades))})")
    if len(relevant) < len(judged.queries):
        log(f"{len(judged.queries) - len(relevant)} query(ies) have no passage graded above 0; "
            "bgeft eval skips them")
    return judged


def _write(root: Path, judged: Judged) -> None:
    def dump(rows) -> str:
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)

    (root / "corpus.jsonl").write_text(dump({"_id": i, "title": "", "text": t} for t, i in judged.corpus.items()),
                                       encoding="utf-8")
    (root / "queries.jsonl").write_text(dump({"_id": i, "text": t} for t, i in judged.queries.items()),
                                        encoding="utf-8")
    (root / "qrels").mkdir()
    lines = ["query-id\tcorpus-id\tscore\n"] + [f"{q}\t{d}\t{g}\n" for (q, d), g in judged.qrels.items()]
    (root / "qrels" / "test.tsv").write_text("".join(lines), encoding="utf-8")
