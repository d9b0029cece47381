"""Every scoring mode on the tiny M3 model gives valid rankings; encodings are cached and reused."""
import json

import numpy as np
import pytest

from bgeft.errors import UserError
from bgeft.eval.datasets import load_eval_data
from bgeft.eval.report import RETRIEVER_SECTIONS
from bgeft.eval.retrieval import evaluate_retriever
from bgeft.eval.search import colbert_scores, sparse_scores
from bgeft.models.embedder import Encoder


@pytest.fixture(scope="module")
def result(m3_tiny, beir_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ret")
    return evaluate_retriever(m3_tiny, beir_dir, ks=(1, 3, 10), out_dir=out / "out", cache_dir=out / "cache",
                              device="cpu", progress=False), out


def test_all_modes_give_valid_rankings(result, beir_dir):
    res, _ = result
    data = load_eval_data(beir_dir)
    assert res["settings"]["modes"] == ["dense", "sparse", "colbert", "hybrid"]
    for mode, run in res["_runs"].items():
        assert set(run) == {"q1", "q2", "q3"}  # q4 has no relevant doc: skipped
        for ranked in run.values():
            ids = [d for d, _ in ranked]
            scores = [s for _, s in ranked]
            assert len(ids) == len(set(ids)) and set(ids) <= set(data.corpus)
            assert scores == sorted(scores, reverse=True) and all(np.isfinite(scores))
            if mode != "sparse":
                assert len(ids) == 6  # dense candidates cover the 6-doc corpus
        metrics = res["results"][mode]["metrics"]
        assert 0 < metrics["ndcg@10"] <= 1
        if mode != "sparse":  # the whole 6-doc corpus is ranked
            assert metrics["recall@10"] == 1.0
    assert res["data"]["skipped_queries"] == ["q4"]


@pytest.mark.parametrize("weights,mode", [((1, 0, 0), "dense"), ((0, 0, 1), "colbert")])
def test_hybrid_with_one_weight_equals_that_mode(m3_tiny, beir_dir, result, weights, mode):
    res, out = result
    one = evaluate_retriever(m3_tiny, beir_dir, modes=[mode, "hybrid"], weights=weights, ks=(10,),
                             cache_dir=out / "cache", device="cpu", progress=False)
    for q, ranked in one["_runs"]["hybrid"].items():
        # same documents with the same scores (the random tiny model's scores tie at float precision,
        # so the order of near-equal scores is not compared)
        assert dict(ranked) == pytest.approx(dict(one["_runs"][mode][q]), abs=1e-5)


def test_colbert_and_sparse_scores_match_flagembedding(m3_tiny, beir_dir):
    data = load_eval_data(beir_dir)
    enc = Encoder(m3_tiny, device="cpu")
    fe = enc.backend.fe  # FlagEmbedding's own BGEM3FlagModel, the reference
    docs = enc.encode_corpus(data.doc_texts(), {"dense", "sparse", "colbert"})
    qs = enc.encode_queries([data.queries["q1"]], {"dense", "sparse", "colbert"})
    raw_q = fe.encode_queries([data.queries["q1"]], return_sparse=True, return_colbert_vecs=True)
    raw_d = fe.encode_corpus(data.doc_texts(), return_sparse=True, return_colbert_vecs=True)
    assert np.abs(docs.dense - raw_d["dense_vecs"]).max() < 1e-5
    cand = np.arange(6)
    ours_c = colbert_scores(docs, qs.colbert_of(0), cand)
    ours_s = sparse_scores(docs, qs.sparse[0], cand)
    for i in cand:
        assert ours_c[i] == pytest.approx(
            float(fe.colbert_score(raw_q["colbert_vecs"][0], raw_d["colbert_vecs"][i])), abs=1e-5
        )
        assert ours_s[i] == pytest.approx(fe.compute_lexical_matching_score(raw_q["lexical_weights"][0],
                                                                            raw_d["lexical_weights"][i]), abs=1e-5)


def test_second_run_reuses_the_corpus_encodings(m3_tiny, beir_dir, result, monkeypatch):
    res, out = result
    assert res["cache"]["hit"] is False
    calls = []
    original = Encoder._encode_here

    def counting(self, texts, max_len, outputs, kind, lengths):
        if kind == "passage":
            calls.append(len(texts))
        return original(self, texts, max_len, outputs, kind, lengths)

    monkeypatch.setattr(Encoder, "_encode_here", counting)
    from bgeft.models import index

    searched = []  # the reused dense vectors are a read-only memmap, searched block by block
    block_search = index.BlockFlatIP.search
    monkeypatch.setattr(index.BlockFlatIP, "search",
                        lambda self, *a, **kw: searched.append(self.ntotal) or block_search(self, *a, **kw))
    again = evaluate_retriever(m3_tiny, beir_dir, ks=(1, 3, 10), cache_dir=out / "cache", device="cpu", progress=False)
    assert again["cache"]["hit"] is True and calls == [] and searched == [6]
    for mode in again["results"]:
        assert again["results"][mode]["metrics"] == res["results"][mode]["metrics"]
    fresh = evaluate_retriever(m3_tiny, beir_dir, ks=(10,), cache_dir=out / "cache2", device="cpu", progress=False)
    assert fresh["cache"]["hit"] is False and calls == [6]


def test_outputs_written(result):
    res, out = result
    d = out / "out"
    saved = json.loads((d / "metrics.json").read_text())
    assert (
        saved["results"]["hybrid"]["per_query"]["q1"]["ndcg@10"]
        == res["results"]["hybrid"]["per_query"]["q1"]["ndcg@10"]
    )
    assert "_runs" not in saved and (d / "curves.png").stat().st_size > 1000
    report = (d / "report.md").read_text()
    assert all(s in report for s in RETRIEVER_SECTIONS)
    run = json.loads((d / "runs" / "hybrid.json").read_text())
    assert list(run["q1"]) == [doc for doc, _ in res["_runs"]["hybrid"]["q1"]]


def test_plain_model_is_dense_only(demo_model, beir_dir, tmp_path):
    res = evaluate_retriever(demo_model, beir_dir, ks=(10,), cache_dir=tmp_path, device="cpu", progress=False)
    assert res["model"]["class"] == "FlagModel" and list(res["results"]) == ["dense"]
    with pytest.raises(
        UserError,
        match=r"sparse, hybrid scoring needs BGE-M3's sparse and ColBERT heads \(colbert_linear\.pt "
        r"and sparse_linear\.pt are not in the model directory\), so this model supports "
        r"only dense mode; pass --modes dense",
    ):
        evaluate_retriever(demo_model, beir_dir, modes="dense,sparse,hybrid", cache_dir=tmp_path, device="cpu")


def test_bad_options(m3_tiny, beir_dir):
    with pytest.raises(
        UserError, match=r"--modes: unknown mode\(s\) splade; choose from dense, sparse, colbert, hybrid"
    ):
        evaluate_retriever(m3_tiny, beir_dir, modes="dense,splade", cache_dir=False, device="cpu")
    with pytest.raises(UserError, match=r"--weights \[0.5, 0.5\]: expected three finite non-negative numbers"):
        evaluate_retriever(m3_tiny, beir_dir, weights="0.5,0.5", cache_dir=False, device="cpu")


def test_cli_smoke_on_example_data(run_cli, m3_tiny, example_data, tmp_path):
    if not (example_data / "eval" / "qrels" / "test.tsv").is_file():
        pytest.skip("example_data/eval not present")
    code, out, err = run_cli(
        "eval",
        "retriever",
        "--model",
        m3_tiny,
        "--data",
        example_data / "eval",
        "--device",
        "cpu",
        "--out",
        tmp_path / "o",
        "--cache-dir",
        tmp_path / "c",
        "--no-progress",
        "--k",
        "1,10",
    )
    assert code == 0, err
    assert "| hybrid |" in out and (tmp_path / "o" / "report.md").is_file()


@pytest.mark.gpu
def test_cuda_run_matches_cpu_ranking_quality(m3_tiny, beir_dir, tmp_path):
    cpu = evaluate_retriever(m3_tiny, beir_dir, ks=(10,), cache_dir=False, device="cpu", progress=False)
    gpu = evaluate_retriever(m3_tiny, beir_dir, ks=(10,), cache_dir=False, device="cuda:0", fp16=False, progress=False)
    assert gpu["model"]["devices"] == ["cuda:0"]
    for mode in cpu["results"]:
        assert gpu["results"][mode]["metrics"]["recall@10"] == pytest.approx(
            cpu["results"][mode]["metrics"]["recall@10"]
        )


@pytest.mark.npu
def test_npu_run(m3_tiny, beir_dir):
    res = evaluate_retriever(m3_tiny, beir_dir, ks=(10,), cache_dir=False, device="npu:0", fp16=False, progress=False)
    assert res["model"]["devices"] == ["npu:0"] and set(res["results"]) == {"dense", "sparse", "colbert", "hybrid"}


def test_unwritable_cache_dir(m3_tiny, beir_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match=r"--cache-dir .*file: cannot write the corpus encodings .*pass --no-cache"):
        evaluate_retriever(m3_tiny, beir_dir, ks=(10,), cache_dir=blocker, device="cpu", progress=False)
