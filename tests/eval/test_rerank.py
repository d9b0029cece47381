"""Reranker and two-stage pipeline evaluation on the tiny cross-encoder."""
import json

import pytest

from bgeft.errors import UserError
from bgeft.eval.datasets import load_eval_data
from bgeft.eval.report import RERANK_SECTIONS
from bgeft.eval.rerank import evaluate_pipeline, evaluate_reranker, load_candidates


@pytest.fixture(scope="module")
def data(beir_dir):
    return load_eval_data(beir_dir)


def test_candidate_file_formats(data, tmp_path):
    plain = tmp_path / "run.json"
    plain.write_text(json.dumps({"q1": {"d2": 0.5, "d1": 0.9}}))
    wrapped = tmp_path / "fe.json"
    wrapped.write_text(json.dumps({"eval_name": "x", "search_results": {"q1": {"d2": 0.5, "d1": 0.9}}}))
    trec = tmp_path / "run.trec"
    trec.write_text("q1 Q0 d1 1 0.9 x\nq1 Q0 d2 2 0.5 x\n")
    for f in (plain, wrapped, trec):
        assert load_candidates(f, data) == {"q1": [("d1", 0.9), ("d2", 0.5)]}
    plain.write_text(json.dumps({"q1": {"nope": 1.0}}))
    with pytest.raises(UserError, match=r"run\.json: 1 candidate doc id\(s\) are not in the corpus, e\.g\. 'nope'"):
        load_candidates(plain, data)


def test_rerank_top_m_only_reorders_the_head(tiny_reranker, data, tmp_path):
    run = {"q1": [("d6", 6.0), ("d5", 5.0), ("d4", 4.0), ("d3", 3.0), ("d2", 2.0), ("d1", 1.0)],
           "q2": [("d1", 1.0)], "q3": []}
    cands = tmp_path / "c.json"
    cands.write_text(json.dumps({q: dict(r) for q, r in run.items()}))
    res = evaluate_reranker(tiny_reranker, None, data=data, candidates=cands, top=6, rerank_top=3, ks=(1, 3),
                            device="cpu", out_dir=tmp_path / "out", progress=False)
    reranked = res["_runs"]["reranked"]["q1"]
    assert sorted(d for d, _ in reranked[:3]) == ["d4", "d5", "d6"]
    assert [s for _, s in reranked[:3]] == sorted((s for _, s in reranked[:3]), reverse=True)
    assert reranked[3:] == run["q1"][3:]
    m = res["results"]["reranked"]["metrics"]
    assert {"acc@1", "mrr", "ndcg@3", "err@3"} <= set(m)
    assert res["gain"]["recall@3"] == pytest.approx(
        m["recall@3"] - res["results"]["first_stage"]["metrics"]["recall@3"]
    )
    assert res["timing"]["pairs_scored"] == 3 + 1
    report = (tmp_path / "out" / "report.md").read_text()
    assert all(s in report for s in RERANK_SECTIONS)


def test_pipeline_cli(run_cli, m3_tiny, tiny_reranker, beir_dir, tmp_path):
    code, out, err = run_cli(
        "eval",
        "pipeline",
        "--retriever",
        m3_tiny,
        "--reranker",
        tiny_reranker,
        "--data",
        beir_dir,
        "--retrieve-top",
        "5",
        "--rerank-top",
        "3",
        "--k",
        "1,3",
        "--device",
        "cpu",
        "--cache-dir",
        tmp_path / "c",
        "--out",
        tmp_path / "p",
        "--no-progress",
    )
    assert code == 0, err
    saved = json.loads((tmp_path / "p" / "metrics.json").read_text())
    assert saved["kind"] == "pipeline" and saved["settings"]["first_stage"].endswith("(hybrid mode)")
    assert {r["metric"] for r in saved["significance"]} == {"acc@1", "mrr", "map"}
    assert "| gain |" in out
    first = json.loads((tmp_path / "p" / "runs" / "first_stage.json").read_text())
    assert sorted(first) == ["q1", "q2", "q3"] and all(len(docs) == 5 for docs in first.values())


def test_bm25_first_stage_by_default(tiny_reranker, data):
    res = evaluate_reranker(tiny_reranker, None, data=data, top=4, ks=(1,), device="cpu", progress=False)
    assert res["settings"]["first_stage"].startswith("BM25")
    assert res["_runs"]["first_stage"]["q1"][0][0] == "d1"  # "ferry" + "river" match d1 best


def test_bad_rerank_top(tiny_reranker, data):
    with pytest.raises(UserError, match=r"--rerank-top 20: must be between 1 and --retrieve-top/--top \(10\)"):
        evaluate_pipeline(tiny_reranker, tiny_reranker, None, data=data, retrieve_top=10, rerank_top=20)
