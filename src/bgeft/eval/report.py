"""Write an evaluation result to ``--out DIR``: ``metrics.json`` (everything, per-query scores too),
``report.md`` (tables a person reads), PNG plots, and for rankings ``runs/<name>.json``
(``{qid: {docid: score}}`` best first - usable as ``bgeft eval reranker --candidates``).

Every file is written to a temp file in the same directory and moved into place, so a crash never
leaves a half-written output. Keys starting with ``_`` (in-memory runs) stay out of metrics.json.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from bgeft.eval.markdown import fmt, table
from bgeft.io import atomic_write_text

RETRIEVER_SECTIONS = ("## Summary", "## Metrics by k", "## Timing", "## Plots", "## Notes")
RERANK_SECTIONS = ("## Summary", "## Metrics by k", "## Significance of the gain", "## Timing", "## Plots", "## Notes")
COMPARE_SECTIONS = ("## Setup", "## Summary", "## Wins, ties and losses", "## Plots", "## How to read this")
NO_RELEVANT_NOTE = ("Queries without any relevant document (no qrels row with score > 0) cannot be scored by a "
                    "ranking metric; they are left out of every average and listed under "
                    "`data.skipped_queries` in metrics.json.")


def _finite(obj):
    """NaN / infinity are not JSON: write them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def to_json(result: dict) -> str:
    return json.dumps(_finite({k: v for k, v in result.items() if not k.startswith("_")}), indent=2,
                      ensure_ascii=False, allow_nan=False, default=str) + "\n"


def main_k(ks: list[int]) -> int:
    return 10 if 10 in ks else max(k for k in ks if k <= 10) if min(ks) <= 10 else min(ks)


def _header(result: dict, title: str) -> list[str]:
    d = result["data"]
    out = [f"# {title}\n"]
    if "model" in result and result["model"]:
        m = result["model"]
        out.append(f"- Model: `{m['path']}` ({m.get('class', '')}, devices {', '.join(m.get('devices', []))})")
    if "reranker" in result:
        out.append(f"- Reranker: `{result['reranker']['path']}` (FlagReranker, devices "
                   f"{', '.join(result['reranker']['devices'])})")
    out.append(f"- Data: `{d['path']}` ({d['layout']} layout): {d['n_docs']} documents, {d['n_queries']} evaluated "
               f"queries, {d['n_judgements']} judgements, {len(d['skipped_queries'])} queries without a relevant "
               "document skipped")
    level = result.get("settings", {}).get("relevance_threshold", 1)
    out.append(f"- Relevance: a document counts as relevant for recall, precision, MAP, MRR and success when its "
               f"grade is >= {level}; nDCG uses the graded values")
    if result.get("warning"):
        out.append(f"- **Warning**: {result['warning']}")
    return out


def _by_k(metrics: dict, ks: list[int], extra=()) -> str:
    cols = ["recall", "precision", "ndcg", "mrr", "success", "coverage", *extra]
    label = {"ndcg": "nDCG", "mrr": "MRR", "err": "ERR"}
    return table(["k"] + [label.get(c, c.capitalize()) + "@k" for c in cols],
                 [[k] + [metrics.get(f"{c}@{k}") for c in cols] for k in ks])


def render_retriever(result: dict, images: list[str]) -> str:
    s, ks = result["settings"], result["settings"]["ks"]
    k = main_k(ks)
    out = _header(result, "Retriever evaluation")
    w = s["weights"]
    out.append(
        f"- Modes: {', '.join(s['modes'])}; hybrid = {w['dense']} x dense + {w['sparse']} x sparse + "
        f"{w['colbert']} x colbert over the dense and sparse top-{s['candidates']}; ranking depth {s['depth']}\n"
    )
    names = [f"ndcg@{k}", f"recall@{k}", f"mrr@{k}", "map", f"success@{k}", f"coverage@{k}"]
    out.append("## Summary\n")
    out.append(
        table(
            ["mode"]
            + [
                n.replace("ndcg", "nDCG")
                .replace("mrr", "MRR")
                .replace("map", "MAP")
                .replace("recall", "Recall")
                .replace("success", "Success")
                .replace("coverage", "Coverage")
                for n in names
            ],
            [[mode] + [r["metrics"][n] for n in names] for mode, r in result["results"].items()],
        )
    )
    out.append("## Metrics by k\n")
    for mode, r in result["results"].items():
        out.append(f"### {mode}\n\n" + _by_k(r["metrics"], ks))
    out.append("## Timing\n")
    t, c = result["timing"], result["cache"]
    enc = "reused from the cache" if c["hit"] else "encoded"
    rows = [["load model", t.get("load_model_s")], ["encode corpus (" + enc + ")", t["encode_corpus_s"]],
            ["encode queries", t["encode_queries_s"]]]
    rows += [[f"search: {m}", v] for m, v in t["search_s"].items()] + [["total", t["total_s"]]]
    out.append(table(["step", "seconds"], rows))
    out += _plots_and_notes(images, result)
    return "\n".join(out)


