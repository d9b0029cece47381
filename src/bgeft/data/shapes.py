"""Turn records of each supported shape into FlagEmbedding training rows (query/pos/neg...).

Retrieval-style shapes here: training rows (normalised), ``{query, positive, negative}``, DuReader,
SQuAD, MS MARCO and TREC topics (+ qrels + corpus). The label shapes (STS pairs, classification,
clustering) live in ``labelsets.py``. Each function yields ``(where, row)`` where ``where`` is
``file:line`` of the record the row came from.
"""
from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from bgeft.data.detect import Detected
from bgeft.data.io import open_text
from bgeft.data.readers import cell_list, iter_msmarco, iter_records, iter_trec_topics, number
from bgeft.data.rejects import Rejects, reason_of
from bgeft.data.schema import kind
from bgeft.errors import UserError


@dataclass
class Options:
    negatives: int = 15
    seed: int = 42
    prompt: str | None = None
    min_score: float | None = None
    qrels: str | None = None
    corpus: str | None = None
    rejects: Rejects | None = None  # --skip-invalid: bad records are left out and listed
    graded: bool = False            # pointwise labels: keep grades as pos_scores/neg_scores


@dataclass
class Stats:
    rows: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> records
    dropped_fields: set = field(default_factory=set)
    queries_only: bool = False


OPTIONAL_STR = ("prompt", "type")


def records(det: Detected, src, opts: Options, container: str | None = None, key: str | None = None):
    """``(line, record)`` of ``det``; with --skip-invalid an unreadable JSON line is rejected, not fatal."""
    on_error = None
    if opts.rejects is not None:
        def on_error(message: str) -> None:
            reason = "row: invalid JSON" if "invalid JSON" in message else "row: undecodable bytes"
            opts.rejects.reject_message(det.path, src.lineno, message.split("; fix or delete")[0], reason)
    return iter_records(src, container or det.container, det.key if key is None else key, on_error)


def guarded(det: Detected, opts: Options, items, make) -> Iterator[tuple[str, dict]]:
    """``(where, row)`` for each ``(line, record)`` of ``items`` turned into rows by ``make(record, where)``
    (which returns a list). A record ``make`` refuses stops the run, or with --skip-invalid is rejected."""
    for line, rec in items:
        where = f"{det.path}:{line}"
        try:
            rows = make(rec, where)
        except UserError as exc:
            if opts.rejects is None:
                raise
            message = str(exc)
            key, _, problem = (
                message[len(where) + 2 :].partition(": ") if message.startswith(where) else ("", "", message)
            )
            opts.rejects.reject_message(det.path, line, message, reason_of(key, problem) if problem else key)
            continue
        for row in rows:
            yield where, row


def training(det: Detected, opts: Options, stats: Stats) -> Iterator[tuple[str, dict]]:
    """Rows already in (or close to) the training shape: pos/neg, or positive/negative."""
    names = {"pos": "positive", "neg": "negative"} if det.shape == "retrieval" else {"pos": "pos", "neg": "neg"}
    known = {"query", *names.values(), "pos_scores", "neg_scores", *OPTIONAL_STR}

    def make(rec, where):
        if not isinstance(rec, dict):
            raise UserError(f"{where}: expected a JSON object, found {kind(rec)}")
        stats.dropped_fields.update(k for k in rec if k not in known)
        row = {}
        if "query" in rec:
            row["query"] = rec["query"]
        for out_key, in_key in names.items():
            row[out_key] = cell_list(rec.get(in_key), where, in_key)
        for key in ("pos_scores", "neg_scores"):
            if rec.get(key) not in (None, ""):
                row[key] = [number(x, where, key) for x in cell_list(rec[key], where, key)]
        for key in OPTIONAL_STR:
            if rec.get(key) not in (None, ""):
                row[key] = rec[key]
        return [_with_prompt(row, opts)]

    with open_text(det.path, det.encoding) as src:
        yield from guarded(det, opts, records(det, src, opts), make)


