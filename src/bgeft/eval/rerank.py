"""``bgeft eval reranker`` and ``bgeft eval pipeline``: score a cross-encoder on first-stage candidates.

The first stage is, in order of preference: a candidates file (``--candidates``: a
``runs/<mode>.json`` written by ``bgeft eval retriever``, any ``{qid: {docid: score}}`` JSON, the
``search_results`` JSON FlagEmbedding's evaluator saves, or a TREC run ``qid Q0 docid rank score tag``),
a retriever model (``--retriever``, scored in ``--mode``, default hybrid for M3 models else dense),
or BM25 (bm25s over jieba tokens) when neither is given.

The reranker (FlagEmbedding's ``FlagReranker``) rescores the first ``rerank_top`` of the
``retrieve_top`` candidates of each query; the rest keep their first-stage order after them, so
metrics at k <= rerank_top measure the reranker and deeper ones are unchanged.
Metrics: Acc@1, MRR, nDCG@k, ERR@k, Recall@k, ... for both stages, their gain (reranked - first
stage) and a paired significance test of the gain per metric.

Python API::

    from bgeft.eval.rerank import evaluate_reranker, evaluate_pipeline
    r = evaluate_reranker("outputs/reranker", "example_data/eval", candidates="out/ret/runs/hybrid.json",
                          top=100, ks=(1, 5, 10), out_dir="out/rerank", device=None)
    p = evaluate_pipeline("outputs/bge-m3", "outputs/reranker", "example_data/eval",
                          retrieve_top=100, rerank_top=10, out_dir="out/pipeline")
    p["gain"]["ndcg@10"], p["results"]["reranked"]["metrics"]["acc@1"], p["significance"]
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from bgeft.errors import UserError
from bgeft.eval.compare import paired_stats
from bgeft.eval.datasets import EvalData, load_eval_data
from bgeft.eval.metrics import check_threshold, evaluate_run
from bgeft.eval.retrieval import parse_ks
from bgeft.models.reranker import Reranker
from bgeft.safety import check_input

GAIN_METRICS = ("acc@1", "mrr", "ndcg@10", "err@10", "map")


def _run_score(path: Path, where: str, value) -> float:
    """A candidate's score: a finite number, or one message naming the place."""
    try:
        score = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        score = float("nan")
    if not math.isfinite(score):
        raise UserError(f"{path}: {where}: score {value!r} is not a finite number; candidates are ranked by score, "
                        "so every score must be a real number")
    return score


def load_candidates(path, data: EvalData) -> dict[str, list[tuple[str, float]]]:
    """Read a candidates file (see the module docstring) into a run, checking every id."""
    p = Path(path)
    if not os.path.exists(p):
        raise UserError(f"--candidates {p}: file not found; pass runs/<mode>.json from `bgeft eval retriever --out`")
    check_input(p, "--candidates")
    text = p.read_text(encoding="utf-8-sig")
    raw: dict[str, dict[str, float]] = {}
    try:
        obj = json.loads(text)
        obj = obj.get("search_results", obj) if isinstance(obj, dict) else obj
        if not isinstance(obj, dict) or not all(isinstance(v, dict) for v in obj.values()):
            raise UserError(f"{p}: expected a JSON object {{query-id: {{doc-id: score}}}}")
        raw = {str(q): {str(d): _run_score(p, f"query {q!r}, doc {d!r}", s) for d, s in docs.items()}
               for q, docs in obj.items()}
    except json.JSONDecodeError:
        for lineno, line in enumerate(text.splitlines(), 1):
            cols = line.split()
            if not cols:
                continue
            if len(cols) != 6:
                raise UserError(
                    f"{p}:{lineno}: expected a JSON run or TREC run lines 'qid Q0 docid rank score tag'") from None
            raw.setdefault(cols[0], {})[cols[2]] = _run_score(p, f"line {lineno}", cols[4])
    unknown = sorted({d for docs in raw.values() for d in docs if d not in data.corpus})
    if unknown:
        raise UserError(f"{p}: {len(unknown)} candidate doc id(s) are not in the corpus, e.g. {unknown[0]!r}; "
                        "the candidates must come from the same --data")
    return {q: sorted(docs.items(), key=lambda x: -x[1]) for q, docs in raw.items()}


def bm25_candidates(data: EvalData, top: int) -> dict[str, list[tuple[str, float]]]:
    from bgeft.models.index import BM25Index

    ids = data.doc_ids
    hits = BM25Index(data.doc_texts()).search([data.queries[q] for q in data.eval_qids], top)
    return {q: [(ids[i], float(top - r)) for r, i in enumerate(row)] for q, row in zip(data.eval_qids, hits)}


def rerank_run(reranker: Reranker, data: EvalData, run: dict, rerank_top: int) -> dict:
    texts = dict(zip(data.doc_ids, data.doc_texts()))
    pairs, owners = [], []
    for q in data.eval_qids:
        for d, _ in run.get(q, [])[:rerank_top]:
            pairs.append((data.queries[q], texts[d]))
            owners.append((q, d))
    scores = reranker.score(pairs)
    new: dict[str, list] = {q: [] for q in data.eval_qids}
    for (q, d), s in zip(owners, scores):
        new[q].append((d, s))
    for q in data.eval_qids:
        head = sorted(new[q], key=lambda x: -x[1])
        new[q] = head + list(run.get(q, [])[rerank_top:])
    return new


