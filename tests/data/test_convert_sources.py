"""The source formats users bring: DuReader dumps under a "data" key with "content" documents, TREC-style
XML carrying its passages inline, and pointwise query/passage/label reranker data."""
from __future__ import annotations

import json


def rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_dureader_data_wrapper_with_content_documents(tmp_path, run_cli):
    src = tmp_path / "dureader.json"
    src.write_text(json.dumps({"data": [
        {"question": "渡口在哪里？", "answers": ["镇子东头"], "documents": [
            {"content": "渡口在镇子东头。", "is_relevant": True},
            {"content": "桥在西边。", "is_relevant": False}]},
        {"question": "钟是谁做的？", "answers": [], "documents": [{"content": "河水涨了。", "is_relevant": False}]},
    ]}, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    code, stdout, err = run_cli("data", "convert", src, "-o", out)
    assert code == 0, err
    assert "dureader records" in stdout and "skipped 1 DuReader question without a relevant document" in stdout
    assert rows(out) == [{"query": "渡口在哪里？", "pos": ["渡口在镇子东头。"], "neg": ["桥在西边。"]}]


def test_trec_xml_with_inline_passages_and_no_numbers(tmp_path, run_cli):
    src = tmp_path / "topics.xml"
    src.write_text("<topics>\n<topic><query>渡口在哪里？</query><positive>渡口在镇子东头。</positive>"
                   "<positive>东头有渡口。</positive><negative>桥在西边。</negative><negative>学校在山上。</negative>"
                   "</topic>\n<topic><query>who repairs clocks</query><positive>The watchmaker.</positive></topic>\n"
                   "</topics>\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    code, _, err = run_cli("data", "convert", src, "-o", out)
    assert code == 0, err
    assert rows(out) == [
        {"query": "渡口在哪里？", "pos": ["渡口在镇子东头。", "东头有渡口。"], "neg": ["桥在西边。", "学校在山上。"]},
        {"query": "who repairs clocks", "pos": ["The watchmaker."], "neg": []},
    ]


POINTWISE = [
    {"query": "渡口在哪里？", "passage": "渡口在镇子东头。", "label": 2},
    {"query": "who repairs clocks", "passage": "The watchmaker repairs clocks.", "label": 1},
    {"query": "渡口在哪里？", "passage": "桥在西边。", "label": 0},
    {"query": "渡口在哪里？", "passage": "东头有渡口。", "label": 1},
    {"query": "no positive here", "passage": "nothing", "label": 0},
]


def test_pointwise_labels_grouped_by_query(tmp_path, run_cli):
    src = tmp_path / "pairs.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in POINTWISE), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    code, stdout, err = run_cli("data", "convert", src, "-o", out)
    assert code == 0, err
    assert "pointwise records" in stdout and "skipped 1 query without a relevant passage (label > 0)" in stdout
    assert rows(out) == [
        {"query": "渡口在哪里？", "pos": ["渡口在镇子东头。", "东头有渡口。"], "neg": ["桥在西边。"]},
        {"query": "who repairs clocks", "pos": ["The watchmaker repairs clocks."], "neg": []},
    ]
    code, _, err = run_cli("data", "convert", src, "-o", out, "--graded")
    assert code == 0, err
    assert rows(out)[0] == {"query": "渡口在哪里？", "pos": ["渡口在镇子东头。", "东头有渡口。"], "neg": ["桥在西边。"],
                            "pos_scores": [2.0, 1.0], "neg_scores": [0.0]}


def test_pointwise_csv_with_a_bad_label_skipped(tmp_path, run_cli):
    src = tmp_path / "pairs.csv"
    src.write_text("query,passage,label\nq1,p1,1\nq1,p2,yes\nq1,p3,0\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    code, _, err = run_cli("data", "convert", src, "-o", out)
    assert code == 2
    assert err == (f"bgeft: error: {src}:3: label: expected a number, found 'yes'; or pass --skip-invalid to leave "
                   "bad records out\n")
    code, stdout, err = run_cli("data", "convert", src, "-o", out, "--skip-invalid")
    assert code == 0, err
    assert "kept 1, rejected 1: label: expected a number" in stdout
    assert rows(out) == [{"query": "q1", "pos": ["p1"], "neg": ["p3"]}]
