"""``bgeft eval compare``: paired, per-query comparison of two evaluations on the same data.

For every (mode, metric) the per-query values of baseline and candidate are paired by query id and
``delta = candidate - baseline`` is summarised with:

* mean delta and its 95% bootstrap confidence interval (``scipy.stats.bootstrap``, BCa, falling
  back to percentile when BCa is undefined);
* paired t-test (``scipy.stats.ttest_rel``) and a paired randomisation test
  (``scipy.stats.permutation_test`` with sign flips of the deltas; exact for <= 13 queries);
* effect size: Cohen's d for paired samples, mean(delta) / sd(delta);
* wins / ties / losses: queries where the candidate is higher / equal (|delta| <= 1e-9) / lower.

Degenerate cases are decided explicitly, not left to NaNs: when every delta is 0 (e.g. the same
model twice) the delta, CI and d are 0 and both p-values are 1. When all deltas are equal but not
0 the t-test and d are undefined (reported as ``None``); the randomisation test still gives a p-value.

Python API::

    from bgeft.eval.compare import compare_runs
    table = compare_runs("runs/base/metrics.json", candidate_result_dict,
                         metrics=("ndcg@10", "recall@10"), out_dir="runs/compare")
    table["rows"][0] -> {"mode", "metric", "baseline", "candidate", "delta", "ci_low", "ci_high",
                         "p_ttest", "p_permutation", "cohens_d", "wins", "ties", "losses", "n"}
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
from scipy import stats

from bgeft.errors import UserError

TIE = 1e-9
DEFAULT_COMPARE_METRICS = ("ndcg@10", "recall@10", "mrr@10", "map")


def paired_stats(baseline: list[float], candidate: list[float], n_resamples: int = 9999, seed: int = 0) -> dict:
    """All the statistics of one paired comparison (see the module docstring)."""
    b, c = np.asarray(baseline, float), np.asarray(candidate, float)
    d = c - b
    n = len(d)
    row = {"n": n, "baseline": float(b.mean()) if n else 0.0, "candidate": float(c.mean()) if n else 0.0,
           "delta": float(d.mean()) if n else 0.0,
           "wins": int((d > TIE).sum()), "ties": int((np.abs(d) <= TIE).sum()), "losses": int((d < -TIE).sum())}
    if n == 0 or np.all(np.abs(d) <= TIE):
        row.update(delta=0.0, ci_low=0.0, ci_high=0.0, p_ttest=1.0, p_permutation=1.0, cohens_d=0.0, t=0.0)
        return row
    sd = d.std(ddof=1) if n > 1 else 0.0
    if sd <= TIE:  # all deltas equal and non-zero: t and d are undefined
        row.update(t=None, p_ttest=None, cohens_d=None)
    else:
        t = stats.ttest_rel(c, b)
        row.update(t=float(t.statistic), p_ttest=float(t.pvalue), cohens_d=float(d.mean() / sd))
    rng = np.random.default_rng(seed)
    perm = stats.permutation_test((c, b), lambda x, y, axis: np.mean(x - y, axis=axis), vectorized=True,
                                  permutation_type="samples", n_resamples=n_resamples, alternative="two-sided",
                                  random_state=rng)
    row["p_permutation"] = float(min(1.0, perm.pvalue))
    row["ci_low"], row["ci_high"] = _bootstrap_ci(d, n_resamples, rng)
    return row


def _bootstrap_ci(d: np.ndarray, n_resamples: int, rng) -> tuple[float, float]:
    if len(d) < 2 or np.ptp(d) <= TIE:
        return float(d.mean()), float(d.mean())
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ci = stats.bootstrap((d,), np.mean, confidence_level=0.95, n_resamples=n_resamples,
                                 method=method, random_state=rng).confidence_interval
        if np.isfinite(ci.low) and np.isfinite(ci.high):
            return float(ci.low), float(ci.high)
    return float(d.mean()), float(d.mean())


def load_result(source) -> dict:
    """A result dict, a metrics.json path, or an output directory holding metrics.json."""
    if isinstance(source, dict):
        return source
    p = Path(source)
    if p.is_dir():
        p = p / "metrics.json"
    if not p.is_file():
        raise UserError(f"{source}: no metrics.json; pass an output directory of `bgeft eval retriever/reranker`, "
                        "its metrics.json, or a model directory together with --data")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{p}: not valid JSON ({exc.msg}); re-run the evaluation that wrote it") from None


def _series(result: dict) -> dict[str, dict]:
    """{mode or stage: {"metrics", "per_query"}} of any evaluation kind."""
    if result.get("kind") in ("reranker", "pipeline"):
        return {"reranked": result["results"]["reranked"]}
    return result["results"]


def compare_runs(baseline, candidate, metrics=DEFAULT_COMPARE_METRICS, modes=None, out_dir=None,
                 n_resamples: int = 9999, seed: int = 0, labels=("baseline", "candidate")) -> dict:
    """Compare two evaluations (dicts or metrics.json paths) of the same data, query by query."""
    base, cand = load_result(baseline), load_result(candidate)
    bfp, cfp = base.get("data", {}).get("fingerprint"), cand.get("data", {}).get("fingerprint")
    if bfp and cfp and bfp != cfp:
        raise UserError(f"baseline and candidate were evaluated on different data ({base['data'].get('path')} vs "
                        f"{cand['data'].get('path')}); evaluate both on the same --data")
    levels = [r.get("settings", {}).get("relevance_threshold", 1) for r in (base, cand)]
    if levels[0] != levels[1]:
        raise UserError(f"baseline was scored with --relevance-threshold {levels[0]} and candidate with "
                        f"{levels[1]}; evaluate both with the same threshold")
    bs, cs = _series(base), _series(cand)
    shared = [m for m in bs if m in cs and (modes is None or m in modes)]
    if not shared:
        raise UserError(f"baseline has modes {', '.join(bs)} and candidate {', '.join(cs)}: nothing in common "
                        "to compare; evaluate both with the same --modes")
    rows, deltas = [], {}
    for mode in shared:
        bq, cq = bs[mode]["per_query"], cs[mode]["per_query"]
        qids = [q for q in bq if q in cq]
        for metric in metrics:
            if qids and metric not in bq[qids[0]]:
                raise UserError(f"metric {metric!r} is not in the evaluations; available: {', '.join(bq[qids[0]])}")
            row = paired_stats([bq[q][metric] for q in qids], [cq[q][metric] for q in qids], n_resamples, seed)
            rows.append({"mode": mode, "metric": metric, **row})
            deltas.setdefault(mode, {})[metric] = {q: cq[q][metric] - bq[q][metric] for q in qids}
    result = {
        "kind": "compare",
        "labels": {"baseline": labels[0], "candidate": labels[1]},
        "baseline": {"model": base.get("model"), "kind": base.get("kind")},
        "candidate": {"model": cand.get("model"), "kind": cand.get("kind")},
        "data": cand.get("data") or base.get("data"),
        "settings": {"metrics": list(metrics), "modes": shared, "n_resamples": n_resamples, "seed": seed,
                     "confidence": 0.95, "relevance_threshold": levels[1]},
        "rows": rows,
        "per_query_delta": deltas,
        "_series": {"baseline": bs, "candidate": cs},
    }
    if out_dir is not None:
        from bgeft.eval.report import write_outputs

        write_outputs(Path(out_dir), result)
    return result
