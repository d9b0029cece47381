"""IR metrics over a ranked run, computed by pytrec_eval (trec_eval's own code).

A *run* is ``{qid: [(docid, score), ...]}`` best first. The order given is the order scored:
pytrec_eval sorts by score, so each list is handed over with strictly decreasing rank scores and
its ties cannot be re-broken by docid.

Metric names (per query and averaged over the evaluated queries):

* ``recall@k``, ``precision@k``, ``ndcg@k`` (graded gains = the qrels score), ``map`` (full depth),
  ``mrr`` (full depth) and ``mrr@k`` (reciprocal rank of the first relevant doc in the top k, 0 if
  none: pytrec_eval's ``recip_rank`` over the run cut at k), ``success@k`` (1 when at least one
  relevant doc is in the top k);
* ``coverage@k``: share of all relevant (query, doc) pairs of the data set found in the top k -
  a micro average, so it exists only for the whole set, not per query;
* reranker extras: ``acc@1`` (= success@1) and ``err@k`` (Expected Reciprocal Rank, Chapelle et
  al. 2009, grades mapped to (2^g - 1) / 2^g_max with g_max the largest grade in the qrels).

A document counts as relevant for the binary metrics (recall, precision, MAP, MRR, success, coverage,
acc@1) when its grade is >= ``relevance_threshold`` (default 1; pytrec_eval's ``relevance_level``);
nDCG and ERR always use the graded values. Queries missing from the run score 0 on
every metric (they still count in the average). Queries without any relevant document are dropped
when the data is loaded (see ``bgeft.eval.datasets``).
"""
from __future__ import annotations

import numpy as np
import pytrec_eval

from bgeft.errors import UserError

Run = dict[str, list[tuple[str, float]]]
DEFAULT_KS = (1, 5, 10, 20, 100)


def _as_trec(run: Run, depth: int | None = None) -> dict[str, dict[str, float]]:
    out = {}
    for qid, ranked in run.items():
        ranked = ranked[:depth] if depth else ranked
        n = len(ranked)
        out[qid] = {did: float(n - i) for i, (did, _) in enumerate(ranked)}
    return out


def err_at_k(ranked_ids: list[str], judgements: dict[str, int], k: int, max_grade: int) -> float:
    """Expected Reciprocal Rank of one ranked list cut at ``k``."""
    denom = 2.0 ** max(max_grade, 1)
    not_stopped, total = 1.0, 0.0
    for rank, did in enumerate(ranked_ids[:k], 1):
        grade = max(judgements.get(did, 0), 0)
        p = (2.0 ** grade - 1.0) / denom
        total += not_stopped * p / rank
        not_stopped *= 1.0 - p
    return total


def check_threshold(threshold) -> int:
    """``--relevance-threshold``: a whole grade of 1 or more."""
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise UserError(f"--relevance-threshold {threshold!r}: must be a whole grade of 1 or more "
                        "(a document counts as relevant when its qrels score is >= it)")
    return threshold


def evaluate_run(run: Run, qrels: dict[str, dict[str, int]], ks=DEFAULT_KS, reranker: bool = False,
                 relevance_threshold: int = 1) -> dict:
    """Score ``run`` against ``qrels``.

    Returns ``{"metrics": {name: mean}, "per_query": {qid: {name: value}}}``; ``metrics`` also holds
    ``coverage@k`` and ``n_queries``.
    """
    level = check_threshold(relevance_threshold)
    ks = sorted({int(k) for k in ks})
    qids = list(qrels)
    trec_run = {q: v for q, v in _as_trec(run).items() if q in qrels}
    measures = {"map", "recip_rank", "num_rel", "P." + ",".join(map(str, ks)),
                "recall." + ",".join(map(str, ks)), "ndcg_cut." + ",".join(map(str, ks)),
                "success." + ",".join(map(str, ks))}
    full = pytrec_eval.RelevanceEvaluator(qrels, measures, relevance_level=level).evaluate(trec_run) if trec_run else {}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}, relevance_level=level)
    mrr_at = {k: rr.evaluate({q: v for q, v in _as_trec(run, k).items() if q in qrels}) for k in ks} if trec_run else {}
    max_grade = max((g for docs in qrels.values() for g in docs.values()), default=1)

    per_query: dict[str, dict[str, float]] = {}
    found = {k: 0 for k in ks}
    total_rel = 0
    for qid in qids:
        res = full.get(qid, {})
        n_rel = sum(1 for g in qrels[qid].values() if g >= level)
        total_rel += n_rel
        row = {}
        for k in ks:
            row[f"ndcg@{k}"] = res.get(f"ndcg_cut_{k}", 0.0)
            row[f"recall@{k}"] = res.get(f"recall_{k}", 0.0)
            row[f"precision@{k}"] = res.get(f"P_{k}", 0.0)
            row[f"mrr@{k}"] = mrr_at.get(k, {}).get(qid, {}).get("recip_rank", 0.0)
            row[f"success@{k}"] = res.get(f"success_{k}", 0.0)
            found[k] += round(row[f"recall@{k}"] * n_rel)
        row["map"] = res.get("map", 0.0)
        row["mrr"] = res.get("recip_rank", 0.0)
        if reranker:
            ranked_ids = [d for d, _ in run.get(qid, [])]
            row["acc@1"] = float(bool(ranked_ids) and qrels[qid].get(ranked_ids[0], 0) >= level)
            for k in ks:
                row[f"err@{k}"] = err_at_k(ranked_ids, qrels[qid], k, max_grade)
        per_query[qid] = row

    names = list(next(iter(per_query.values())).keys()) if per_query else []
    metrics = {name: float(np.mean([per_query[q][name] for q in qids])) for name in names}
    for k in ks:
        metrics[f"coverage@{k}"] = found[k] / total_rel if total_rel else 0.0
    metrics["n_queries"] = len(qids)
    return {"metrics": metrics, "per_query": per_query}
