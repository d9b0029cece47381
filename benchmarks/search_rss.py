"""Peak RSS and time of the dense search phase over spilled (memmap) vectors, as the pool grows.

    python benchmarks/search_rss.py [--sizes 25000,250000] [--dim 1024] [--queries 1000] [--k 100]
                                    [--modes faiss,blocks] [--timeout 1800]

The pool is N random unit vectors written as a float16 ``.npy`` memmap, as the Encoder spills them
(``data mine --spill-mb``); the queries are 1,000 of them, perturbed. Each mode runs in a fresh process
that opens the memmap, builds the index and searches the top ``k`` of every query; wall, CPU seconds
(user + system) and peak RSS of that process come from ``os.wait4``:

* ``faiss``: the path before block search: every vector added (as float32) to a faiss ``IndexFlatIP``;
* ``blocks``: ``bgeft.models.index.build_index(memmap, "flat")`` -> ``BlockFlatIP`` (one block at a time);
* ``ivf`` / ``ivf-fp16``: ``IndexIVFFlat`` as ``build_index(..., "ivf")`` builds it, and the same with
  ``IndexIVFScalarQuantizer`` (``QT_fp16``, half the bytes a vector); recall@k against ``faiss``'s ids.

Every mode's ids are compared with the first mode's (share of equal top-k ids per query, 1.0 = same).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from encode_vs_st import run_measured


def write_pool(path: Path, n: int, dim: int, seed: int = 0) -> None:
    from bgeft.models.pages import release

    rng = np.random.default_rng(seed)
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, dim))
    for start in range(0, n, 65536):
        block = rng.standard_normal((min(65536, n - start), dim), dtype=np.float32)
        arr[start:start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
        arr.flush()
        release(arr, start, start + len(block))
    del arr


def child(mode: str, pool_path: str, n_queries: int, k: int, out: str) -> None:
    import faiss

    from bgeft.models.index import build_index, ivf_nlist, search

    pool = np.load(pool_path, mmap_mode="r")
    rng = np.random.default_rng(1)
    pick = rng.choice(len(pool), n_queries, replace=False)
    queries = np.asarray(pool[np.sort(pick)], np.float32) + rng.normal(0, 0.05, (n_queries, pool.shape[1])).astype(
        np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    t = time.perf_counter()
    if mode == "faiss":
        index = faiss.IndexFlatIP(pool.shape[1])
        for start in range(0, len(pool), 65536):
            index.add(np.ascontiguousarray(pool[start:start + 65536], dtype=np.float32))
    elif mode == "blocks":
        index = build_index(pool, "flat", gpu="no")
    elif mode == "ivf":
        index = build_index(pool, "ivf", gpu="no")
    elif mode == "ivf-fp16":
        n, dim = pool.shape
        nlist = ivf_nlist(n)
        index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, nlist, faiss.ScalarQuantizer.QT_fp16,
                                              faiss.METRIC_INNER_PRODUCT)
        step = max(1, n // min(n, 256 * nlist))
        index.train(np.ascontiguousarray(pool[::step], dtype=np.float32))
        index.nprobe = min(32, nlist)
        for start in range(0, n, 65536):
            index.add(np.ascontiguousarray(pool[start:start + 65536], dtype=np.float32))
    else:
        raise SystemExit(f"unknown mode {mode}")
    built = time.perf_counter() - t
    _, ids = search(index, queries, k, enabled=False)
    np.save(out, ids)
    print(f"build {built:.1f}s search {time.perf_counter() - t - built:.1f}s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="25000,250000")
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--modes", default="faiss,blocks")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        mode, pool, nq, k, out = args.child
        child(mode, pool, int(nq), int(k), out)
        return 0
    root = Path(tempfile.mkdtemp(prefix="bgeft-search-rss-"))
    print(f"dim {args.dim}, {args.queries} queries, k {args.k}; load {os.getloadavg()[0]:.1f}")
    print(f"{'pool':>9} {'float32 MB':>10} {'mode':>8} {'wall s':>7} {'CPU s':>7} {'peak RSS MB':>11} "
          f"{'same ids':>8}  phases")
    try:
        for n in (int(s) for s in args.sizes.split(",")):
            pool = root / f"pool-{n}.npy"
            write_pool(pool, n, args.dim)
            first = None
            for mode in args.modes.split(","):
                out = root / f"ids-{n}-{mode}.npy"
                r = run_measured([sys.executable, __file__, "--child", mode, str(pool), str(args.queries),
                                  str(args.k), str(out)], args.timeout)
                if not r["finished"]:
                    print(f"{n:>9} {n * args.dim * 4 / 2**20:>10.0f} {mode:>8}  did not finish in {args.timeout:.0f} s")
                    continue
                ids = np.load(out)
                first = ids if first is None else first
                same = np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(ids, first)])
                print(f"{n:>9} {n * args.dim * 4 / 2**20:>10.0f} {mode:>8} {r['wall']:>7.1f} {r['cpu']:>7.1f} "
                      f"{r['rss_mb']:>11.0f} {same:>8.4f}  {r['out'].strip()} (load {r['load'][0]:.1f})",
                      flush=True)
            pool.unlink()
    finally:
        for f in root.iterdir():
            f.unlink()
        root.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
