"""Load an embedder through FlagEmbedding and encode texts in one pass for every scoring mode.

* An **M3 model** (a directory holding ``colbert_linear.pt`` and ``sparse_linear.pt``, as BGE-M3
  and every ``embedder.m3`` fine-tune has) is loaded with ``BGEM3FlagModel``; one forward pass
  returns dense vectors, lexical (sparse) weights and ColBERT vectors.
* Any other model is loaded with ``FlagModel``: dense vectors only.

Python API::

    enc = Encoder("outputs/bge-m3_unified", devices=["cpu"])
    enc.is_m3, enc.available_modes            # True, ("dense", "sparse", "colbert", "hybrid")
    docs = enc.encode(texts, outputs={"dense", "sparse", "colbert"})   # -> Encoded
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse as sp

from ..errors import UserError
from .devices import half_precision_default, pick_devices

ALL_MODES = ("dense", "sparse", "colbert", "hybrid")
MODE_OUTPUTS = {"dense": {"dense"}, "sparse": {"sparse"}, "colbert": {"dense", "colbert"},
                "hybrid": {"dense", "sparse", "colbert"}}
log = logging.getLogger(__name__)


@dataclass
class Encoded:
    """Encodings of n texts. ``colbert`` rows of text i are ``colbert[offsets[i]:offsets[i+1]]``."""

    n: int
    dense: np.ndarray | None = None
    sparse: sp.csr_matrix | None = None
    colbert: np.ndarray | None = None
    colbert_offsets: np.ndarray | None = None

    @property
    def outputs(self) -> set[str]:
        return {name for name in ("dense", "sparse", "colbert") if getattr(self, name) is not None}

    def colbert_of(self, i: int) -> np.ndarray:
        return self.colbert[self.colbert_offsets[i]:self.colbert_offsets[i + 1]]


def is_m3_model(path: str | Path) -> bool:
    p = Path(path)
    return (p / "colbert_linear.pt").is_file() and (p / "sparse_linear.pt").is_file()


def resolve_model(model: str | Path) -> Path:
    """A local model directory, or a Hub id resolved through the local Hugging Face cache / download."""
    p = Path(model).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise UserError(f"{p}: no config.json; pass a model directory saved by save_pretrained / FlagEmbedding")
        return p.resolve()
    if p.exists():
        raise UserError(f"{p}: is a file; pass the model directory (config.json, weights, tokenizer)")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(model), ignore_patterns=["*.msgpack", "*.h5", "*.ot", "onnx/*"]))
    except Exception as exc:  # offline, unknown repo, no permission
        raise UserError(f"{model}: no such model directory, and it could not be fetched from the Hugging Face Hub "
                        f"({type(exc).__name__}); pass a local model directory") from None


def model_fingerprint(path: Path) -> str:
    """Path + name/size/mtime of every top-level file (weights, heads, tokenizer, config)."""
    h = hashlib.sha256(str(path.resolve()).encode())
    for f in sorted(path.iterdir()):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()


def missing_modes_message(model: Path, modes) -> str:
    return (f"{model}: {', '.join(modes)} scoring needs BGE-M3's sparse and ColBERT heads "
            "(colbert_linear.pt and sparse_linear.pt are not in the model directory), so this model "
            "supports only dense mode; pass --modes dense, or evaluate an M3 model (BAAI/bge-m3 or an "
            "embedder.m3 fine-tune)")


class Encoder:
    """A FlagEmbedding embedder plus the settings that decide what its vectors look like."""

    def __init__(self, model: str | Path, devices: list[str] | str | None = None, batch_size: int = 64,
                 query_max_len: int = 64, passage_max_len: int = 512, pooling: str = "cls",
                 query_instruction: str | None = None, fp16: bool | None = None):
        self.path = resolve_model(model)
        self.devices = devices if isinstance(devices, list) else pick_devices(devices)
        self.fp16 = half_precision_default(self.devices) if fp16 is None else fp16
        self.batch_size, self.pooling = batch_size, pooling
        self.query_max_len, self.passage_max_len = query_max_len, passage_max_len
        self.query_instruction = query_instruction
        self.is_m3 = is_m3_model(self.path)
        self.available_modes = ALL_MODES if self.is_m3 else ("dense",)
        self.corpus_encode_calls = 0
        self._model = None

    @property
    def class_name(self) -> str:
        return "BGEM3FlagModel" if self.is_m3 else "FlagModel"

    def settings(self) -> dict:
        """Everything that changes passage encodings (part of the cache key)."""
        return {"class": self.class_name, "pooling": self.pooling, "passage_max_len": self.passage_max_len,
                "fp16": self.fp16, "normalize": True}

    def check_modes(self, modes) -> None:
        bad = [m for m in modes if m not in self.available_modes]
        if bad:
            raise UserError(missing_modes_message(self.path, bad))

    @property
    def model(self):
        if self._model is None:
            from FlagEmbedding import BGEM3FlagModel, FlagModel

            cls = BGEM3FlagModel if self.is_m3 else FlagModel
            self._model = cls(str(self.path), devices=self.devices, use_fp16=self.fp16,
                              pooling_method=self.pooling, normalize_embeddings=True,
                              query_instruction_for_retrieval=self.query_instruction,
                              batch_size=self.batch_size, query_max_length=self.query_max_len,
                              passage_max_length=self.passage_max_len)
        return self._model

    @property
    def vocab_size(self) -> int:
        return len(self.model.tokenizer)

    def encode_corpus(self, texts: list[str], outputs: set[str]) -> Encoded:
        self.corpus_encode_calls += 1
        return self._encode(texts, outputs, query=False)

    def encode_queries(self, texts: list[str], outputs: set[str]) -> Encoded:
        return self._encode(texts, outputs, query=True)

    def _encode(self, texts: list[str], outputs: set[str], query: bool) -> Encoded:
        fn = self.model.encode_queries if query else self.model.encode_corpus
        max_len = self.query_max_len if query else self.passage_max_len
        if not self.is_m3:
            vecs = fn(texts, batch_size=self.batch_size, max_length=max_len)
            return Encoded(len(texts), dense=np.asarray(vecs, dtype=np.float32).reshape(len(texts), -1))
        out = fn(texts, batch_size=self.batch_size, max_length=max_len, return_dense=True,
                 return_sparse="sparse" in outputs, return_colbert_vecs="colbert" in outputs)
        enc = Encoded(len(texts), dense=np.asarray(out["dense_vecs"], dtype=np.float32).reshape(len(texts), -1))
        if "sparse" in outputs:
            enc.sparse = lexical_to_csr(out["lexical_weights"], self.vocab_size)
        if "colbert" in outputs:
            vecs = [np.asarray(v, dtype=np.float32) for v in out["colbert_vecs"]]
            enc.colbert_offsets = np.concatenate([[0], np.cumsum([len(v) for v in vecs])]).astype(np.int64)
            enc.colbert = np.concatenate(vecs, axis=0) if vecs else np.zeros((0, 1), np.float32)
        return enc


def lexical_to_csr(weights: list[dict], vocab_size: int) -> sp.csr_matrix:
    """FlagEmbedding lexical weights ([{token_id_str: weight}]) -> an n x vocab CSR matrix."""
    indptr, indices, data = [0], [], []
    for row in weights:
        for tok, w in row.items():
            indices.append(int(tok))
            data.append(float(w))
        indptr.append(len(indices))
    return sp.csr_matrix((np.asarray(data, np.float32), np.asarray(indices, np.int64), np.asarray(indptr, np.int64)),
                         shape=(len(weights), vocab_size))


# ---- on-disk cache of corpus encodings --------------------------------------------------------

def cache_key(encoder: Encoder, corpus_fp: str) -> str:
    blob = json.dumps({"model": model_fingerprint(encoder.path), "corpus": corpus_fp, **encoder.settings()}, sort_keys=True)
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
        enc.dense = np.load(entry / "dense.npy")
    if "sparse" in meta["outputs"]:
        enc.sparse = sp.load_npz(entry / "sparse.npz").tocsr()
    if "colbert" in meta["outputs"]:
        enc.colbert = np.load(entry / "colbert.npy")
        enc.colbert_offsets = np.load(entry / "colbert_offsets.npy")
    return enc


def save_cached(entry: Path, enc: Encoded, info: dict) -> None:
    """Write into a sibling temp dir, then swap it in: a crash never leaves a half entry."""
    from ..io import atomic_dir

    with atomic_dir(entry, replace=True) as tmp:
        if enc.dense is not None:
            np.save(tmp / "dense.npy", enc.dense)
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
    if cache_dir is False:
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
