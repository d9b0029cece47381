"""The mining pool's vectors in parts: ``bgeft data mine --shard I/N`` / ``--from-shards DIR``.

A pool too big for one machine's time budget is encoded by N jobs (one per node, e.g. a Kubernetes
Indexed Job). Job ``I`` encodes pool rows ``[I*n//N, (I+1)*n//N)`` of the de-duplicated pool (the
corpus file's order, so the same on every node) into ``DIR/pool-I-of-N.npy`` (float16, ``n_i x dim``)
and then ``DIR/pool-I-of-N.json``::

    {"format": "bgeft-pool-shard/1", "shard": I, "shards": N, "rows": [start, end], "pool_size": n,
     "pool_sha256": ..., "model": "/models/bge-m3", "model_sha256": ..., "settings": {...}, "dim": 1024,
     "dtype": "float16"}

``pool_sha256`` hashes the pool texts in order; ``model_sha256`` is the content hash of the model
directory (the pipeline's ``HashCache.tree``: the same weights give the same hash on every node,
wherever they are mounted); ``settings`` is ``Encoder.settings()``. Both files are written atomically
(the ``.json`` last, so a shard without it is unfinished).

``--from-shards DIR`` (:func:`load_shards`) checks that all N pairs are there and agree with each
other and with the mining run, and memory-maps the ``.npy`` files in row order as one read-only
:class:`ShardRows` view; the pool is never encoded again.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np

from bgeft.errors import UserError
from bgeft.io import atomic_write_text, atomic_writer
from bgeft.safety import check_input, check_output

FORMAT = "bgeft-pool-shard/1"
WRITE_CHUNK = 65536
NAME = re.compile(r"pool-(\d+)-of-(\d+)\.(npy|json)")


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> (2, 4): part I (counted from 0) of N."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match or not int(match.group(1)) < int(match.group(2)):
        raise UserError(f"--shard {text}: expected I/N with 0 <= I < N (part I of N, counted from 0), "
                        "e.g. --shard 0/4 on the first of four nodes")
    return int(match.group(1)), int(match.group(2))


def shard_rows(index: int, shards: int, pool_size: int) -> tuple[int, int]:
    return index * pool_size // shards, (index + 1) * pool_size // shards


def shard_name(index: int, shards: int, ext: str) -> str:
    return f"pool-{index}-of-{shards}.{ext}"


def pool_sha256(pool: list[str]) -> str:
    """sha256 of the pool texts in order (each length-prefixed, so no two pools share a hash by splitting)."""
    h = hashlib.sha256()
    for text in pool:
        data = text.encode("utf-8")
        h.update(f"{len(data)}:".encode())
        h.update(data)
    return h.hexdigest()


def _identity(encoder, pool: list[str], flag: str) -> dict:
    """What the shards must share with this run: the pool, the model's weights, the encoder settings."""
    from bgeft.pipeline.state import HashCache

    if encoder.path is None:
        raise UserError(f"{flag}: needs a model directory (--model PATH); a model object loaded in Python has "
                        "no weights hash to check the shards against")
    return {"pool_size": len(pool), "pool_sha256": pool_sha256(pool), "model": str(encoder.path),
            "model_sha256": HashCache(None).tree(Path(encoder.path)), "settings": encoder.settings()}


def check_shard_dir(shard: tuple[int, int], shard_dir, inputs=()) -> Path:
    """``--shard-dir``: given, a directory (or absent), neither an input nor holding one."""
    index, shards = shard
    if not 0 <= index < shards:
        raise UserError(f"--shard {index}/{shards}: expected I/N with 0 <= I < N, e.g. --shard 0/4")
    if shard_dir is None:
        raise UserError(f"--shard {index}/{shards}: needs --shard-dir DIR (the directory every node writes its "
                        "part into, e.g. --shard-dir outputs/shards on shared storage)")
    return check_output(shard_dir, inputs, what="--shard-dir", is_dir=True)