def dureader(det: Detected, opts: Options, stats: Stats) -> Iterator[tuple[str, dict]]:
    """DuReader: relevant documents (``is_relevant``, or DuReader 2.0's ``is_selected``) are positives, the
    others negatives; a document's passage is its ``most_related_para`` paragraph, else all paragraphs
    (or its ``content`` string, as many Chinese dumps publish it, under a top-level ``data`` array).
    DuReader-retrieval's ``answer_paragraphs[].paragraph_text`` are positives (no negatives given)."""
    def make(rec, where):
        if isinstance(rec, dict) and "answer_paragraphs" in rec and "documents" not in rec:
            return [_with_prompt({"query": rec.get("question"),
                                  "pos": _answer_paragraphs(rec["answer_paragraphs"], where), "neg": []}, opts)]
        docs = rec.get("documents") if isinstance(rec, dict) else None
        if not isinstance(docs, list):
            raise UserError(f"{where}: documents: expected a list of documents")
        pos, neg = [], []
        for i, doc in enumerate(docs):
            flag, text = _dureader_document(doc, f"documents[{i}]", where)
            if text.strip():
                (pos if flag else neg).append(text.strip())
        if not pos:
            stats.skipped["DuReader question without a relevant document"] += 1
            return []
        return [_with_prompt({"query": rec.get("question"), "pos": pos, "neg": [t for t in neg if t not in pos]},
                             opts)]

    with open_text(det.path, det.encoding) as src:
        yield from guarded(det, opts, records(det, src, opts), make)


def _dureader_document(doc: object, key: str, where: str) -> tuple[bool, str]:
    """``(relevant, passage)`` of one DuReader document."""
    if not isinstance(doc, dict):
        raise UserError(f"{where}: {key}: expected an object")
    flag = doc.get("is_relevant", doc.get("is_selected"))
    if flag is None:
        raise UserError(f"{where}: {key}: is_relevant (or DuReader 2.0's is_selected) missing; "
                        "mark each document true or false")
    if not isinstance(flag, (bool, int)):
        raise UserError(f"{where}: {key}: is_relevant must be true/false, found {kind(flag)}")
    return bool(flag), _dureader_text(doc, key, where)


def _dureader_text(doc: dict, key: str, where: str) -> str:
    """A DuReader document's passage: ``most_related_para``, else all paragraphs, else ``content``."""
    if "paragraphs" not in doc and isinstance(doc.get("content"), str):
        return doc["content"]
    paras = doc.get("paragraphs")
    if not isinstance(paras, list) or not all(isinstance(p, str) for p in paras):
        raise UserError(f"{where}: {key}.paragraphs: expected a list of strings (or a \"content\" string)")
    best = doc.get("most_related_para")
    return paras[best] if isinstance(best, int) and 0 <= best < len(paras) else "\n".join(paras)


def _answer_paragraphs(paragraphs: object, where: str) -> list[str]:
    if not isinstance(paragraphs, list):
        raise UserError(f"{where}: answer_paragraphs: expected a list")
    texts = []
    for i, para in enumerate(paragraphs):
        text = para.get("paragraph_text") if isinstance(para, dict) else para
        if not isinstance(text, str):
            raise UserError(f"{where}: answer_paragraphs[{i}]: expected {{\"paragraph_text\": ...}} or a string")
        texts.append(text.strip())
    return list(dict.fromkeys(texts))


def squad(det: Detected, opts: Options, stats: Stats) -> Iterator[tuple[str, dict]]:
    """SQuAD: each answerable question -> its paragraph as the positive; other paragraphs of the same
    article are the negatives (up to --negatives)."""
    rng = random.Random(opts.seed)

    def make(article, where):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise UserError(f"{where}: paragraphs: expected a list (SQuAD data[].paragraphs)")
        contexts = []
        for i, para in enumerate(paragraphs):
            if not isinstance(para, dict) or not isinstance(para.get("context"), str):
                raise UserError(f"{where}: paragraphs[{i}].context: expected a string")
            contexts.append(para["context"].strip())
        rows = []
        for i, para in enumerate(paragraphs):
            qas = para.get("qas", [])
            if not isinstance(qas, list):
                raise UserError(f"{where}: paragraphs[{i}].qas: expected a list")
            others = [c for c in dict.fromkeys(contexts) if c != contexts[i]]
            for j, qa in enumerate(qas):
                if not isinstance(qa, dict) or "question" not in qa:
                    raise UserError(f"{where}: paragraphs[{i}].qas[{j}].question: missing")
                if qa.get("is_impossible"):
                    stats.skipped["SQuAD unanswerable question"] += 1
                    continue
                neg = rng.sample(others, min(opts.negatives, len(others)))
                rows.append(_with_prompt({"query": qa["question"], "pos": [contexts[i]], "neg": neg}, opts))
        return rows

    with open_text(det.path, det.encoding) as src:
        yield from guarded(det, opts, records(det, src, opts, "json", "data"), make)


