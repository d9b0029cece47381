"""The one vector index (faiss) and the one lexical index (BM25) that mining and evaluation search.

* ``build_index(vectors, kind="flat"|"ivf"|"hnsw", gpu="auto", nprobe=None)`` -> a faiss inner-product
  index (normalised vectors: cosine). ``flat`` is exact. ``ivf`` trains ``nlist`` ≈ 4·√N centroids
  (at most N/39, faiss' minimum points per centroid; below 156 vectors it falls back to flat) and
  searches ``nprobe`` of them (default 32, at most nlist). ``hnsw``: 32 links, efSearch 128.
  Vectors are added in chunks converted to float32, so a float16 memmap is never copied whole.
  ``gpu="auto"`` moves flat/IVF indexes onto every visible GPU when faiss has GPU support.
* ``flat`` over vectors left on disk (the Encoder's spilled float16 memmap, the shards of ``data mine
  --from-shards``) on the CPU is a ``BlockFlatIP``: no copy in faiss; each search reads the pool block by
  block (~64 MB of float32 at a time), scores it with ``faiss.knn`` and keeps every query's running top-k
  in ``faiss.ResultHeap``; RAM holds one block and the results, whatever the pool's size, and the pages
  read leave the process (``bgeft.models.pages``). Same ids and scores as ``IndexFlatIP`` (ties aside).
* ``search(index, queries, k)`` -> ``(scores, ids)`` in batches, with bgeft's progress (bgeft.console_progress).
* ``BM25Index(texts).search(queries, k)``: bm25s over jieba tokens (Chinese and English words).
"""
from __future__ import annotations

import math
import re

import numpy as np

from bgeft.errors import UserError
from bgeft.models.choices import INDEX_KINDS

ADD_CHUNK = 65536
BLOCK_BYTES = 64 << 20    # float32 pool rows a BlockFlatIP scores at once
QUERY_CHUNK = 4096        # queries scored against a block at once (bounds faiss.knn's output)


def _faiss():
    try:
        import faiss
    except ImportError:
        raise UserError("searching needs faiss: pip install faiss-cpu (or faiss-gpu-cu12 on CUDA machines)") from None
    return faiss


def gpu_available() -> bool:
    faiss = _faiss()
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def ivf_nlist(n: int) -> int:
    """≈ 4·√N centroids, at most N/39 (faiss warns below 39 training points per centroid)."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def _f32(block: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(block, dtype=np.float32)


class BlockFlatIP:
    """Exact inner-product search over vectors left where they are (a memmap): see the module docstring."""

    def __init__(self, vectors: np.ndarray, block_rows: int | None = None):
        self.vectors = vectors
        self.ntotal, self.d = vectors.shape
        # a multiple of faiss' 1024-row BLAS tile, so blocks are scored exactly as IndexFlatIP scores them
        self.block_rows = block_rows or max(1024, BLOCK_BYTES // (4 * self.d) // 1024 * 1024)

    def search(self, queries: np.ndarray, k: int, bar=None) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)`` of the ``k`` best rows per query, best first; ``-1`` ids pad past ``ntotal``.
        ``bar`` (a bgeft Progress) advances by the rows of each block scored."""
        faiss = _faiss()
        from bgeft.models.pages import release

        nq = len(queries)
        heap = faiss.ResultHeap(nq, k, keep_max=True)
        if nq == 0:
            return heap.D, heap.I
        for start in range(0, self.ntotal, self.block_rows):
            block = _f32(self.vectors[start:start + self.block_rows])
            kb = min(k, len(block))  # never more than the block has: no -1 padding to offset
            for q0 in range(0, nq, QUERY_CHUNK):
                scores, ids = faiss.knn(_f32(queries[q0:q0 + QUERY_CHUNK]), block, kb, faiss.METRIC_INNER_PRODUCT)
                heap.add_result_subset(np.arange(q0, q0 + len(scores)), scores, ids + start)
            release(self.vectors, start, start + len(block))
            if bar is not None:
                bar.update(len(block))
        heap.finalize()
        return heap.D, heap.I


