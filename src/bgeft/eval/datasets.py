"""Load evaluation data in any of the three layouts ``bgeft eval`` accepts.

* **BEIR**: ``DIR/corpus.jsonl`` (``_id``, ``title``, ``text``), ``DIR/queries.jsonl`` (``_id``,
  ``text``), ``DIR/qrels/<split>.tsv`` (``query-id  corpus-id  score``, header optional, graded
  scores allowed).
* **FlagEmbedding custom** (what ``python -m FlagEmbedding.evaluation.custom`` reads):
  ``DIR/corpus.jsonl`` (``id``, ``title``, ``text``), ``DIR/<split>_queries.jsonl`` (``id``,
  ``text``), ``DIR/<split>_qrels.jsonl`` (``qid``, ``docid``, ``relevance``).
* **Training JSONL** (FlagEmbedding's fine-tuning format): a ``.jsonl`` file, or a directory of
  them, with ``{"query", "pos", "neg"}`` rows. The corpus is every distinct ``pos``/``neg``
  passage; each row is a query whose ``pos`` passages are relevant (score 1).

Python API::

    data = load_eval_data("data/eval")        # any layout; raises UserError with the fix
    data = load_beir("data/eval", split="test")

Queries that have no relevant document (no qrels row with score > 0) cannot be scored by any
ranking metric; they are dropped from every average and listed in ``data.skipped``.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from bgeft.errors import UserError
from bgeft.io import atomic_write_text
from bgeft.safety import check_input

LAYOUT_HELP = (
    "expected a BEIR directory (corpus.jsonl, queries.jsonl, qrels/test.tsv), a FlagEmbedding custom "
    "directory (corpus.jsonl, test_queries.jsonl, test_qrels.jsonl) or a training JSONL file"
)


@dataclass
class EvalData:
    """Corpus, queries and graded relevance judgements, ids as strings, in file order."""

    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    source: str
    layout: str
    skipped: list[str] = field(default_factory=list)

    @property
    def doc_ids(self) -> list[str]:
        return list(self.corpus)

    def doc_texts(self) -> list[str]:
        """Passage text as FlagEmbedding's evaluator builds it: ``title text``."""
        return [f"{d.get('title', '')} {d['text']}".strip() for d in self.corpus.values()]

    @property
    def eval_qids(self) -> list[str]:
        return list(self.qrels)

    def corpus_fingerprint(self) -> str:
        h = hashlib.sha256()
        for did, doc in self.corpus.items():
            for part in (did, doc.get("title", ""), doc["text"]):
                h.update(part.encode("utf-8"))
                h.update(b"\x00")
        return h.hexdigest()

    def fingerprint(self) -> str:
        """Corpus + queries + qrels: two runs are comparable only when these match."""
        h = hashlib.sha256(self.corpus_fingerprint().encode())
        h.update(json.dumps([self.queries, self.qrels], sort_keys=True, ensure_ascii=False).encode())
        return h.hexdigest()

    def summary(self) -> dict:
        return {"path": self.source, "layout": self.layout, "fingerprint": self.fingerprint(),
                "n_docs": len(self.corpus), "n_queries": len(self.qrels),
                "n_judgements": sum(len(v) for v in self.qrels.values()), "skipped_queries": self.skipped}


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    if not os.path.exists(path):
        raise UserError(f"{path}: file not found ({LAYOUT_HELP})")
    check_input(path, "eval data")
    rows = []
    with path.open(encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(
                    f"{path}:{lineno}: not valid JSON ({exc.msg}); write one JSON object per line"
                ) from None
            if not isinstance(row, dict):
                raise UserError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            rows.append((lineno, row))
    return rows


def _field(path: Path, lineno: int, row: dict, *keys: str) -> str:
    for key in keys:
        if key in row and row[key] is not None:
            return str(row[key])
    raise UserError(f"{path}:{lineno}: missing key '{keys[0]}'")


def _read_corpus(path: Path, id_keys: tuple[str, ...]) -> dict[str, dict[str, str]]:
    corpus: dict[str, dict[str, str]] = {}
    for lineno, row in _read_jsonl(path):
        did = _field(path, lineno, row, *id_keys)
        if did in corpus:
            raise UserError(f"{path}:{lineno}: duplicate {id_keys[0]} {did!r}; document ids must be unique")
        corpus[did] = {"title": str(row.get("title") or ""), "text": _field(path, lineno, row, "text")}
    if not corpus:
        raise UserError(f"{path}: corpus is empty; add one JSON object per line with {id_keys[0]}, title, text")
    return corpus


def _read_queries(path: Path, id_keys: tuple[str, ...]) -> dict[str, str]:
    queries: dict[str, str] = {}
    for lineno, row in _read_jsonl(path):
        qid = _field(path, lineno, row, *id_keys)
        if qid in queries:
            raise UserError(f"{path}:{lineno}: duplicate {id_keys[0]} {qid!r}; query ids must be unique")
        queries[qid] = _field(path, lineno, row, "text", "query")
    if not queries:
        raise UserError(f"{path}: no queries; add one JSON object per line with {id_keys[0]}, text")
    return queries


def _score(path: Path, lineno: int, value: str) -> int:
    try:
        number = float(value)
    except ValueError:
        raise UserError(
            f"{path}:{lineno}: score {value!r} is not a number; use integer relevance grades (0, 1, 2...)"
        ) from None
    if not math.isfinite(number) or number != int(number):
        raise UserError(f"{path}:{lineno}: score {value!r} is not an integer relevance grade; use 0, 1, 2... "
                        "(ranking metrics take whole grades: 0.5 would silently count as 0)")
    return int(number)


def _read_qrels_tsv(path: Path) -> list[tuple[int, str, str, int]]:
    check_input(path, "qrels")
    rows = []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for lineno, cols in enumerate(csv.reader(fh, delimiter="\t"), 1):
            if not cols or not "".join(cols).strip():
                continue
            if len(cols) == 1:
                cols = cols[0].split()
            if lineno == 1 and cols[0].strip().lower() in ("query-id", "query_id", "qid"):
                continue
            if len(cols) == 3:
                qid, did, score = cols
            elif len(cols) == 4:  # TREC qrels: qid iteration docid rel
                qid, _, did, score = cols
            else:
                raise UserError(
                    f"{path}:{lineno}: expected 3 tab-separated columns query-id, corpus-id, score; got {len(cols)}"
                )
            rows.append((lineno, qid.strip(), did.strip(), _score(path, lineno, score.strip())))
    return rows


def _read_qrels_jsonl(path: Path) -> list[tuple[int, str, str, int]]:
    return [
        (n, _field(path, n, r, "qid"), _field(path, n, r, "docid"), _score(path, n, _field(path, n, r, "relevance")))
        for n, r in _read_jsonl(path)
    ]


def _build(corpus, queries, rows, qrels_path: Path, source: str, layout: str) -> EvalData:
    problems, qrels, where = [], {}, {}
    for lineno, qid, did, score in rows:
        if (qid, did) in where and qrels[qid][did] != score:
            raise UserError(f"{qrels_path}:{lineno}: query-id {qid!r}, corpus-id {did!r} is judged {score} here but "
                            f"{qrels[qid][did]} on line {where[qid, did]}; keep one judgement per pair")
        if qid not in queries:
            problems.append(f"line {lineno}: query-id {qid!r} is not in the queries file")
        elif did not in corpus:
            problems.append(f"line {lineno}: corpus-id {did!r} is not in corpus.jsonl")
        else:
            qrels.setdefault(qid, {})[did] = score
            where.setdefault((qid, did), lineno)
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise UserError(f"{qrels_path}: {len(problems)} judgement(s) name unknown ids: "
                        + "; ".join(problems[:5]) + more + "; fix the ids or delete those rows")
    if not rows:
        raise UserError(f"{qrels_path}: no relevance judgements; add rows query-id<TAB>corpus-id<TAB>score")
    skipped = [q for q, docs in qrels.items() if not any(s > 0 for s in docs.values())]
    for qid in skipped:
        del qrels[qid]
    if not qrels:
        raise UserError(f"{qrels_path}: no query has a relevant document (score > 0); nothing can be evaluated")
    return EvalData(corpus, queries, qrels, source, layout, skipped)


def load_beir(data_dir: str | Path, split: str = "test") -> EvalData:
    """BEIR layout: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."""
    root = Path(data_dir)
    qrels_path = root / "qrels" / f"{split}.tsv"
    if not os.path.exists(qrels_path):
        raise UserError(f"{root}: missing qrels/{split}.tsv; BEIR data needs corpus.jsonl, queries.jsonl and "
                        f"qrels/{split}.tsv with rows query-id<TAB>corpus-id<TAB>score")
    corpus = _read_corpus(root / "corpus.jsonl", ("_id", "id"))
    queries = _read_queries(root / "queries.jsonl", ("_id", "id"))
    return _build(corpus, queries, _read_qrels_tsv(qrels_path), qrels_path, str(root), "beir")


def load_custom(data_dir: str | Path, split: str = "test") -> EvalData:
    """FlagEmbedding custom layout: corpus.jsonl, <split>_queries.jsonl, <split>_qrels.jsonl."""
    root = Path(data_dir)
    qrels_path = root / f"{split}_qrels.jsonl"
    if not os.path.exists(qrels_path):
        raise UserError(f"{root}: missing {split}_qrels.jsonl; FlagEmbedding custom data needs corpus.jsonl, "
                        f"{split}_queries.jsonl and {split}_qrels.jsonl (qid, docid, relevance)")
    corpus = _read_corpus(root / "corpus.jsonl", ("id", "_id"))
    queries = _read_queries(root / f"{split}_queries.jsonl", ("id", "_id"))
    return _build(corpus, queries, _read_qrels_jsonl(qrels_path), qrels_path, str(root), "custom")


def load_training_jsonl(path: str | Path) -> EvalData:
    """Training rows -> corpus = every distinct passage, qrels = each row's ``pos`` (score 1)."""
    path = Path(path)
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    text_to_id: dict[str, str] = {}
    corpus, queries, rows = {}, {}, []
    for file in files:
        for lineno, row in _read_jsonl(file):
            query = row.get("query")
            pos = row.get("pos")
            if not isinstance(query, str) or not isinstance(pos, list):
                raise UserError(f'{file}:{lineno}: a training row needs "query" (string) and "pos" (list of strings)')
            qid = f"q{len(queries)}"
            queries[qid] = query
            for kind in ("pos", "neg"):
                for text in row.get(kind) or []:
                    if not isinstance(text, str):
                        raise UserError(f"{file}:{lineno}: \"{kind}\" must be a list of strings")
                    if text not in text_to_id:
                        text_to_id[text] = f"d{len(text_to_id)}"
                        corpus[text_to_id[text]] = {"title": "", "text": text}
                    if kind == "pos":
                        rows.append((lineno, qid, text_to_id[text], 1))
    if not corpus:
        raise UserError(f"{path}: corpus is empty; the training rows hold no pos/neg passages")
    return _build(corpus, queries, rows, path, str(path), "train-jsonl")


def detect_layout(path: str | Path, split: str = "test") -> str:
    p = Path(path)
    if p.is_file():
        return "train-jsonl"
    if not p.is_dir():
        raise UserError(f"{p}: no such file or directory ({LAYOUT_HELP})")
    if (p / "corpus.jsonl").is_file():
        if (p / f"{split}_queries.jsonl").is_file() or (p / f"{split}_qrels.jsonl").is_file():
            return "custom"
        return "beir"
    if (p / "queries.jsonl").is_file() or (p / "qrels").is_dir():
        raise UserError(f"{p}: missing corpus.jsonl; BEIR data needs corpus.jsonl (_id, title, text), queries.jsonl "
                        "and qrels/test.tsv")
    if any(p.glob("*.jsonl")):
        return "train-jsonl"
    raise UserError(f"{p}: corpus.jsonl not found; {LAYOUT_HELP}")


def load_eval_data(path: str | Path, split: str = "test") -> EvalData:
    """Load ``path`` in whichever layout it is (see the module docstring)."""
    layout = detect_layout(path, split)
    if layout == "custom":
        return load_custom(path, split)
    if layout == "beir":
        return load_beir(path, split)
    return load_training_jsonl(path)


def write_custom_layout(data: EvalData, dest: str | Path, split: str = "test") -> Path:
    """Write ``data`` in FlagEmbedding's custom layout (used by the benchmark against its evaluator)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)

    def dump(name, rows):
        atomic_write_text(dest / name, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))

    dump("corpus.jsonl", ({"id": k, **v} for k, v in data.corpus.items()))
    dump(f"{split}_queries.jsonl", ({"id": q, "text": data.queries[q]} for q in data.qrels))
    dump(f"{split}_qrels.jsonl", ({"qid": q, "docid": d, "relevance": s}
                                  for q, docs in data.qrels.items() for d, s in docs.items()))
    return dest