def msmarco(det: Detected, opts: Options, stats: Stats) -> Iterator[tuple[str, dict]]:
    """MS MARCO TSV: each contiguous run of one query_id becomes a row; relevance > 0 -> pos, else neg."""
    with open_text(det.path, det.encoding) as src:
        for line, query, docs in iter_msmarco(src):
            pos = [d for d, rel in docs if rel > 0]
            if not pos:
                stats.skipped["MS MARCO query without a relevant document"] += 1
                continue
            neg = [d for d, rel in docs if rel <= 0 and d not in pos]
            yield f"{det.path}:{line}", _with_prompt({"query": query, "pos": pos, "neg": neg}, opts)


def trec(det: Detected, opts: Options, stats: Stats) -> Iterator[tuple[str, dict]]:
    """TREC-style XML topics. Topics carrying their passages (``<positive>``/``<negative>`` elements, any
    number of each) become training rows directly. Otherwise, with --qrels and --corpus: judged-relevant
    documents are positives and judged-non-relevant ones negatives; without them: BEIR queries rows
    ``{"_id", "text"}``."""
    if (opts.qrels is None) != (opts.corpus is None):
        raise UserError("TREC topics: give --qrels and --corpus together (or neither, to write BEIR queries)")
    judged = _read_qrels(opts.qrels) if opts.qrels else None
    texts = _read_corpus(opts.corpus, {d for docs in judged.values() for d in docs}) if judged else None
    inline: list[bool] = []

    def make(topic, where):
        query = next((topic[k] for k in ("query", "title", "question", "description") if topic.get(k)), "")
        name = f"topic {topic['number']}" if topic["number"] else "topic"
        if not inline:
            inline.append(bool(topic.get("positive")))
            stats.queries_only = judged is None and not inline[0]
        if inline[0]:
            if not topic.get("positive"):
                raise UserError(f"{where}: {name}: no <positive> passage (the first topic has them inline)")
            return [_with_prompt({"query": query, "pos": topic["positive"],
                                  "neg": [t for t in topic.get("negative", []) if t not in topic["positive"]]}, opts)]
        if not topic["number"]:
            raise UserError(f"{where}: topic: no number attribute (<topic number=\"1\">) and no inline "
                            "<positive> passages; give topics numbers (for --qrels) or their passages")
        if not query:
            raise UserError(f"{where}: {name}: no <query>, <title>, <question> or <description> text")
        if judged is None:
            return [{"_id": topic["number"], "text": query}]
        docs = judged.get(topic["number"], {})
        pos = [texts[d] for d, rel in docs.items() if rel > 0 and d in texts]
        if not pos:
            stats.skipped["TREC topic without a relevant document in the corpus"] += 1
            return []
        neg = [texts[d] for d, rel in docs.items() if rel <= 0 and d in texts]
        return [_with_prompt({"query": query, "pos": pos, "neg": neg}, opts)]

    with open_text(det.path, det.encoding) as src:
        yield from guarded(det, opts, iter_trec_topics(src), make)


def _read_qrels(path: str) -> dict[str, dict[str, float]]:
    """TREC qrels (``qid 0 docid rel``) or BEIR qrels TSV (``query-id corpus-id score`` with a header)."""
    judged: dict[str, dict[str, float]] = {}
    with open_text(path) as src:
        for line in src:
            cells = line.split()
            if not cells or (src.lineno == 1 and cells[0] == "query-id"):
                continue
            if len(cells) not in (3, 4):
                raise UserError(f"{path}:{src.lineno}: expected 'qid 0 docid relevance' (TREC) or "
                                "'query-id corpus-id score' (BEIR)")
            qid, docid, rel = cells[0], cells[-2], number(cells[-1], f"{path}:{src.lineno}", "relevance")
            judged.setdefault(qid, {})[docid] = rel
    return judged


def _read_corpus(path: str, wanted: set[str]) -> dict[str, str]:
    """The text of the judged documents only, from a BEIR corpus.jsonl (``_id``, ``title``, ``text``)."""
    texts = {}
    with open_text(path) as src:
        for line, doc in iter_records(src, "jsonl"):
            if not isinstance(doc, dict) or "_id" not in doc or not isinstance(doc.get("text"), str):
                raise UserError(f"{path}:{line}: expected a BEIR corpus row {{\"_id\", \"title\", \"text\"}}")
            if str(doc["_id"]) in wanted:
                texts[str(doc["_id"])] = doc["text"]
    return texts


def _with_prompt(row: dict, opts: Options) -> dict:
    if opts.prompt:
        row["prompt"] = opts.prompt
    return row


def dump(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False)
