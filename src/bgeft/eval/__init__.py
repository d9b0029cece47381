"""Evaluation, comparison and benchmarking of retrievers, rerankers and the two-stage pipeline.

The Python API mirrors ``bgeft eval <verb>`` (imports are lazy, so ``import bgeft.eval`` is cheap)::

    from bgeft.eval import (evaluate_retriever, evaluate_reranker, evaluate_pipeline, compare_runs,
                            load_beir, load_eval_data)
    from bgeft.eval.bench import bench

* ``evaluate_retriever(model_path, data_dir, modes=None, weights=(0.4, 0.2, 0.4), ks=(1, 5, 10, 20, 100),
  out_dir=None, cache_dir=None, device=None, ...) -> dict``            (``bgeft.eval.retrieval``)
* ``evaluate_reranker(model_path, data_dir, candidates=None, retriever=None, top=100, rerank_top=None,
  ks=(1, 5, 10, 20), out_dir=None, ...) -> dict``                       (``bgeft.eval.rerank``)
* ``evaluate_pipeline(retriever_path, reranker_path, data_dir, retrieve_top=100, rerank_top=10, ...) -> dict``
* ``compare_runs(baseline, candidate, metrics=("ndcg@10", "recall@10", "mrr@10", "map"), out_dir=None) -> dict``
  where baseline / candidate are result dicts, metrics.json paths or output directories (``bgeft.eval.compare``)
* ``bench(model_path, batch_sizes=(1, 8, 32, 128), reranker=False, ...) -> dict`` (``bgeft.eval.bench``)
* ``load_beir(data_dir, split="test")`` / ``load_eval_data(path)`` -> ``EvalData`` (``bgeft.eval.datasets``)

Every function raises ``bgeft.errors.UserError`` with the fix for mistakes in its input.
"""
from __future__ import annotations

_EXPORTS = {
    "evaluate_retriever": "retrieval", "evaluate_reranker": "rerank", "evaluate_pipeline": "rerank",
    "compare_runs": "compare", "load_beir": "datasets", "load_eval_data": "datasets",
    "EvalData": "datasets",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
