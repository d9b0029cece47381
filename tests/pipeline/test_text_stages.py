"""Questions are mapped onto passages by their answer span; the split keeps dev/test answers out of training."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bgeft.errors import UserError
from bgeft.pipeline.graph import build_stages
from bgeft.pipeline.runner import Runner
from bgeft.pipeline.spec import load_spec
from bgeft.pipeline.stages.text_stages import map_questions, run_corpus, run_queries, run_split

from .helpers import tiny_pipeline

PASSAGES = [{"_id": "b-c1-p1", "text": "镇上一共住着三百一十二户人家。"},
            {"_id": "b-c1-p2", "text": "渡口在镇子的南头，\n摆渡的人叫周老四。"},
            {"_id": "b-c2-p1", "text": "The bridge opened on 26 December 1990."}]


def test_answer_hints_map_to_the_passages_holding_them(tmp_path):
    q = tmp_path / "q.jsonl"
    q.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"query": "多少户人家？", "answer_hint": "三百一十二户", "lang": "zh"},
        {"query": "摆渡的人是谁？", "answer_hint": "南头，摆渡的人", "lang": "zh"},     # spans a line break
        {"query": "When did the bridge open?", "pos": ["The bridge opened on 26 December 1990."]},
        {"query": "不存在", "answer_hint": "没有这句话"},
    ]) + "\n", encoding="utf-8")
    rows, missed = map_questions(q, PASSAGES)
    assert [(r["_id"], r["positives"]) for r in rows] == [("q1", ["b-c1-p1"]), ("q2", ["b-c1-p2"]),
                                                          ("q3", ["b-c2-p1"])]
    assert missed == [f"{q}:4: '不存在': its answer was found in no passage"]


def test_a_question_without_hint_or_pos_names_its_line(tmp_path):
    q = tmp_path / "q.jsonl"
    q.write_text('{"query": "a"}\n', encoding="utf-8")
    with pytest.raises(UserError, match=rf"{q}:1: needs answer_hint"):
        map_questions(q, PASSAGES)
    q.write_text('{"query": "a", "answer_hint": "x"}\n{"query": 3}\n', encoding="utf-8")
    with pytest.raises(UserError, match=rf"{q}:2: query: expected a non-empty string"):
        map_questions(q, PASSAGES)


def test_example_book_split_has_no_leakage(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    spec = load_spec(tiny_pipeline(tmp_path, model), ["corpus.max_tokens=null"])  # paragraphs, no tokenizer
    stages = build_stages(spec)
    Runner(spec, stages[:3], out=open("/dev/null", "w")).run(
        {"corpus": run_corpus, "queries": run_queries, "split": run_split})
    split = stages[2].dir
    counts = json.loads((split / "split.json").read_text())["questions"]
    assert counts["train"] + counts["dev"] + counts["test"] == 41 and counts["dev"] >= 8 and counts["test"] >= 8

    def qrels(name):
        lines = (split / name / "qrels" / "test.tsv").read_text().splitlines()
        assert lines[0] == "query-id\tcorpus-id\tscore"
        return {line.split("\t")[1] for line in lines[1:]}

    corpus = {r["_id"]: r["text"] for r in map(json.loads, (stages[0].dir / "corpus.jsonl").read_text().splitlines())}
    held_out = {corpus[i] for i in qrels("dev") | qrels("test")}
    train = [json.loads(line) for line in (split / "train.jsonl").read_text().splitlines()]
    pool = {json.loads(line)["text"] for line in (split / "train_corpus.jsonl").read_text().splitlines()}
    assert len(train) == counts["train"]
    assert not held_out & {p for row in train for p in row["pos"]}      # no dev/test answer trains
    assert not held_out & pool                                          # nor is mined as a negative
    assert not qrels("dev") & qrels("test")
    assert Path(split / "dev" / "corpus.jsonl").read_text().count("\n") == len(corpus)  # full book is searched
