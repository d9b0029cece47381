"""``bgeft eval VERB``: retriever, reranker, pipeline, compare, bench. Argument parsing only; the work is in
``bgeft.eval.retrieval``, ``rerank``, ``compare`` and ``bench`` (their Python APIs take the same options)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bgeft.cli.group import Verb, add_sub_verbs, show_sub_verbs
from bgeft.errors import UserError
from bgeft.models.devices import add_device_argument


def _precision(value: str):
    return {"auto": None, "fp16": True, "fp32": False}[value]


def _common(p: argparse.ArgumentParser, ks: str) -> None:
    p.add_argument("--data", help="BEIR dir (corpus.jsonl, queries.jsonl, qrels/test.tsv), FlagEmbedding custom "
                                  "dir (corpus.jsonl, test_queries.jsonl, test_qrels.jsonl) or training JSONL")
    p.add_argument("--split", default="test", help="qrels split to read (default: test)")
    p.add_argument("--k", default=ks, help=f"cut-offs for the @k metrics (default: {ks})")
    p.add_argument("--out", metavar="DIR", help="write metrics.json, report.md and plots here "
                                                 "(without it the report is printed only)")
    add_device_argument(p)
    p.add_argument("--precision", choices=("auto", "fp16", "fp32"), default="auto",
                   help="auto = fp16 on GPU/NPU, fp32 on CPU")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--relevance-threshold", type=int, default=1, metavar="T",
                   help="graded qrels: a document counts as relevant for the binary metrics (recall, precision, "
                        "MAP, MRR, success, coverage) when its grade is >= T (default 1); nDCG keeps the grades")


def _retriever_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--modes", default="auto", help="comma list of dense,sparse,colbert,hybrid (default: every mode "
                                                   "the model has: all four for M3 models, dense otherwise)")
    p.add_argument("--weights", default="0.4,0.2,0.4", help="hybrid weights dense,sparse,colbert (default 0.4,0.2,0.4)")
    p.add_argument("--candidates-per-query", type=int, default=100, dest="n_candidates", metavar="N",
                   help="dense/sparse top-N passages that colbert and hybrid rescore (default 100)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="texts per batch (default: 32 on the CPU, from free memory on a GPU)")
    p.add_argument("--query-max-len", type=int, default=64)
    p.add_argument("--passage-max-len", type=int, default=512)
    p.add_argument("--pooling", choices=("auto", "cls", "mean"), default="auto",
                   help="dense pooling (default: the model's 1_Pooling config, else cls as BGE models)")
    p.add_argument("--query-instruction", default=None, help="prefix for queries, e.g. bge v1.5's instruction")
    p.add_argument("--cache-dir", default=None, help="corpus-encoding cache (default ~/.cache/bgeft/embeddings)")
    p.add_argument("--no-cache", action="store_true", help="always re-encode the corpus, store nothing")


def _reranker_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rerank-batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=512, help="reranker max tokens per (query, passage) pair")
    p.add_argument(
        "--mode", default=None, help="retriever mode giving the candidates (default hybrid for M3, else dense)"
    )


def _add_retriever(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True,
                   help="embedder directory (M3 when it holds colbert_linear.pt and sparse_linear.pt)")
    _common(p, "1,5,10,20,100")
    _retriever_opts(p)


def _add_reranker(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="reranker (cross-encoder) directory")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--candidates", help="runs/<mode>.json from `bgeft eval retriever --out`, {qid: {docid: score}} "
                                        "JSON, or a TREC run file")
    g.add_argument("--retriever", help="embedder giving the candidates (default without both: BM25)")
    p.add_argument("--top", type=int, default=100, help="candidates per query (default 100)")
    p.add_argument("--rerank-top", type=int, default=None, help="rescore only the first N candidates (default all)")
    _common(p, "1,5,10,20")
    _retriever_opts(p)
    _reranker_opts(p)


def _add_pipeline(p: argparse.ArgumentParser) -> None:
    p.add_argument("--retriever", required=True)
    p.add_argument("--reranker", required=True)
    p.add_argument("--retrieve-top", type=int, default=100)
    p.add_argument("--rerank-top", type=int, default=10)
    _common(p, "1,5,10,20")
    _retriever_opts(p)
    _reranker_opts(p)


def _add_compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("--baseline", required=True,
                   help="model directory, hub id (BAAI/bge-m3), bgeft:demo-model, or an eval output dir / metrics.json")
    p.add_argument("--candidate", required=True,
                   help="model directory, hub id (BAAI/bge-m3), bgeft:demo-model, or an eval output dir / metrics.json")
    p.add_argument("--kind", choices=("auto", "retriever", "reranker"), default="auto",
                   help="how to evaluate model directories (auto: reranker when config.json names a "
                        "*ForSequenceClassification architecture)")
    p.add_argument("--metrics", default="ndcg@10,recall@10,mrr@10,map", help="metrics to test")
    p.add_argument("--resamples", type=int, default=9999, help="bootstrap / randomisation resamples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top", type=int, default=100, help="reranker candidates per query (BM25)")
    _common(p, "1,5,10,20,100")
    _retriever_opts(p)
    _reranker_opts(p)


def _add_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True)
    p.add_argument("--reranker", action="store_true", help="the model is a reranker: time compute_score")
    p.add_argument("--batch-sizes", default="1,8,32,128")
    p.add_argument("--items", type=int, default=256, help="texts (or pairs) per batch size")
    p.add_argument("--data", help="take the texts from this eval data (default: synthetic English/Chinese)")
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--out", metavar="DIR")
    add_device_argument(p)
    p.add_argument("--precision", choices=("auto", "fp16", "fp32"), default="auto")


def _retriever_kwargs(a) -> dict:
    return {"batch_size": a.batch_size, "query_max_len": a.query_max_len, "passage_max_len": a.passage_max_len,
            "pooling": a.pooling, "query_instruction": a.query_instruction}


def _cache(a):
    return False if a.no_cache else a.cache_dir


def _need_data(a) -> None:
    if not a.data:
        raise UserError(f"bgeft eval {a.verb}: --data DIR is required (BEIR, FlagEmbedding custom or training JSONL)")


def _run_retriever(a, model, out):
    from bgeft.eval.retrieval import evaluate_retriever

    return evaluate_retriever(model, a.data, modes=a.modes, weights=a.weights, ks=a.k, out_dir=out,
                              cache_dir=_cache(a), device=a.device, candidates=a.n_candidates, split=a.split,
                              fp16=_precision(a.precision), progress=not a.no_progress,
                              relevance_threshold=a.relevance_threshold, **_retriever_kwargs(a))


def _is_reranker_dir(path: Path) -> bool:
    try:
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return any(x.endswith("ForSequenceClassification") for x in cfg.get("architectures") or [])


def _compare_side(a, source: str, out, role: str):
    p = Path(source)
    if p.is_file() or (p / "metrics.json").is_file():
        return str(p)
    from bgeft.models.resolve import model_dir

    _need_data(a)
    try:  # the one resolver: a local model directory, a hub id (BAAI/bge-m3) or bgeft:demo-model
        p = model_dir(source, flag=f"--{role}")
    except UserError as exc:
        raise UserError(f"{exc} (or an evaluation output: a directory holding metrics.json)") from None
    sub_out = Path(out) / role if out else None
    if a.kind == "reranker" or (a.kind == "auto" and _is_reranker_dir(p)):
        from bgeft.eval.rerank import evaluate_reranker

        return evaluate_reranker(p, a.data, top=a.top, ks=a.k, out_dir=sub_out, device=a.device,
                                 batch_size=a.rerank_batch_size, max_length=a.max_length,
                                 fp16=_precision(a.precision), progress=not a.no_progress, split=a.split,
                                 relevance_threshold=a.relevance_threshold)
    return _run_retriever(a, p, sub_out)


def _checked(body):
    """Run ``body(a)`` with the output checks first; ``--no-progress``: no bgeft progress (FlagEmbedding's own
    bars are always off, bgeft.console_progress.quiet_library_bars)."""
    def run(a: argparse.Namespace) -> int:
        _check_outputs(a)
        if getattr(a, "no_progress", False):
            from bgeft.console import settings

            settings.progress = False
        return body(a)
    return run


INPUT_OPTIONS = ("data", "model", "candidates", "retriever", "reranker", "baseline", "candidate")


def _check_outputs(a) -> None:
    """--out and --cache-dir go through the shared guard: never an input, a root, $HOME or the working dir."""
    from bgeft.safety import check_output

    inputs = [v for v in (getattr(a, name, None) for name in INPUT_OPTIONS) if isinstance(v, str)]
    if a.out:
        check_output(a.out, inputs, what="--out", is_dir=True)
    if getattr(a, "cache_dir", None) and not getattr(a, "no_cache", False):
        check_output(a.cache_dir, inputs, what="--cache-dir", is_dir=True)


def _retriever(a) -> int:
    _need_data(a)
    return _show(a, _run_retriever(a, a.model, a.out))


def _rerank_common(a) -> dict:
    _need_data(a)
    return dict(ks=a.k, out_dir=a.out, cache_dir=_cache(a), device=a.device, batch_size=a.rerank_batch_size,
                max_length=a.max_length, mode=a.mode, fp16=_precision(a.precision), progress=not a.no_progress,
                retriever_kwargs=_retriever_kwargs(a), split=a.split, relevance_threshold=a.relevance_threshold)


def _reranker(a) -> int:
    from bgeft.eval.rerank import evaluate_reranker

    common = _rerank_common(a)
    return _show(a, evaluate_reranker(a.model, a.data, candidates=a.candidates, retriever=a.retriever, top=a.top,
                                      rerank_top=a.rerank_top, **common))


def _pipeline(a) -> int:
    from bgeft.eval.rerank import evaluate_pipeline

    common = _rerank_common(a)
    return _show(a, evaluate_pipeline(a.retriever, a.reranker, a.data, retrieve_top=a.retrieve_top,
                                      rerank_top=a.rerank_top, **common))


def _compare(a) -> int:
    from bgeft.eval.compare import compare_runs

    base = _compare_side(a, a.baseline, a.out, "baseline")
    cand = _compare_side(a, a.candidate, a.out, "candidate")
    metrics = [m.strip() for m in a.metrics.split(",") if m.strip()]
    return _show(a, compare_runs(base, cand, metrics=metrics, out_dir=a.out, n_resamples=a.resamples, seed=a.seed,
                                 labels=(Path(a.baseline).name, Path(a.candidate).name)))


def _bench(a) -> int:
    from bgeft.eval.bench import bench, render_bench

    sizes = [s for s in a.batch_sizes.split(",") if s.strip()]
    try:
        sizes = [int(s) for s in sizes]
    except ValueError:
        raise UserError(
            f"--batch-sizes {a.batch_sizes!r}: expected comma-separated integers such as 1,8,32,128"
        ) from None
    result = bench(a.model, batch_sizes=sizes, reranker=a.reranker, data_dir=a.data, n_items=a.items,
                   max_length=a.max_length, device=a.device, fp16=_precision(a.precision), out_dir=a.out)
    print(render_bench(result, []) if not a.out else f"wrote {Path(a.out) / 'report.md'}")
    return 0


def _show(a, result: dict) -> int:
    from bgeft.eval.report import RENDERERS

    if a.out:
        print(f"wrote {Path(a.out) / 'report.md'}, {Path(a.out) / 'metrics.json'} and plots")
        sys.stdout.write(_summary(Path(a.out) / "report.md"))
    else:
        sys.stdout.write(RENDERERS[result["kind"]](result, []))
    return 0


DESCRIPTION = "Evaluate, compare and benchmark retrievers (BGE-M3 dense/sparse/colbert/hybrid) and rerankers."
SUB_VERBS = {
    "retriever": (
        Verb(_add_retriever, _checked(_retriever)),
        "score an embedder in every mode from one corpus encoding",
    ),
    "reranker": (
        Verb(_add_reranker, _checked(_reranker)),
        "rerank first-stage candidates (file, retriever or BM25) and score both stages",
    ),
    "pipeline": (
        Verb(_add_pipeline, _checked(_pipeline)),
        "retrieve top N with an embedder, rerank the top M; both stages and the gain",
    ),
    "compare": (
        Verb(_add_compare, _checked(_compare)),
        "paired per-query comparison of two models (or two evaluation outputs)",
    ),
    "bench": (
        Verb(_add_bench, _checked(_bench)),
        "encode / rerank throughput, latency percentiles, peak memory",
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_sub_verbs(parser, SUB_VERBS, log=True)


run = show_sub_verbs  # `bgeft eval` alone; each sub-verb's parser sets its own run


def _summary(report: Path) -> str:
    """The report's first table (the Summary) for the terminal."""
    text = report.read_text(encoding="utf-8")
    start = text.find("## Summary")
    if start < 0:
        return ""
    end = text.find("\n## ", start + 5)
    return text[start:end if end > 0 else None].rstrip() + "\n"