def write_shard(encoder, pool: list[str], shard: tuple[int, int], shard_dir) -> list[str]:
    """Encode this node's part of ``pool`` into ``shard_dir``; returns the summary lines."""
    import time

    index, shards = shard
    if shards > len(pool):
        raise UserError(f"--shard {index}/{shards}: the pool has only {len(pool)} passages; "
                        f"use at most {len(pool)} parts")
    target = Path(shard_dir)
    identity = _identity(encoder, pool, "--shard")
    start, end = shard_rows(index, shards, len(pool))
    t0 = time.perf_counter()
    vectors = encoder.dense(pool[start:end], "passage")
    seconds = time.perf_counter() - t0
    npy, meta = target / shard_name(index, shards, "npy"), target / shard_name(index, shards, "json")
    dim = int(vectors.shape[1])
    with atomic_writer(npy, "wb") as out:
        np.lib.format.write_array_header_1_0(out, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)),
                                                   "fortran_order": False, "shape": (end - start, dim)})
        for s in range(0, end - start, WRITE_CHUNK):
            out.write(np.ascontiguousarray(vectors[s:s + WRITE_CHUNK], dtype=np.float16).tobytes())
    atomic_write_text(meta, json.dumps({"format": FORMAT, "shard": index, "shards": shards, "rows": [start, end],
                                        **identity, "dim": dim, "dtype": "float16"}, indent=2) + "\n")
    return [f"encoded pool rows {start}-{end} of {len(pool)} (part {index}/{shards}) in {seconds:.1f}s -> {npy}",
            f"when all {shards} parts are written: bgeft data mine ... --from-shards {shard_dir}"]


class ShardRows:
    """The shards' float16 rows as one read-only (n, dim) array: ``len``, ``shape``, ``rows[i]``, slices."""

    def __init__(self, blocks: list[np.ndarray]):
        self.blocks = blocks
        self.starts = np.cumsum([0] + [len(b) for b in blocks])
        self.shape = (int(self.starts[-1]), int(blocks[0].shape[1]))
        self.dtype = blocks[0].dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            i = int(key) + (self.shape[0] if key < 0 else 0)
            if not 0 <= i < self.shape[0]:
                raise IndexError(key)
            b = int(np.searchsorted(self.starts, i, side="right")) - 1
            return self.blocks[b][i - self.starts[b]]
        wanted = np.arange(self.shape[0])[key]
        out = np.empty((len(wanted), self.shape[1]), self.dtype)
        block_of = np.searchsorted(self.starts, wanted, side="right") - 1
        for b in np.unique(block_of):
            mask = block_of == b
            out[mask] = self.blocks[b][wanted[mask] - self.starts[b]]
        return out

    def release(self, start: int, stop: int) -> None:
        """Rows ``start:stop`` were read: their pages leave the process (``bgeft.models.pages``)."""
        from bgeft.models.pages import release

        for b, block in enumerate(self.blocks):
            lo, hi = max(start, int(self.starts[b])), min(stop, int(self.starts[b + 1]))
            if lo < hi:
                release(block, lo - int(self.starts[b]), hi - int(self.starts[b]))


def _read_meta(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable shard description ({exc}); "
                        "write this part again with --shard") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{path}: not a bgeft pool shard description (no \"format\": \"{FORMAT}\"); "
                        "write this part again with --shard")
    return meta


def _differences(have: dict, want: dict) -> list[str]:
    """What in the shard ``have`` differs from ``want`` (pool, model weights, each encoder setting)."""
    out = []
    if have.get("pool_size") != want["pool_size"] or have.get("pool_sha256") != want["pool_sha256"]:
        out.append(f"another pool ({have.get('pool_size')} passages, sha256 {str(have.get('pool_sha256'))[:12]} "
                   f"vs {want['pool_size']}, {want['pool_sha256'][:12]}: another --corpus, input file or "
                   "--skip-invalid result)")
    if have.get("model_sha256") != want["model_sha256"]:
        out.append(f"another model ({have.get('model')} vs {want['model']}: the model files differ)")
    settings = have.get("settings") if isinstance(have.get("settings"), dict) else {}
    for key in sorted(set(settings) | set(want["settings"])):
        if settings.get(key) != want["settings"].get(key):
            out.append(f"{key} {settings.get(key)!r} vs {want['settings'].get(key)!r}")
    return out


def shard_files(shard_dir) -> tuple[Path, int]:
    """The directory ``--from-shards`` names and its N (one split only)."""
    path = check_input(shard_dir, "--from-shards", allow_dir=True)
    if not path.is_dir():
        raise UserError(f"--from-shards {shard_dir}: is a file; give the directory the --shard runs wrote "
                        "(their --shard-dir)")
    splits = sorted({int(m.group(2)) for f in os.listdir(path) if (m := NAME.fullmatch(f))})
    if not splits:
        raise UserError(f"--from-shards {shard_dir}: holds no pool-I-of-N.npy shards; write them first with "
                        f"`bgeft data mine IN.jsonl --model M --shard I/N --shard-dir {shard_dir}` (I = 0..N-1)")
    if len(splits) > 1:
        raise UserError(f"--from-shards {shard_dir}: holds shards of {len(splits)} different splits "
                        f"({', '.join(f'of {n}' for n in splits)}); keep only one split's pool-I-of-N files there")
    return path, splits[0]


