"""The ``eval`` stage: the baseline models and every round's models on the dev and test splits.

Per split: the retriever in every mode (dense / sparse / colbert / hybrid, one corpus encoding cached
under ``work_dir/.cache``), the two-stage pipeline (retrieve, then rerank) when the pipeline has a
reranker, and, for rounds, a paired per-query comparison against the baseline (t-test, randomisation
test, bootstrap CI, effect size, wins/ties/losses). ``summary.json`` holds what the report needs.
"""
from __future__ import annotations

import json
from pathlib import Path

SPLITS = ("dev", "test")
COMPARE_METRICS = ("ndcg@10", "recall@10", "mrr@10")


def _metrics(result: dict) -> dict:
    return {name: series["metrics"] for name, series in result["results"].items()}


def _save(result: dict, out_dir: Path, plots: bool) -> None:
    """metrics.json + report.md (+ plots only where the report looks: the last split)."""
    from bgeft.eval.report import write_outputs

    write_outputs(out_dir, result, images=None if plots else (lambda _result, _dir: []))


def _compare(baseline: Path, candidate: dict, out_dir: Path, ks: list[int]) -> list[dict]:
    from bgeft.eval.compare import compare_runs

    k = 10 if 10 in ks else max(ks)
    metrics = tuple(m.replace("@10", f"@{k}") for m in COMPARE_METRICS)
    table = compare_runs(baseline, candidate, metrics=metrics, labels=("baseline", "round"))
    _save(table, out_dir, plots=False)
    return table["rows"]


def _modes(model: str, wanted: list[str]) -> list[str]:
    """The requested modes this model can score (dense only without BGE-M3's heads)."""
    from bgeft.models.embedder import is_m3_model

    if Path(model).is_dir() and not is_m3_model(model):
        return [m for m in wanted if m == "dense"] or ["dense"]
    return list(wanted)


def run_eval(ctx, stage, resume: bool) -> dict:
    from bgeft.eval.retrieval import evaluate_retriever
    from bgeft.models.embedder import Encoder

    sec = ctx.spec.data["eval"]
    split_dir = Path(ctx.path(stage, "split"))
    cache = ctx.spec.work_dir / ".cache" / "embeddings"
    retriever = ctx.path(stage, "retriever")
    reranker = ctx.path(stage, "reranker") if ctx.has(stage, "reranker") else None
    baseline = Path(ctx.path(stage, "baseline")) if ctx.has(stage, "baseline") else None
    modes = _modes(retriever, sec["modes"])
    if modes != sec["modes"]:
        ctx.log(f"{retriever} has no sparse/ColBERT heads (not an M3 model): scoring {', '.join(modes)} only")
    encoder = Encoder(retriever, batch_size=sec["batch_size"], passage_max_length=sec["max_length"], progress=False)
    summary: dict = {}
    splits = [split for split in SPLITS if (split_dir / split).is_dir()]
    for split in splits:
        data, out, plots = split_dir / split, stage.dir / split, split == splits[-1]
        ctx.log(f"{split}: retriever {retriever}" + (f", reranker {reranker}" if reranker else ""))
        result = evaluate_retriever(retriever, data, modes=modes, ks=sec["k"], cache_dir=cache, encoder=encoder,
                                    progress=False)
        _save(result, out / "retriever", plots)
        entry = {"retriever": _metrics(result), "n_queries": result["data"].get("n_queries")}
        if reranker:
            two_stage = _two_stage(ctx, reranker, data, cache, modes, encoder, sec)
            _save(two_stage, out / "pipeline", plots)
            entry["pipeline"] = _metrics(two_stage)
            if two_stage.get("warning"):
                entry["notes"] = [two_stage["warning"]]
        if baseline is not None:
            entry["compare"] = {"retriever": _compare(baseline / split / "retriever", result,
                                                      out / "compare-retriever", sec["k"])}
            if reranker and (baseline / split / "pipeline" / "metrics.json").is_file():
                entry["compare"]["pipeline"] = _compare(baseline / split / "pipeline", two_stage,
                                                        out / "compare-pipeline", sec["k"])
        summary[split] = entry
    (stage.dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n",
                                            encoding="utf-8")
    return {split: {"queries": e.get("n_queries")} for split, e in summary.items()}


def _two_stage(ctx, reranker: str, data: Path, cache: Path, modes: list[str], encoder, sec: dict) -> dict:
    from bgeft.eval.rerank import evaluate_pipeline

    result = evaluate_pipeline(str(encoder.path), reranker, data, retrieve_top=sec["retrieve_top"],
                               rerank_top=sec["rerank_top"], mode="hybrid" if "hybrid" in modes else modes[0],
                               ks=sec["k"], cache_dir=cache, batch_size=sec["batch_size"],
                               max_length=sec["max_length"], progress=False, retriever_kwargs={"encoder": encoder})
    return result