def searched_in_blocks(vectors, kind: str) -> bool:
    """Exact search on the CPU over vectors left on disk (a memmap, or ``data mine --from-shards``' rows
    over several): a BlockFlatIP, not a faiss copy."""
    return kind == "flat" and (isinstance(vectors, np.memmap) or not isinstance(vectors, np.ndarray))


def build_index(vectors: np.ndarray, kind: str = "flat", gpu: str = "auto", nprobe: int | None = None):
    """An inner-product faiss index over ``vectors`` (see the module docstring)."""
    faiss = _faiss()
    if kind not in INDEX_KINDS:
        raise UserError(f"--index {kind}: choose one of {', '.join(INDEX_KINDS)}")
    if nprobe is not None and nprobe < 1:
        raise UserError(f"--nprobe {nprobe}: must be at least 1")
    n, dim = vectors.shape
    if kind == "ivf" and n >= 156:
        nlist = ivf_nlist(n)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        step = max(1, n // min(n, 256 * nlist))  # a strided sample is enough to train the centroids
        index.train(_f32(vectors[::step]))
        index.nprobe = min(nprobe or 32, nlist)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = 128
    else:
        index = faiss.IndexFlatIP(dim)
    use_gpu = gpu == "yes" or (gpu == "auto" and kind != "hnsw" and gpu_available())
    if use_gpu:
        if not gpu_available():
            raise UserError("--faiss-gpu yes: this faiss has no GPU support or sees no GPU; "
                            "install faiss-gpu-cu12 or use auto")
        if kind == "hnsw":
            raise UserError("--index hnsw runs on the CPU only; use --index flat or ivf with --faiss-gpu yes")
        options = faiss.GpuMultipleClonerOptions()
        options.shard = True
        index = faiss.index_cpu_to_all_gpus(index, co=options)
    elif searched_in_blocks(vectors, kind):
        return BlockFlatIP(vectors)
    from bgeft.models.pages import release

    for start in range(0, n, ADD_CHUNK):
        index.add(_f32(vectors[start:start + ADD_CHUNK]))
        release(vectors, start, start + ADD_CHUNK)
    return index


def search(index, queries: np.ndarray, k: int, batch_size: int = 256, desc: str = "search",
           enabled: bool = True) -> tuple[np.ndarray, np.ndarray]:
    k = min(k, index.ntotal)
    scores, ids = [], []
    from bgeft.console_progress import progress

    if isinstance(index, BlockFlatIP):  # one pass over the pool for all the queries
        with progress(index.ntotal, desc, "passages", min_total=index.block_rows + 1, enabled=enabled) as bar:
            return index.search(queries, k, bar)
    with progress(len(queries), desc, "queries", min_total=batch_size + 1, enabled=enabled) as bar:
        for start in range(0, len(queries), batch_size):
            s, i = index.search(_f32(queries[start:start + batch_size]), k)
            scores.append(s)
            ids.append(i)
            bar.update(len(s))
    if not scores:
        return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
    return np.concatenate(scores), np.concatenate(ids)


_WORD = re.compile(r"\w", re.UNICODE)


def bm25_tokens(text: str) -> list[str]:
    """jieba words (Chinese) and lower-cased words (English), punctuation and spaces dropped."""
    import jieba

    jieba.setLogLevel(60)
    return [t.lower() for t in jieba.lcut(text) if _WORD.search(t)]


class BM25Index:
    """BM25 over ``texts`` with bm25s; ``search`` returns per query the ids of matching passages."""

    def __init__(self, texts: list[str]):
        import bm25s

        self.n = len(texts)
        self.retriever = bm25s.BM25()
        from bgeft.console_progress import track

        bar = track(texts, "bm25 index", "passages", min_total=1000)
        self.retriever.index([bm25_tokens(t) or ["<empty>"] for t in bar], show_progress=False)

    def search(self, queries: list[str], k: int) -> list[list[int]]:
        k = min(k, self.n)
        tokens = [bm25_tokens(q) or ["<empty>"] for q in queries]
        ids, scores = self.retriever.retrieve(tokens, k=k, show_progress=len(queries) > 1000)
        return [[int(i) for i, s in zip(row_ids, row_scores) if s > 0] for row_ids, row_scores in zip(ids, scores)]