def _plots_and_notes(images: list[str], result: dict) -> list[str]:
    out = ["## Plots\n"] + [f"![{i}]({i})\n" for i in images]
    out.append("## Notes\n")
    out.append(f"- {NO_RELEVANT_NOTE}")
    out.append("- Metrics come from pytrec_eval (trec_eval): relevant = grade >= 1, nDCG uses the grades as gains; "
               "MRR@k is the reciprocal rank of the first relevant document within the top k; coverage@k is the "
               "share of all relevant (query, document) pairs found in the top k.")
    if result.get("cache", {}).get("path"):
        out.append(f"- Corpus encodings cache: `{result['cache']['path']}`")
    return out + [""]


def render_rerank(result: dict, images: list[str]) -> str:
    ks, res = result["settings"]["ks"], result["results"]
    k = main_k(ks)
    title = "Two-stage pipeline evaluation" if result["kind"] == "pipeline" else "Reranker evaluation"
    out = _header(result, title)
    s = result["settings"]
    out.append(f"- First stage: {s['first_stage']}; the reranker rescored the top {s['rerank_top']} of "
               f"{s['retrieve_top']} candidates per query (the rest keep their first-stage order)\n")
    names = ["acc@1", "mrr", f"ndcg@{k}", f"err@{k}", f"recall@{k}", "map"]
    out.append("## Summary\n")
    rows = [[stage] + [res[stage]["metrics"].get(n) for n in names] for stage in ("first_stage", "reranked")]
    rows.append(["gain"] + [result["gain"].get(n) for n in names])
    out.append(table(["stage", "Acc@1", "MRR", f"nDCG@{k}", f"ERR@{k}", f"Recall@{k}", "MAP"], rows))
    out.append("## Metrics by k\n")
    for stage in ("first_stage", "reranked"):
        out.append(f"### {stage}\n\n" + _by_k(res[stage]["metrics"], ks, extra=("err",)))
    out.append("## Significance of the gain\n")
    out.append(_stats_table(result["significance"], with_mode=False))
    out.append("## Timing\n")
    t = result["timing"]
    out.append(table(["step", "seconds"], [["first stage (candidates)", t["first_stage_s"]],
                                           [f"rerank {t['pairs_scored']} (query, passage) pairs", t["rerank_s"]],
                                           ["total", t["total_s"]]]))
    out += _plots_and_notes(images, result)
    return "\n".join(out)


def _stats_table(rows: list[dict], with_mode: bool = True) -> str:
    head = (["mode"] if with_mode else []) + ["metric", "baseline", "candidate", "delta", "95% CI",
                                              "p (t-test)", "p (randomisation)", "Cohen's d", "W/T/L"]
    body = [([r["mode"]] if with_mode else []) + [r["metric"], r["baseline"], r["candidate"], r["delta"],
            f"[{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]", r["p_ttest"], r["p_permutation"], r["cohens_d"],
            f"{r['wins']}/{r['ties']}/{r['losses']}"] for r in rows]
    return table(head, body)