def load_shards(shard_dir, encoder, pool: list[str]) -> ShardRows:
    """The pool's vectors from ``shard_dir`` (checked against this run; see the module docstring)."""
    path, shards = shard_files(shard_dir)
    names = [shard_name(i, shards, ext) for i in range(shards) for ext in ("npy", "json")]
    missing = [n for n in names if not (path / n).exists()]
    if missing:
        raise UserError(f"--from-shards {shard_dir}: missing {', '.join(missing)}; run each missing part "
                        f"with --shard I/{shards} --shard-dir {shard_dir} (a .npy without its .json is unfinished)")
    metas = [_read_meta(path / shard_name(i, shards, "json")) for i in range(shards)]
    first = metas[0]
    for i, meta in enumerate(metas):
        problems = _differences(meta, first) + [f"dim {meta.get('dim')!r} vs {first.get('dim')!r}"] * (
            meta.get("dim") != first.get("dim"))
        if problems:
            raise UserError(f"{path / shard_name(i, shards, 'json')}: differs from {shard_name(0, shards, 'json')}: "
                            f"{'; '.join(problems)}; encode every part with the same model, pool and settings")
    want = _identity(encoder, pool, "--from-shards")
    problems = _differences(first, want)
    if problems:
        raise UserError(f"{path}: the shards do not match this run (shard vs this run: {'; '.join(problems)}); "
                        "mine with the same --model, --corpus/input, --passage-max-length, --pooling, "
                        "--model-class and device precision as the --shard runs (fp32 everywhere: --fp32), "
                        "or encode the shards again")
    blocks = []
    for i, meta in enumerate(metas):
        npy = path / shard_name(i, shards, "npy")
        start, end = shard_rows(i, shards, len(pool))
        if meta.get("shard") != i or meta.get("shards") != shards or meta.get("rows") != [start, end]:
            raise UserError(f"{path / shard_name(i, shards, 'json')}: describes part {meta.get('shard')}/"
                            f"{meta.get('shards')} rows {meta.get('rows')}, expected part {i}/{shards} rows "
                            f"{[start, end]}; encode this part again with --shard {i}/{shards}")
        check_input(npy, "--from-shards")
        try:
            block = np.load(npy, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise UserError(f"{npy}: truncated or not a .npy file ({exc}); encode this part again with "
                            f"--shard {i}/{shards}") from None
        if block.dtype != np.float16 or block.shape != (end - start, first.get("dim")):
            raise UserError(f"{npy}: holds {block.dtype} {block.shape}, expected float16 "
                            f"{(end - start, first.get('dim'))}; encode this part again with --shard {i}/{shards}")
        blocks.append(block)
    return ShardRows(blocks)


def positive_vectors(rows: ShardRows, pool: list[str], positives: list[str], encoder) -> np.ndarray:
    """Vectors of ``positives``: the shards' row for those in the pool, the encoder for the others."""
    wanted, where = set(positives), {}
    for i, text in enumerate(pool):
        if text in wanted:
            where[text] = i
    out = np.empty((len(positives), rows.shape[1]), np.float32)
    missing = [t for t in positives if t not in where]
    fresh = {t: k for k, t in enumerate(missing)}
    vecs = encoder.dense(missing, "passage") if missing else None
    for k, text in enumerate(positives):
        out[k] = rows[where[text]] if text in where else vecs[fresh[text]]
    return out


def shard_paths(shard_dir) -> list[Path]:
    """The directory and the pool-I-of-N files in it (inputs an output may not replace)."""
    try:
        return [Path(shard_dir)] + [Path(shard_dir) / f for f in sorted(os.listdir(shard_dir)) if NAME.fullmatch(f)]
    except OSError:
        return [Path(shard_dir)]


def shard_mode(args) -> tuple[int, int] | None:
    """The parsed --shard, after checking which of -o/--shard/--shard-dir/--from-shards go together."""
    if args.shard is None:
        if args.shard_dir is not None:
            raise UserError("--shard-dir goes with --shard I/N (to read shards when mining, use --from-shards DIR)")
        if args.output is None:
            raise UserError("-o/--output OUT.jsonl is required (unless --shard I/N --shard-dir DIR only encodes "
                            "part of the pool)")
        return None
    shard = parse_shard(args.shard)
    if args.output is not None or args.from_shards is not None:
        raise UserError(f"--shard {args.shard}: only encodes part of the pool; leave out "
                        f"{'-o' if args.output is not None else '--from-shards'} (mine afterwards with "
                        "-o OUT.jsonl --from-shards DIR)")
    if args.shard_dir is None:
        raise UserError(f"--shard {args.shard}: needs --shard-dir DIR (the directory every node writes its part "
                        "into, e.g. --shard-dir outputs/shards on shared storage)")
    return shard

