"""Paired comparison: exact degenerate cases, hand-checkable statistics, a full report on two models."""
import json

import numpy as np
import pytest
from scipy import stats

from bgeft.errors import UserError
from bgeft.eval.compare import compare_runs, paired_stats
from bgeft.eval.report import COMPARE_SECTIONS
from bgeft.eval.retrieval import evaluate_retriever


def test_identical_scores_give_zero_delta_and_p_one():
    row = paired_stats([0.1, 0.5, 0.9, 0.3], [0.1, 0.5, 0.9, 0.3])
    assert row["delta"] == 0 and row["p_ttest"] == 1.0 and row["p_permutation"] == 1.0
    assert (row["ci_low"], row["ci_high"], row["cohens_d"]) == (0.0, 0.0, 0.0)
    assert (row["wins"], row["ties"], row["losses"]) == (0, 4, 0)


def test_constant_shift_has_undefined_t_test_but_exact_randomisation_p():
    row = paired_stats([0.1, 0.2, 0.3], [0.2, 0.3, 0.4])
    assert row["delta"] == pytest.approx(0.1) and row["wins"] == 3
    assert row["p_ttest"] is None and row["cohens_d"] is None
    assert row["p_permutation"] == pytest.approx(2 / 8)  # exact: only all-plus / all-minus sign flips are as extreme


def test_values_agree_with_definitions():
    b = [0.2, 0.4, 0.1, 0.6, 0.3, 0.5]
    c = [0.3, 0.4, 0.3, 0.5, 0.6, 0.9]
    row = paired_stats(b, c, n_resamples=2000)
    d = np.subtract(c, b)
    assert row["delta"] == pytest.approx(d.mean())
    assert row["cohens_d"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert row["p_ttest"] == pytest.approx(stats.ttest_rel(c, b).pvalue)
    assert (row["wins"], row["ties"], row["losses"]) == (4, 1, 1)
    assert row["ci_low"] < row["delta"] < row["ci_high"]
    assert 0 < row["p_permutation"] <= 1


@pytest.fixture(scope="module")
def evaluations(m3_tiny, m3_tiny_tuned, beir_dir, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cmp-cache")
    kw = dict(ks=(1, 3, 10), cache_dir=cache, device="cpu", progress=False)
    return (evaluate_retriever(m3_tiny, beir_dir, **kw), evaluate_retriever(m3_tiny, beir_dir, **kw),
            evaluate_retriever(m3_tiny_tuned, beir_dir, **kw))


def test_same_model_twice(evaluations):
    base, same, _ = evaluations
    res = compare_runs(base, same, metrics=("ndcg@10", "mrr@10", "recall@3"))
    assert len(res["rows"]) == 4 * 3
    for row in res["rows"]:
        assert row["delta"] == 0 and row["p_ttest"] == 1 and row["p_permutation"] == 1 and row["ties"] == 3


def test_tuned_vs_base_report_has_every_section(run_cli, m3_tiny, m3_tiny_tuned, beir_dir, tmp_path, evaluations):
    base, _, tuned = evaluations
    assert base["model"]["fingerprint"] != tuned["model"]["fingerprint"]
    code, out, err = run_cli("eval", "compare", "--baseline", m3_tiny, "--candidate", m3_tiny_tuned, "--data", beir_dir,
                             "--out", tmp_path / "cmp", "--device", "cpu", "--cache-dir", tmp_path / "c",
                             "--no-progress", "--resamples", "500", "--k", "1,3,10")
    assert code == 0, err
    report = (tmp_path / "cmp" / "report.md").read_text()
    for section in COMPARE_SECTIONS:
        assert section in report
    assert "| hybrid | ndcg@10 |" in report
    saved = json.loads((tmp_path / "cmp" / "metrics.json").read_text())
    assert {r["mode"] for r in saved["rows"]} == {"dense", "sparse", "colbert", "hybrid"}
    assert (tmp_path / "cmp" / "delta_ndcg_at_10.png").is_file() and (tmp_path / "cmp" / "curves.png").is_file()
    assert (tmp_path / "cmp" / "baseline" / "metrics.json").is_file()
    # the saved evaluations can be compared again without re-running the models
    again = compare_runs(
        tmp_path / "cmp" / "baseline", tmp_path / "cmp" / "candidate" / "metrics.json", n_resamples=500
    )
    assert again["rows"][0]["delta"] == pytest.approx(saved["rows"][0]["delta"])


def test_different_data_is_refused(evaluations):
    base, same, _ = evaluations
    other = json.loads(json.dumps({k: v for k, v in same.items() if not k.startswith("_")}))
    other["data"]["fingerprint"] = "0" * 64
    with pytest.raises(UserError, match=r"baseline and candidate were evaluated on different data"):
        compare_runs(base, other)


def test_missing_metrics_json(tmp_path):
    with pytest.raises(
        UserError, match=r"no metrics\.json; pass an output directory of `bgeft eval retriever/reranker`"
    ):
        compare_runs(tmp_path, tmp_path)


def test_same_reranker_twice_via_cli(run_cli, tiny_reranker, beir_dir, tmp_path):
    code, out, err = run_cli("eval", "compare", "--baseline", tiny_reranker, "--candidate", tiny_reranker,
                             "--data", beir_dir, "--top", "4", "--k", "1,3,10", "--device", "cpu", "--no-progress",
                             "--resamples", "200", "--metrics", "mrr,ndcg@3")
    assert code == 0, err
    assert "| reranked | mrr |" in out and "| reranked | ndcg@3 |" in out
    assert out.count("| 0/3/0 |") == 2  # both metrics: 3 ties, no wins or losses
