"""``bgeft data convert --to beir``: judged eval data (DuReader relevance, pointwise relevance, training
rows) -> a BEIR directory that ``bgeft eval`` reads and scores with the demo model."""
from __future__ import annotations

import json

import pytest

from bgeft.eval.datasets import load_eval_data

DUREADER = [
    {"question": "river town", "documents": [{"content": "the river runs past the old town", "relevance": 2},
                                             {"content": "a ferry crosses the river", "relevance": 1},
                                             {"content": "bread is baked daily", "relevance": 0}]},
    {"question": "bread", "documents": [{"paragraphs": ["bread is baked daily"], "is_relevant": True},
                                        {"content": "a ferry crosses the river", "is_relevant": False}]},
]
POINTWISE_CSV = ("query,passage,relevance\nriver town,the river runs past the old town,3\n"
                 "river town,bread is baked daily,0\nmountains,snow falls on the high peaks,1\n")
TRAINING = [{"query": "snow", "pos": ["snow falls on the high peaks"],
             "neg": ["bread is baked daily", "the market opens at dawn"]}]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _read(out):
    corpus = [json.loads(x) for x in (out / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    queries = [json.loads(x) for x in (out / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
    return corpus, queries, (out / "qrels" / "test.tsv").read_text(encoding="utf-8")


def test_dureader_relevance_grades_become_qrels(run_cli, tmp_path):
    out = tmp_path / "beir"
    code, stdout, err = run_cli("data", "convert", _jsonl(tmp_path / "du.jsonl", DUREADER), "--to", "beir", "-o", out)
    assert code == 0, err
    assert stdout.splitlines()[-1] == f"wrote BEIR data to {out}: 3 passages, 2 queries, 5 judgements (grades 0, 1, 2)"
    corpus, queries, qrels = _read(out)
    assert corpus == [{"_id": "d1", "title": "", "text": "the river runs past the old town"},
                      {"_id": "d2", "title": "", "text": "a ferry crosses the river"},
                      {"_id": "d3", "title": "", "text": "bread is baked daily"}]
    assert queries == [{"_id": "q1", "text": "river town"}, {"_id": "q2", "text": "bread"}]
    assert qrels == "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t1\nq1\td3\t0\nq2\td3\t1\nq2\td2\t0\n"
    data = load_eval_data(out)
    assert data.qrels == {"q1": {"d1": 2, "d2": 1, "d3": 0}, "q2": {"d3": 1, "d2": 0}}


def test_all_three_sources_share_one_deduplicated_corpus_and_evaluate(run_cli, tmp_path, demo_model):
    ins = [_jsonl(tmp_path / "du.jsonl", DUREADER), tmp_path / "pw.csv", _jsonl(tmp_path / "tr.jsonl", TRAINING)]
    ins[1].write_text(POINTWISE_CSV, encoding="utf-8")
    out = tmp_path / "beir"
    code, stdout, err = run_cli("data", "convert", *ins, "--to", "beir", "-o", out)
    assert code == 0, err
    assert "pw.csv: detected CSV with fields query, passage, relevance, pointwise records" in stdout
    corpus, queries, qrels = _read(out)
    assert [d["text"] for d in corpus] == ["the river runs past the old town", "a ferry crosses the river",
                                           "bread is baked daily", "snow falls on the high peaks",
                                           "the market opens at dawn"]
    assert [q["text"] for q in queries] == ["river town", "bread", "mountains", "snow"]
    # the first grade of a (query, passage) pair is kept; training negatives join the corpus unjudged
    assert qrels.splitlines()[6:] == ["q3\td4\t1", "q4\td4\t1"]
    code, stdout, err = run_cli("eval", "retriever", "--model", demo_model, "--data", out, "--k", "1,5",
                                "--no-progress", "--no-cache", "--device", "cpu", "--out", tmp_path / "eval")
    assert code == 0, err
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["data"]["n_queries"] == 4 and metrics["data"]["n_docs"] == 5
    assert metrics["results"]["dense"]["metrics"]["recall@5"] == 1.0  # 5 passages: all found in the top 5


@pytest.mark.parametrize("value, shown", [(1.5, "1.5"), (-1, "-1"), ("high", "'high'")])
def test_bad_grade_names_file_line_and_writes_nothing(run_cli, tmp_path, value, shown):
    rows = [DUREADER[0], {"question": "q", "documents": [{"content": "p", "relevance": value}]}]
    src = _jsonl(tmp_path / "du.jsonl", rows)
    code, _, err = run_cli("data", "convert", src, "--to", "beir", "-o", tmp_path / "beir")
    assert code == 2
    assert err == (f"bgeft: error: {src}:2: documents[0].relevance: grade {shown} is not a whole number of 0 or more; "
                   "use integer relevance grades (0 = not relevant, 1, 2, ... = more relevant); or pass "
                   "--skip-invalid to leave bad records out\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["du.jsonl"]


def test_skip_invalid_leaves_the_bad_record_out(run_cli, tmp_path):
    src = tmp_path / "pw.csv"
    src.write_text(POINTWISE_CSV + "mountains,a bad grade,2.5\n", encoding="utf-8")
    code, stdout, err = run_cli("data", "convert", src, "--to", "beir", "-o", tmp_path / "beir", "--skip-invalid")
    assert code == 0, err
    assert "kept 3, rejected 1: relevance: grade '2.5' is not a whole number of 0 or more (1)" in stdout
    _, _, qrels = _read(tmp_path / "beir")
    assert qrels == "query-id\tcorpus-id\tscore\nq1\td1\t3\nq1\td2\t0\nq2\td3\t1\n"
    assert json.loads((tmp_path / "beir.rejects").read_text(encoding="utf-8"))["line"] == 5


def test_other_shapes_and_empty_judgements_are_refused(run_cli, tmp_path):
    sts = _jsonl(tmp_path / "sts.jsonl", [{"sentence1": "a", "sentence2": "b", "score": 1}])
    code, _, err = run_cli("data", "convert", sts, "--to", "beir", "-o", tmp_path / "beir")
    assert code == 2 and err == (f"bgeft: error: {sts}: --to beir reads DuReader documents with relevance/is_relevant, "
                                 "pointwise query/passage/relevance records or query/pos/neg rows, not sts records\n")
    missing = _jsonl(tmp_path / "du.jsonl", [{"question": "q", "documents": [{"content": "p"}]}])
    code, _, err = run_cli("data", "convert", missing, "--to", "beir", "-o", tmp_path / "beir")
    assert code == 2 and (f"{missing}:1: documents[0]: relevance (a grade 0, 1, 2...) or is_relevant (true/false) "
                          "missing") in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["du.jsonl", "sts.jsonl"]


def test_output_goes_through_the_guard(run_cli, tmp_path):
    src = _jsonl(tmp_path / "du.jsonl", DUREADER)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    code, _, err = run_cli("data", "convert", src, "--to", "beir", "-o", tmp_path / "full")
    assert code == 2 and "exists and is not empty" in err
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]


def test_relevance_threshold_on_converted_graded_qrels(run_cli, tmp_path, demo_model):
    out = tmp_path / "beir"
    assert run_cli("data", "convert", _jsonl(tmp_path / "du.jsonl", DUREADER), "--to", "beir", "-o", out)[0] == 0
    results = {}
    for level in (1, 2):
        code, _, err = run_cli("eval", "retriever", "--model", demo_model, "--data", out, "--k", "1,3", "--no-progress",
                               "--no-cache", "--device", "cpu", "--relevance-threshold", level,
                               "--out", tmp_path / f"t{level}")
        assert code == 0, err
        results[level] = json.loads((tmp_path / f"t{level}" / "metrics.json").read_text(encoding="utf-8"))
        assert results[level]["settings"]["relevance_threshold"] == level
        assert (
            f"- Relevance: a document counts as relevant for recall, precision, MAP, MRR and success when its "
            f"grade is >= {level}; nDCG uses the graded values"
        ) in (tmp_path / f"t{level}" / "report.md").read_text()
    one, two = (results[level]["results"]["dense"]["per_query"] for level in (1, 2))
    assert one["q1"]["ndcg@3"] == two["q1"]["ndcg@3"] and one["q2"]["ndcg@3"] == two["q2"]["ndcg@3"]
    assert one["q2"]["recall@3"] == 1 and two["q2"]["recall@3"] == 0  # q2's only grade is 1 < 2
    code, _, err = run_cli("eval", "compare", "--baseline", tmp_path / "t1" / "metrics.json",
                           "--candidate", tmp_path / "t2" / "metrics.json")
    assert code == 2 and err == ("bgeft: error: baseline was scored with --relevance-threshold 1 and candidate with 2; "
                                 "evaluate both with the same threshold\n")
    code, _, err = run_cli("eval", "retriever", "--model", demo_model, "--data", out, "--relevance-threshold", "0")
    assert code == 2 and "--relevance-threshold 0: must be a whole grade of 1 or more" in err
