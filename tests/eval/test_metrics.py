"""Metric values on a hand-made run and graded qrels equal values worked out by hand."""
import math

import pytest

from bgeft.eval.metrics import err_at_k, evaluate_run

QRELS = {"q1": {"a": 2, "b": 1, "c": 0}, "q2": {"x": 1}}
# q1 ranks c (judged 0), a (grade 2), d (unjudged), b (grade 1); q2 is not in the run at all.
RUN = {"q1": [("c", 4.0), ("a", 3.0), ("d", 2.0), ("b", 1.0)]}


@pytest.fixture(scope="module")
def scored():
    return evaluate_run(RUN, QRELS, ks=(1, 2, 4), reranker=True)


def test_per_query_values_match_hand_computation(scored):
    q1 = scored["per_query"]["q1"]
    assert q1["precision@1"] == 0 and q1["precision@2"] == 0.5 and q1["precision@4"] == 0.5
    assert q1["recall@1"] == 0 and q1["recall@2"] == 0.5 and q1["recall@4"] == 1
    assert q1["mrr@1"] == 0 and q1["mrr@2"] == 0.5 and q1["mrr"] == 0.5
    assert q1["success@1"] == 0 and q1["success@2"] == 1
    assert q1["map"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)  # graded gains: grade 2 then grade 1
    assert q1["ndcg@2"] == pytest.approx((2 / math.log2(3)) / idcg)
    assert q1["ndcg@4"] == pytest.approx((2 / math.log2(3) + 1 / math.log2(5)) / idcg)
    # ERR with g_max = 2: R(a) = 3/4, R(b) = 1/4
    assert q1["err@4"] == pytest.approx(0.75 / 2 + (1 - 0.75) * 0.25 / 4)
    assert q1["acc@1"] == 0


def test_query_missing_from_run_scores_zero_and_counts(scored):
    assert all(v == 0 for v in scored["per_query"]["q2"].values())
    m = scored["metrics"]
    assert m["n_queries"] == 2
    assert m["map"] == pytest.approx(0.25)
    assert m["recall@4"] == pytest.approx(0.5)


def test_coverage_is_micro_averaged(scored):
    # 3 relevant pairs in the set (a, b for q1; x for q2): top-2 finds 1, top-4 finds 2
    assert scored["metrics"]["coverage@2"] == pytest.approx(1 / 3)
    assert scored["metrics"]["coverage@4"] == pytest.approx(2 / 3)


def test_given_order_is_kept_even_with_tied_scores():
    tied = {"q1": [("b", 1.0), ("a", 1.0)]}
    res = evaluate_run(tied, {"q1": {"a": 1}}, ks=(1,))
    assert res["per_query"]["q1"]["mrr"] == 0.5  # a is second as given, not re-sorted by id


def test_err_top_document_perfect():
    assert err_at_k(["a"], {"a": 3}, 10, 3) == pytest.approx(7 / 8)


def test_relevance_threshold_changes_binary_metrics_not_ndcg():
    one = evaluate_run(RUN, QRELS, ks=(1, 2, 4), reranker=True)["per_query"]["q1"]
    two = evaluate_run(RUN, QRELS, ks=(1, 2, 4), reranker=True, relevance_threshold=2)["per_query"]["q1"]
    for name in ("ndcg@2", "ndcg@4", "err@4"):
        assert two[name] == one[name]  # graded values, whatever the threshold
    # only a (grade 2) is relevant now: found at rank 2
    assert two["recall@4"] == 1 and two["precision@4"] == 0.25 and two["map"] == 0.5 and two["mrr"] == 0.5
    assert one["precision@4"] == 0.5 and one["recall@2"] == 0.5 and two["recall@2"] == 1


def test_relevance_threshold_must_be_a_whole_grade():
    from bgeft.errors import UserError

    with pytest.raises(UserError, match=r"^--relevance-threshold 0: must be a whole grade of 1 or more \(a document "
                                        r"counts as relevant when its qrels score is >= it\)$"):
        evaluate_run(RUN, QRELS, relevance_threshold=0)
