"""The vector index: block-by-block exact search over a memmap gives IndexFlatIP's answers."""
from __future__ import annotations

import numpy as np
import pytest

from bgeft.models.index import BlockFlatIP, build_index, search


def _memmap(tmp_path, vecs: np.ndarray, dtype=np.float16) -> np.memmap:
    arr = np.lib.format.open_memmap(tmp_path / "dense.npy", mode="w+", dtype=dtype, shape=vecs.shape)
    arr[:] = vecs
    arr.flush()
    return arr


def _unit(rng, n: int, dim: int = 24) -> np.ndarray:
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def _in_ram(pool: np.ndarray, queries: np.ndarray, k: int):
    import faiss

    index = faiss.IndexFlatIP(pool.shape[1])
    index.add(np.ascontiguousarray(pool, dtype=np.float32))
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


@pytest.mark.parametrize("n,block,nq,k", [
    (1000, 96, 37, 10),     # n not a multiple of the block; more than faiss' 20-query BLAS threshold
    (250, 16, 5, 40),       # k > block size; few queries (faiss' non-BLAS path)
    (50, 16, 30, 80),       # k > n: -1 ids and faiss' lowest score past the pool, as IndexFlatIP
    (300, 1024, 0, 5),      # no queries
])
def test_block_search_equals_index_flat_ip(tmp_path, n, block, nq, k):
    rng = np.random.default_rng(n + nq)
    pool = _memmap(tmp_path, _unit(rng, n))
    queries = _unit(rng, nq) if nq else np.zeros((0, 24), np.float32)
    scores, ids = BlockFlatIP(pool, block_rows=block).search(queries, k)
    want_scores, want_ids = _in_ram(pool, queries, k)
    assert scores.shape == ids.shape == (nq, k) and scores.dtype == np.float32 and ids.dtype == np.int64
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=0, atol=1e-6)
    if k > n and nq:
        assert (ids[:, n:] == -1).all() and (ids[:, :n] >= 0).all()


def test_build_index_searches_a_memmap_in_blocks(tmp_path):
    """flat over a spilled memmap on the CPU: no faiss copy; search() caps k at the pool as before."""
    rng = np.random.default_rng(7)
    vecs = _unit(rng, 3000, 32)
    pool = _memmap(tmp_path, vecs)
    index = build_index(pool, "flat", gpu="no")
    assert isinstance(index, BlockFlatIP) and index.ntotal == 3000 and index.block_rows % 1024 == 0
    index.block_rows = 1024  # three blocks, the last one short
    queries = np.asarray(pool[:300], np.float32)
    scores, ids = search(index, queries, 5000, desc="dense search")
    want_scores, want_ids = search(build_index(np.asarray(pool, np.float32), "flat", gpu="no"), queries, 5000)
    assert ids.shape == (300, 3000)
    assert ids[:, 0].tolist() == list(range(300))
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=0, atol=1e-6)
    assert not isinstance(build_index(vecs, "flat", gpu="no"), BlockFlatIP)       # an array in RAM: IndexFlatIP
    assert not isinstance(build_index(pool, "hnsw", gpu="no"), BlockFlatIP)       # approximate kinds copy


def test_block_search_progress_counts_passages(tmp_path):
    """The bar advances block by block over the pool (passages), ending at the pool's size."""
    class Bar:
        def __init__(self):
            self.steps = []

        def update(self, n):
            self.steps.append(n)

    rng = np.random.default_rng(3)
    pool = _memmap(tmp_path, _unit(rng, 2500))
    bar = Bar()
    BlockFlatIP(pool, block_rows=1024).search(_unit(rng, 3), 4, bar)
    assert bar.steps == [1024, 1024, 452]


def test_rows_over_several_memmaps_are_searched_in_blocks(tmp_path):
    """data mine --from-shards: the pool is ShardRows over one memmap per part; searched in place too."""
    from bgeft.data.shards import ShardRows

    rng = np.random.default_rng(11)
    vecs = _unit(rng, 2600, 16)
    parts = []
    for i, (lo, hi) in enumerate(((0, 900), (900, 1700), (1700, 2600))):
        (tmp_path / str(i)).mkdir()
        parts.append(_memmap(tmp_path / str(i), vecs[lo:hi]))
    index = build_index(ShardRows(parts), "flat", gpu="no")
    assert isinstance(index, BlockFlatIP)
    index.block_rows = 1024  # blocks that straddle the parts
    queries = _unit(rng, 40, 16)
    scores, ids = search(index, queries, 30)
    want_scores, want_ids = _in_ram(np.concatenate([np.asarray(p, np.float32) for p in parts]), queries, 30)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=0, atol=1e-6)
