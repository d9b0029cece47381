"""The shipped example_data/ is well-formed and self-consistent (pure json, no models)."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "example_data"
BOOK = ROOT / "book" / "river_town.txt"
HEADING = re.compile(r"^第[一二三四五六七八九十]+章 \S+$")
TRAINING = ["retrieval", "sts", "classification-no_in_batch_neg", "clustering-no_in_batch_neg",
            "reranker", "distill"]


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        assert line.strip(), f"{path}:{n}: blank line"
        row = json.loads(line)
        assert isinstance(row, dict), f"{path}:{n}: not an object"
        rows.append(row)
    assert rows, f"{path}: empty"
    return rows


def book_chapters() -> list[tuple[str, list[str]]]:
    chapters: list[tuple[str, list[str]]] = []
    for block in BOOK.read_text(encoding="utf-8").strip().split("\n\n"):
        block = block.strip()
        if HEADING.match(block):
            chapters.append((block, []))
        else:
            assert chapters, "text before the first chapter heading"
            chapters[-1][1].append(block)
    return chapters


def book_paragraphs() -> set[str]:
    return {p for _, paras in book_chapters() for p in paras}


def test_every_jsonl_parses_and_total_size_is_small():
    files = sorted(ROOT.rglob("*.jsonl"))
    assert len(files) == 12
    for path in files:
        read_jsonl(path)
    assert sum(p.stat().st_size for p in ROOT.rglob("*") if p.is_file()) < 300_000


def test_book_has_chapters_and_sentence_ended_paragraphs():
    chapters = book_chapters()
    assert [h.split()[0] for h, _ in chapters] == ["第一章", "第二章", "第三章", "第四章", "第五章"]
    for heading, paras in chapters:
        assert len(paras) >= 10, heading
        for p in paras:
            assert "\n" not in p and p[-1] in "。！？；」…", p[-20:]
    text = BOOK.read_text(encoding="utf-8")
    assert len(re.findall(r"[\u4e00-\u9fff]", text)) > 6000
    assert "……" in text and "「" in text


def test_questions_have_verbatim_unique_hints():
    rows = read_jsonl(ROOT / "book" / "questions.jsonl")
    paras = book_paragraphs()
    assert len(rows) >= 40
    assert {r["lang"] for r in rows} == {"zh", "en"}
    assert sum(r["lang"] == "en" for r in rows) >= len(rows) // 4
    for r in rows:
        assert set(r) == {"query", "answer_hint", "lang"}
        assert sum(r["answer_hint"] in p for p in paras) == 1, r["answer_hint"]


@pytest.mark.parametrize("name", TRAINING)
def test_training_rows_have_flagembedding_shape(name):
    rows = read_jsonl(ROOT / name / "train.jsonl")
    assert len(rows) >= 20
    for r in rows:
        assert set(r) <= {"query", "pos", "neg", "pos_scores", "neg_scores", "prompt", "type"}
        assert isinstance(r["query"], str) and r["query"].strip()
        for key in ("pos", "neg"):
            assert r[key] and all(isinstance(x, str) and x.strip() for x in r[key])
        assert not set(r["pos"]) & set(r["neg"])
        assert len({r.get("type") for r in rows}) == 1 and len({r.get("prompt") for r in rows}) == 1


@pytest.mark.parametrize("name", ["retrieval", "reranker", "distill"])
def test_passages_are_book_paragraphs(name):
    paras = book_paragraphs()
    for r in read_jsonl(ROOT / name / "train.jsonl"):
        assert set(r["pos"]) | set(r["neg"]) <= paras
        if name != "retrieval":
            assert len(r["neg"]) >= 7  # train_group_size 8


def test_distill_scores_match_passages():
    for r in read_jsonl(ROOT / "distill" / "train.jsonl"):
        assert len(r["pos_scores"]) == len(r["pos"]) and len(r["neg_scores"]) == len(r["neg"])
        assert all(isinstance(s, float) for s in r["pos_scores"] + r["neg_scores"])
        assert min(r["pos_scores"]) > max(r["neg_scores"])


def test_raw_files_match_their_training_files():
    for row in read_jsonl(ROOT / "raw" / "sts_pairs.jsonl"):
        assert set(row) == {"sentence1", "sentence2", "score"} and 0 <= row["score"] <= 5
    for name in ("classification-no_in_batch_neg", "clustering-no_in_batch_neg"):
        raw = read_jsonl(ROOT / "raw" / (name.split("-")[0] + ".jsonl"))
        train = read_jsonl(ROOT / name / "train.jsonl")
        labels = {r["label"] for r in raw}
        assert len(labels) >= 4
        assert [(r["text"], r["label"]) for r in raw] == [(r["query"], r["pos"][0]) for r in train]
        for r in train:
            assert set(r["pos"]) | set(r["neg"]) == labels


def test_eval_is_consistent_beir():
    corpus = read_jsonl(ROOT / "eval" / "corpus.jsonl")
    queries = read_jsonl(ROOT / "eval" / "queries.jsonl")
    assert [c["text"] for c in corpus] == [p for _, paras in book_chapters() for p in paras]
    assert all(set(c) == {"_id", "title", "text"} and HEADING.match(c["title"]) for c in corpus)
    assert all(re.fullmatch(r"river_town-c\d-p\d{3}", c["_id"]) for c in corpus)
    doc_ids = {c["_id"] for c in corpus}
    query_ids = {q["_id"] for q in queries}
    assert len(doc_ids) == len(corpus) and len(query_ids) == len(queries) >= 20
    with open(ROOT / "eval" / "qrels" / "test.tsv", encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        assert next(reader) == ["query-id", "corpus-id", "score"]
        qrels = [(q, d, int(s)) for q, d, s in reader]
    assert {q for q, _, _ in qrels} == query_ids
    assert {d for _, d, _ in qrels} <= doc_ids
    assert {s for _, _, s in qrels} == {1, 2}
    assert {q for q, _, s in qrels if s == 2} == query_ids
    trained = {r["query"] for name in TRAINING for r in read_jsonl(ROOT / name / "train.jsonl")}
    trained |= {r["query"] for r in read_jsonl(ROOT / "book" / "questions.jsonl")}
    assert not {q["text"] for q in queries} & trained