def _first_stage(data, candidates, retriever, top, mode, cache_dir, device, retriever_kwargs, progress):
    if candidates is not None:
        run = load_candidates(candidates, data)
        return {q: run.get(q, [])[:top] for q in data.eval_qids}, f"candidates file {candidates}", None
    if retriever is not None:
        from bgeft.eval.retrieval import evaluate_retriever

        res = evaluate_retriever(retriever, None, modes=[mode] if mode else None, data=data, depth=top,
                                 candidates=max(top, 100), cache_dir=cache_dir, device=device, progress=progress,
                                 **(retriever_kwargs or {}))
        mode = mode or res["settings"]["modes"][-1]
        return res["_runs"][mode], f"retriever {res['model']['path']} ({mode} mode)", res
    return bm25_candidates(data, top), "BM25 (bm25s + jieba tokens)", None


def evaluate_reranker(model_path, data_dir, candidates=None, retriever=None, top: int = 100, rerank_top=None,
                      ks=(1, 5, 10, 20), out_dir=None, cache_dir=None, device=None, batch_size: int = 32,
                      max_length: int = 512, mode: str | None = None, fp16=None, progress: bool = True,
                      data: EvalData | None = None, retriever_kwargs: dict | None = None, kind: str = "reranker",
                      split: str = "test", relevance_threshold: int = 1) -> dict:
    """Rerank first-stage candidates and score both stages (see the module docstring)."""
    start = time.perf_counter()
    ks = parse_ks(ks)
    check_threshold(relevance_threshold)
    if top < 1:
        raise UserError(f"--top {top}: must be a positive number of candidates")
    rerank_top = top if rerank_top is None else rerank_top
    if not 1 <= rerank_top <= top:
        raise UserError(f"--rerank-top {rerank_top}: must be between 1 and --retrieve-top/--top ({top})")
    if data is None and data_dir is None:
        raise UserError("evaluate_reranker: pass data_dir (or a loaded EvalData as data=)")
    data = data or load_eval_data(data_dir, split)
    reranker = Reranker(model_path, device=device, batch_size=batch_size, max_length=max_length, fp16=fp16,
                        flag="--reranker" if kind == "pipeline" else "--model")
    run1, described, retr = _first_stage(data, candidates, retriever, top, mode, cache_dir, ",".join(reranker.devices),
                                         retriever_kwargs, progress)
    t1 = time.perf_counter()
    run2 = rerank_run(reranker, data, run1, rerank_top)
    t2 = time.perf_counter()
    results = {
        "first_stage": evaluate_run(run1, data.qrels, ks, reranker=True, relevance_threshold=relevance_threshold),
        "reranked": evaluate_run(run2, data.qrels, ks, reranker=True, relevance_threshold=relevance_threshold),
    }
    gain = {k: results["reranked"]["metrics"][k] - v for k, v in results["first_stage"]["metrics"].items()
            if k != "n_queries"}
    p1, p2 = results["first_stage"]["per_query"], results["reranked"]["per_query"]
    names = [n for n in GAIN_METRICS if n in p1[data.eval_qids[0]]] or ["mrr"]
    significance = [{"mode": "reranked", "metric": n, **paired_stats([p1[q][n] for q in data.eval_qids],
                                                                      [p2[q][n] for q in data.eval_qids])}
                    for n in names]
    result = {
        "kind": kind,
        "model": retr["model"] if retr else None,
        "reranker": reranker.info(),
        "data": data.summary(),
        "settings": {"ks": ks, "retrieve_top": top, "rerank_top": rerank_top, "first_stage": described,
                     "batch_size": batch_size, "relevance_threshold": relevance_threshold},
        "timing": {"first_stage_s": round(t1 - start, 4), "rerank_s": round(t2 - t1, 4),
                   "pairs_scored": sum(min(len(run1.get(q, [])), rerank_top) for q in data.eval_qids),
                   "total_s": round(time.perf_counter() - start, 4)},
        "results": results,
        "gain": gain,
        "significance": significance,
        "_runs": {"first_stage": run1, "reranked": run2},
    }
    if retr:
        result["retriever"] = {"settings": retr["settings"], "cache": retr["cache"], "timing": retr["timing"]}
        result["cache"] = retr["cache"]
    if not reranker.trained_head:
        result["warning"] = (f"{reranker.path} has no sequence-classification head in its config (architectures); "
                             "FlagReranker initialised one at random, so its scores are meaningless until fine-tuned")
    if out_dir is not None:
        from bgeft.eval.report import write_outputs

        write_outputs(Path(out_dir), result)
    return result


def evaluate_pipeline(retriever_path, reranker_path, data_dir, retrieve_top: int = 100, rerank_top: int = 10,
                      mode: str | None = None, ks=(1, 5, 10, 20), out_dir=None, cache_dir=None, device=None,
                      batch_size: int = 32, max_length: int = 512, fp16=None, progress: bool = True,
                      data: EvalData | None = None, retriever_kwargs: dict | None = None, split: str = "test",
                      relevance_threshold: int = 1) -> dict:
    """Retrieve ``retrieve_top`` with the embedder, rerank the first ``rerank_top``; both stages + gain."""
    return evaluate_reranker(reranker_path, data_dir, retriever=retriever_path, top=retrieve_top,
                             rerank_top=rerank_top, ks=ks, out_dir=out_dir, cache_dir=cache_dir, device=device,
                             batch_size=batch_size, max_length=max_length, mode=mode, fp16=fp16, progress=progress,
                             data=data, retriever_kwargs=retriever_kwargs, kind="pipeline", split=split,
                             relevance_threshold=relevance_threshold)
