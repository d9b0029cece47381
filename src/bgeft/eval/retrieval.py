"""``bgeft eval retriever``: score an embedder in every mode from one corpus encoding.

Python API (what ``bgeft pipeline`` calls)::

    from bgeft.eval.retrieval import evaluate_retriever
    result = evaluate_retriever(
        "outputs/bge-m3_unified", "example_data/eval",
        modes=None,                 # None = every mode the model has (M3: dense,sparse,colbert,hybrid)
        weights=(0.4, 0.2, 0.4),    # hybrid weights for dense, sparse, colbert
        ks=(1, 5, 10, 20, 100),
        out_dir="outputs/eval/m3",  # metrics.json, report.md, plots, runs/<mode>.json; None = write nothing
        cache_dir=None,             # corpus-encoding cache; None = ~/.cache/bgeft/embeddings, False = off
        device=None)                # bgeft.models.devices syntax: auto, cpu, cuda, cuda:1, npu, cuda:0,cuda:1
    result["results"]["hybrid"]["metrics"]["ndcg@10"]
    result["results"]["dense"]["per_query"]["q1"]["recall@10"]
    result["cache"]["hit"]          # True when the corpus encodings came from the cache
    result["_runs"]["hybrid"]       # {qid: [(docid, score), ...]} (not written to metrics.json)

    # a model object already in memory (in-training evaluation): FlagEmbedding's training model
    from bgeft.eval.retrieval import evaluate_model
    evaluate_model(trainer.model, "example_data/eval", modes=["dense"], ks=(10,))["results"]["dense"]["metrics"]
"""
from __future__ import annotations

import math
import time
from pathlib import Path

from bgeft.errors import UserError
from bgeft.eval.datasets import EvalData, load_eval_data
from bgeft.eval.encoding import encode_corpus_cached
from bgeft.eval.metrics import DEFAULT_KS, check_threshold, evaluate_run
from bgeft.models.embedder import ALL_MODES, MODE_OUTPUTS, Encoder

DEFAULT_WEIGHTS = (0.4, 0.2, 0.4)


def parse_modes(modes, encoder: Encoder) -> list[str]:
    if modes is None or modes == "auto" or modes == ["auto"]:
        return list(encoder.available_modes)
    if isinstance(modes, str):
        modes = [m.strip() for m in modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in ALL_MODES]
    if unknown:
        raise UserError(f"--modes: unknown mode(s) {', '.join(unknown)}; choose from {', '.join(ALL_MODES)}")
    encoder.check_modes(modes)
    return [m for m in ALL_MODES if m in modes]


def parse_weights(weights) -> dict[str, float]:
    if isinstance(weights, dict):
        weights = [weights.get(k, 0.0) for k in ("dense", "sparse", "colbert")]
    if isinstance(weights, str):
        try:
            weights = [float(x) for x in weights.split(",")]
        except ValueError:
            raise UserError(
                f"--weights {weights!r}: expected three numbers dense,sparse,colbert such as 0.4,0.2,0.4"
            ) from None
    weights = list(weights)
    if (len(weights) != 3 or any(not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0 for w in weights)
            or sum(weights) <= 0):
        raise UserError(f"--weights {weights}: expected three finite non-negative numbers dense,sparse,colbert "
                        "(not all zero) such as 0.4,0.2,0.4")
    return dict(zip(("dense", "sparse", "colbert"), map(float, weights)))


def parse_ks(ks) -> list[int]:
    if isinstance(ks, str):
        try:
            ks = [int(x) for x in ks.split(",") if x.strip()]
        except ValueError:
            raise UserError(f"--k {ks!r}: expected comma-separated positive integers such as 1,5,10,20,100") from None
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise UserError(f"--k {ks}: expected positive integers such as 1,5,10,20,100")
    return ks


def run_retriever(encoder: Encoder, data: EvalData, modes, weights, depth: int, candidates: int,
                  cache_dir=None, progress: bool = True) -> dict:
    """Encode (or reuse) the corpus, encode the queries, rank in every mode. No metrics."""
    outputs = set().union(*(MODE_OUTPUTS[m] for m in modes))
    t_load = time.perf_counter()
    encoder.load()  # the weights now, so the encode timings below are encoding only
    t0 = time.perf_counter()
    docs, cache = encode_corpus_cached(encoder, data.doc_texts(), data.corpus_fingerprint(), outputs, cache_dir)
    t1 = time.perf_counter()
    qids = data.eval_qids
    queries = encoder.encode_queries([data.queries[q] for q in qids], outputs)
    t2 = time.perf_counter()
    from bgeft.eval.search import retrieve

    runs = retrieve(docs, queries, data.doc_ids, qids, modes, weights, depth=depth, candidates=candidates,
                    gpu=encoder.devices[0].startswith("cuda"), progress=progress)
    seconds = runs.pop("_seconds")
    timing = {
        "load_model_s": round(t0 - t_load, 4),
        "encode_corpus_s": round(t1 - t0, 4),
        "encode_queries_s": round(t2 - t1, 4),
        "search_s": {k: round(v, 4) for k, v in seconds.items()},
    }
    return {"runs": runs, "cache": cache, "timing": timing}