def render_compare(result: dict, images: list[str]) -> str:
    lab = result["labels"]
    out = [f"# Comparison: {lab['candidate']} vs {lab['baseline']}\n", "## Setup\n"]
    for role in ("baseline", "candidate"):
        m = result[role].get("model") or {}
        out.append(f"- {role} ({lab[role]}): `{m.get('path', '?')}` ({result[role].get('kind')})")
    d, s = result["data"], result["settings"]
    out.append(f"- Data: `{d.get('path')}`: {d.get('n_queries')} queries paired by id")
    out.append(f"- {s['n_resamples']} bootstrap / randomisation resamples, seed {s['seed']}\n")
    out.append("## Summary\n")
    out.append(_stats_table(result["rows"]))
    out.append("## Wins, ties and losses\n")
    out.append(table(["mode", "metric", "candidate better", "equal", "baseline better"],
                     [[r["mode"], r["metric"], r["wins"], r["ties"], r["losses"]] for r in result["rows"]]))
    out.append("## Plots\n")
    out += [f"![{i}]({i})\n" for i in images]
    out.append("## How to read this\n")
    out.append("- delta = candidate - baseline, averaged over queries; the 95% CI is a bootstrap interval of that "
               "mean. A CI that excludes 0 and small p-values (< 0.05) mean the difference is unlikely to be noise.")
    out.append("- p (t-test): paired t-test; p (randomisation): paired sign-flip permutation test (no normality "
               "assumption). Cohen's d = mean delta / sd of deltas (0.2 small, 0.5 medium, 0.8 large).")
    out.append("- Identical per-query scores give delta 0 and p = 1; with all deltas equal and non-zero the t-test "
               "and d are undefined (n/a). Several metrics are tested at once: treat single small p-values with care.")
    return "\n".join(out) + "\n"


def _images(result: dict, out_dir: Path) -> list[str]:
    from bgeft.eval import plots  # matplotlib loads only when an evaluation writes its plots (--out)

    kind = result["kind"]
    if kind == "retriever":
        series = {m: r["metrics"] for m, r in result["results"].items()}
        plots.metric_curves(series, result["settings"]["ks"], out_dir / "curves.png", "per mode")
        return ["curves.png"]
    if kind in ("reranker", "pipeline"):
        series = {s: r["metrics"] for s, r in result["results"].items()}
        plots.metric_curves(series, result["settings"]["ks"], out_dir / "curves.png", "first stage vs reranked")
        return ["curves.png"]
    if kind == "compare":
        names = []
        for metric in result["settings"]["metrics"]:
            deltas = {m: list(v[metric].values()) for m, v in result["per_query_delta"].items()}
            name = "delta_" + metric.replace("@", "_at_") + ".png"
            plots.delta_histogram(deltas, metric, out_dir / name)
            names.append(name)
        ser = result.get("_series")
        if ser:
            series = {f"{role}:{m}": ser[role][m]["metrics"] for role in ("baseline", "candidate")
                      for m in result["settings"]["modes"]}
            ks = sorted({int(k.split("@")[1]) for k in next(iter(series.values())) if k.startswith("ndcg@")})
            plots.metric_curves(series, ks, out_dir / "curves.png", "baseline vs candidate")
            names.append("curves.png")
        return names
    return []


RENDERERS = {"retriever": render_retriever, "reranker": render_rerank, "pipeline": render_rerank,
             "compare": render_compare}


def write_runs(out_dir: Path, runs: dict) -> None:
    (out_dir / "runs").mkdir(exist_ok=True)
    for name, run in runs.items():
        atomic_write_text(out_dir / "runs" / f"{name}.json",
                          json.dumps({q: dict(r) for q, r in run.items()}, ensure_ascii=False) + "\n")


def write_outputs(out_dir: Path, result: dict, render=None, images=None) -> Path:
    """Write metrics.json, report.md, plots (and runs/) for ``result``; returns ``out_dir``."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from bgeft.errors import UserError

        raise UserError(
            f"--out {out_dir}: cannot create the directory ({exc.strerror}); choose a writable path"
        ) from None
    names = images(result, out_dir) if images else _images(result, out_dir)
    if result.get("_runs"):
        write_runs(out_dir, result["_runs"])
    result["files"] = {"metrics": "metrics.json", "report": "report.md", "plots": names,
                       "runs": sorted(f"runs/{n}.json" for n in result.get("_runs", {}))}
    atomic_write_text(out_dir / "metrics.json", to_json(result))
    atomic_write_text(out_dir / "report.md", (render or RENDERERS[result["kind"]])(result, names))
    return out_dir
