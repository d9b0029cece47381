"""Rank a corpus for each query in the four BGE-M3 scoring modes, from one set of encodings.

* ``dense``: inner product of normalised vectors, exact search with a faiss flat index (moved to
  the GPU when faiss has GPU support and the encoder runs on CUDA; searched block by block, without a
  copy, when the corpus vectors were spilled to a memmap);
* ``sparse``: lexical matching score sum_t w_q(t) * w_d(t) over the **whole corpus**
  (sparse matrix product);
* ``colbert``: late-interaction score (mean over query tokens of the best matching passage
  token) over the dense top-``candidates`` passages;
* ``hybrid``: ``w_dense * dense + w_sparse * sparse + w_colbert * colbert`` over the union of the
  dense and sparse top-``candidates`` passages (BGE-M3's recommended weights are 0.4, 0.2, 0.4).

Every mode returns ``{qid: [(docid, score), ...]}`` best first, ``depth`` long at most.
"""
from __future__ import annotations

import numpy as np

from bgeft.console_progress import track
from bgeft.models.encoded import Encoded


def dense_topk(docs: Encoded, queries: Encoded, k: int, gpu: bool = False,
               progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(scores, indices), both (n_queries, k'); k' = min(k, n_docs). Exact search (faiss flat; block by
    block over the corpus when its vectors were spilled to a memmap, see ``bgeft.models.index``)."""
    from bgeft.models.index import build_index, search

    index = build_index(docs.dense, "flat", gpu="auto" if gpu else "no")
    return search(index, queries.dense, k, desc="dense search", enabled=progress)


def sparse_topk(docs: Encoded, queries: Encoded, k: int, block: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Lexical matching over the whole corpus, ``block`` queries at a time."""
    k = min(k, docs.n)
    doc_t = docs.sparse.T.tocsc()
    all_scores = np.zeros((queries.n, k), np.float32)
    all_idx = np.zeros((queries.n, k), np.int64)
    for start in range(0, queries.n, block):
        scores = (queries.sparse[start:start + block] @ doc_t).toarray()
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        part_scores = np.take_along_axis(scores, part, axis=1)
        order = np.argsort(-part_scores, axis=1, kind="stable")
        all_idx[start:start + block] = np.take_along_axis(part, order, axis=1)
        all_scores[start:start + block] = np.take_along_axis(part_scores, order, axis=1)
    return all_scores, all_idx


def colbert_scores(docs: Encoded, q_vecs: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """ColBERT score of one query against the candidate passages ``cand``."""
    if len(cand) == 0 or len(q_vecs) == 0:
        return np.zeros(len(cand), np.float32)
    blocks = [docs.colbert_of(int(i)) for i in cand]
    lengths = np.array([len(b) for b in blocks])
    mat = np.concatenate(blocks, axis=0) if lengths.sum() else np.zeros((1, q_vecs.shape[1]), np.float32)
    sims = q_vecs @ mat.T                                      # (q_tokens, total passage tokens)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    best = np.full((len(q_vecs), len(cand)), 0.0, np.float32)
    nonempty = lengths > 0
    if nonempty.any():
        best[:, nonempty] = np.maximum.reduceat(sims, starts[nonempty], axis=1)
    return best.sum(axis=0) / len(q_vecs)


def sparse_scores(docs: Encoded, q_row, cand: np.ndarray) -> np.ndarray:
    return np.asarray((docs.sparse[cand] @ q_row.T).toarray()).ravel().astype(np.float32)


def _ranked(ids: list[str], idx, scores, depth: int) -> list[tuple[str, float]]:
    order = np.argsort(-np.asarray(scores), kind="stable")[:depth]
    return [(ids[int(idx[i])], float(scores[i])) for i in order]


def retrieve(docs: Encoded, queries: Encoded, doc_ids: list[str], qids: list[str], modes, weights: dict,
             depth: int = 100, candidates: int = 100, gpu: bool = False, progress: bool = True) -> dict:
    """Rank ``doc_ids`` for every query in each mode of ``modes``.

    Returns ``{mode: {qid: [(docid, score), ...]}}`` and, under ``"_seconds"``, search time per mode.
    """
    import time

    runs, seconds = {}, {}
    n_cand = max(candidates, depth)
    need_dense = bool({"dense", "colbert", "hybrid"} & set(modes))
    if need_dense:
        t = time.perf_counter()
        d_scores, d_idx = dense_topk(docs, queries, n_cand, gpu, progress)
        seconds["dense"] = time.perf_counter() - t
        if "dense" in modes:
            runs["dense"] = {q: _ranked(doc_ids, d_idx[i], d_scores[i], depth) for i, q in enumerate(qids)}
    if {"sparse", "hybrid"} & set(modes):
        t = time.perf_counter()
        s_scores, s_idx = sparse_topk(docs, queries, n_cand)
        seconds["sparse"] = time.perf_counter() - t
        if "sparse" in modes:
            # a passage sharing no token with the query has no sparse score: it is not retrieved
            runs["sparse"] = {q: [(d, s) for d, s in _ranked(doc_ids, s_idx[i], s_scores[i], depth) if s > 0]
                              for i, q in enumerate(qids)}
    if "colbert" in modes:
        t = time.perf_counter()
        runs["colbert"] = {}
        for i, q in enumerate(track(qids, "colbert scoring", "queries", enabled=progress)):
            cand = d_idx[i][d_idx[i] >= 0]
            runs["colbert"][q] = _ranked(doc_ids, cand, colbert_scores(docs, queries.colbert_of(i), cand), depth)
        seconds["colbert"] = time.perf_counter() - t
    if "hybrid" in modes:
        t = time.perf_counter()
        runs["hybrid"] = {}
        for i, q in enumerate(track(qids, "hybrid scoring", "queries", enabled=progress)):
            cand = np.unique(np.concatenate([d_idx[i][d_idx[i] >= 0], s_idx[i]]))
            dense = docs.dense[cand] @ queries.dense[i]
            score = (weights["dense"] * dense + weights["sparse"] * sparse_scores(docs, queries.sparse[i], cand)
                     + weights["colbert"] * colbert_scores(docs, queries.colbert_of(i), cand))
            runs["hybrid"][q] = _ranked(doc_ids, cand, score, depth)
        seconds["hybrid"] = time.perf_counter() - t
    runs["_seconds"] = seconds
    return runs