def encoder_info(encoder: Encoder) -> dict:
    from bgeft.models.resolve import model_fingerprint

    return {"path": str(encoder.path) if encoder.path else f"<in-memory {encoder.class_name}>",
            "class": encoder.class_name, "fingerprint": model_fingerprint(encoder.path) if encoder.path else None,
            "modes_available": list(encoder.available_modes), **encoder.settings(),
            "query_max_len": encoder.query_max_length, "query_instruction": encoder.query_instruction,
            "devices": encoder.devices}


def evaluate_retriever(model_path, data_dir, modes=None, weights=DEFAULT_WEIGHTS, ks=DEFAULT_KS, out_dir=None,
                       cache_dir=None, device=None, batch_size: int | None = None, query_max_len: int = 64,
                       passage_max_len: int = 512, pooling: str = "auto", query_instruction: str | None = None,
                       candidates: int = 100, depth: int | None = None, split: str = "test", fp16: bool | None = None,
                       progress: bool = True, data: EvalData | None = None, encoder: Encoder | None = None,
                       relevance_threshold: int = 1) -> dict:
    """Evaluate an embedder on ``data_dir`` (any layout of ``bgeft.eval.datasets``); see the module doc."""
    start = time.perf_counter()
    ks = parse_ks(ks)
    weights = parse_weights(weights)  # before the data and the model are loaded
    check_threshold(relevance_threshold)
    if data is None and data_dir is None:
        raise UserError("evaluate_retriever: pass data_dir (or a loaded EvalData as data=)")
    data = data or load_eval_data(data_dir, split)
    encoder = encoder or Encoder(model_path, device=device, batch_size=batch_size, query_max_length=query_max_len,
                                 passage_max_length=passage_max_len, pooling=pooling,
                                 query_instruction=query_instruction, fp16=fp16, progress=progress)
    modes = parse_modes(modes, encoder)
    depth = depth or max(100, ks[-1])
    if candidates < 1:
        raise UserError(f"--candidates {candidates}: must be a positive number of passages")
    ranked = run_retriever(encoder, data, modes, weights, depth, candidates, cache_dir, progress)
    results = {
        m: evaluate_run(ranked["runs"][m], data.qrels, ks, relevance_threshold=relevance_threshold) for m in modes
    }
    result = {
        "kind": "retriever",
        "model": encoder_info(encoder),
        "data": data.summary(),
        "settings": {"modes": modes, "weights": weights, "ks": ks, "depth": depth, "candidates": candidates,
                     "split": split, "relevance_threshold": relevance_threshold},
        "cache": ranked["cache"],
        "timing": {**ranked["timing"], "total_s": round(time.perf_counter() - start, 4)},
        "results": results,
        "_runs": ranked["runs"],
    }
    if out_dir is not None:
        from bgeft.eval.report import write_outputs

        write_outputs(Path(out_dir), result)
    return result


def evaluate_model(model, data, tokenizer=None, **kwargs) -> dict:
    """``evaluate_retriever`` for a model OBJECT already in memory (FlagEmbedding's training model, or a
    ``FlagModel``/``BGEM3FlagModel``): encoded where it lies, with no on-disk cache, nothing written
    unless ``out_dir`` is given. ``data``: a data directory or a loaded ``EvalData``."""
    encoder = kwargs.pop("encoder", None) or Encoder(model, tokenizer=tokenizer, progress=kwargs.get("progress", True),
                                                     query_max_length=kwargs.pop("query_max_len", 64),
                                                     passage_max_length=kwargs.pop("passage_max_len", 512))
    if isinstance(data, EvalData):
        return evaluate_retriever(None, None, data=data, encoder=encoder, cache_dir=False, **kwargs)
    return evaluate_retriever(None, data, encoder=encoder, cache_dir=False, **kwargs)
