"""The on-disk cache of corpus encodings for ``bgeft eval`` (the encoder itself is ``bgeft.models.embedder``).

An entry is keyed by the model's fingerprint, the corpus fingerprint and the encoder settings that
change passage vectors; a second evaluation of the same model on the same corpus reuses it. A reused
entry's dense vectors are memory-mapped (read-only), so the dense search reads them block by block.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
from scipy import sparse as sp

from bgeft.errors import UserError
from bgeft.models.embedder import Encoded, Encoder
from bgeft.models.pages import release
from bgeft.models.resolve import model_fingerprint

log = logging.getLogger(__name__)


# ---- on-disk cache of corpus encodings --------------------------------------------------------

def cache_key(encoder: Encoder, corpus_fp: str) -> str:
    blob = json.dumps(
        {"model": model_fingerprint(encoder.path), "corpus": corpus_fp, **encoder.settings()}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def default_cache_dir() -> Path:
    import os

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bgeft" / "embeddings"


def load_cached(entry: Path, outputs: set[str]) -> Encoded | None:
    meta_path = entry / "meta.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if not outputs <= set(meta["outputs"]):
        return None
    enc = Encoded(meta["n"])
    if "dense" in meta["outputs"]:
        enc.dense = np.load(entry / "dense.npy", mmap_mode="r")  # searched in blocks, never copied whole
    if "sparse" in meta["outputs"]:
        enc.sparse = sp.load_npz(entry / "sparse.npz").tocsr()
    if "colbert" in meta["outputs"]:
        enc.colbert = np.load(entry / "colbert.npy")
        enc.colbert_offsets = np.load(entry / "colbert_offsets.npy")
    return enc


def save_cached(entry: Path, enc: Encoded, info: dict) -> None:
    """Write into a sibling temp dir, then swap it in: a crash never leaves a half entry."""
    from bgeft.io import atomic_dir

    with atomic_dir(entry, replace=True) as tmp:
        if enc.dense is not None:
            np.save(tmp / "dense.npy", enc.dense)
            release(enc.dense, 0, len(enc.dense))  # a spilled memmap's pages, read by the save
        if enc.sparse is not None:
            sp.save_npz(tmp / "sparse.npz", enc.sparse)
        if enc.colbert is not None:
            np.save(tmp / "colbert.npy", enc.colbert)
            np.save(tmp / "colbert_offsets.npy", enc.colbert_offsets)
        (tmp / "meta.json").write_text(json.dumps({"n": enc.n, "outputs": sorted(enc.outputs), **info}, indent=2),
                                       encoding="utf-8")


def encode_corpus_cached(encoder: Encoder, texts: list[str], corpus_fp: str, outputs: set[str],
                         cache_dir: str | Path | None) -> tuple[Encoded, dict]:
    """Corpus encodings from the cache when the same model + corpus + settings were encoded before.

    ``cache_dir=None`` uses ``~/.cache/bgeft/embeddings``; ``cache_dir=False`` disables caching.
    Returns the encodings and ``{"hit": bool, "path": str | None, "key": str}``.
    """
    if cache_dir is False or encoder.path is None:  # no cache asked, or a model object with no files
        return encoder.encode_corpus(texts, outputs), {"hit": False, "path": None, "key": None}
    key = cache_key(encoder, corpus_fp)
    entry = Path(cache_dir or default_cache_dir()) / key
    cached = load_cached(entry, outputs)
    if cached is not None and cached.n == len(texts):
        log.info("corpus encodings reused from %s", entry)
        return cached, {"hit": True, "path": str(entry), "key": key}
    enc = encoder.encode_corpus(texts, outputs)
    try:
        save_cached(entry, enc, {"model": str(encoder.path), "corpus_fingerprint": corpus_fp, **encoder.settings()})
    except (OSError, UserError) as exc:  # UserError: bgeft.io refused or could not write the entry
        why = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise UserError(f"--cache-dir {entry.parent}: cannot write the corpus encodings ({why}); choose a "
                        "writable directory or pass --no-cache") from None
    return enc, {"hit": False, "path": str(entry), "key": key}
