"""Encoding and search for hard-negative mining: FlagEmbedding dense encoders, faiss indexes, BM25.

* ``DenseEncoder(model, model_class="auto", pooling="auto", ...)`` wraps FlagEmbedding's
  ``BGEM3FlagModel`` (M3 checkpoints: the model directory holds ``colbert_linear.pt`` or
  ``sparse_linear.pt``; dense vectors only) or ``FlagModel`` (any other BERT-like embedder; pooling
  read from a sentence-transformers ``1_Pooling/config.json`` when present, else CLS).
  ``encode(texts, kind)`` -> float32 ``(n, d)`` array (FlagEmbedding's progress bar).
* ``build_index(vectors, kind="flat"|"ivf"|"hnsw", gpu="auto")`` -> faiss inner-product index
  (exact Flat by default; on a GPU when faiss was built with GPU support and one is visible).
* ``search(index, queries, k)`` -> ``(scores, ids)`` in batches with a tqdm bar.
* ``BM25Index(texts)`` -> ``.search(queries, k)`` with bm25s over jieba tokens (Chinese and English).
"""
from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import UserError

MODEL_CLASSES = ("auto", "m3", "base")
POOLINGS = ("auto", "cls", "mean")
INDEX_KINDS = ("flat", "ivf", "hnsw")


def is_m3_model(path: str | Path) -> bool:
    path = Path(path)
    return (path / "colbert_linear.pt").is_file() or (path / "sparse_linear.pt").is_file()


def detect_pooling(path: str | Path) -> str:
    cfg = Path(path) / "1_Pooling" / "config.json"
    if cfg.is_file():
        try:
            if json.loads(cfg.read_text(encoding="utf-8")).get("pooling_mode_mean_tokens"):
                return "mean"
        except (OSError, ValueError):
            pass
    return "cls"


def check_model_dir(model: str | Path, flag: str = "--model") -> Path:
    path = Path(model)
    if not (path / "config.json").is_file():
        raise UserError(f"{flag} {model}: no config.json there; give a local model directory "
                        "(a BGE checkpoint or `bgeft demo-model DEST`)")
    return path


class DenseEncoder:
    """Dense vectors from a FlagEmbedding inference class (see module docstring)."""

    def __init__(self, model: str | Path, *, model_class: str = "auto", pooling: str = "auto",
                 devices=None, use_fp16: bool = True, batch_size: int = 256, query_max_length: int = 64,
                 passage_max_length: int = 512, query_instruction: str | None = None):
        path = check_model_dir(model)
        if model_class not in MODEL_CLASSES or pooling not in POOLINGS:
            raise UserError(f"--model-class must be one of {MODEL_CLASSES}, --pooling one of {POOLINGS}")
        self.m3 = is_m3_model(path) if model_class == "auto" else model_class == "m3"
        self.pooling = detect_pooling(path) if pooling == "auto" else pooling
        self.batch_size = batch_size
        common = dict(use_fp16=use_fp16, devices=devices, batch_size=batch_size,
                      query_max_length=query_max_length, passage_max_length=passage_max_length,
                      query_instruction_for_retrieval=query_instruction, pooling_method=self.pooling)
        if self.m3:
            from FlagEmbedding import BGEM3FlagModel

            self.model = BGEM3FlagModel(str(path), **common)
        else:
            from FlagEmbedding import FlagModel

            self.model = FlagModel(str(path), **common)

    def encode(self, texts: list[str], kind: str = "passage", desc: str | None = None) -> np.ndarray:
        """One FlagEmbedding call for all ``texts`` (its own "Inference Embeddings" bar shows progress):
        each call sorts by length and runs a batch-size probe, so chunking would cost extra passes."""
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        if len(texts) >= self.batch_size:
            tqdm.write(f"{desc or 'encode ' + kind + 's'}: {len(texts)} texts", file=sys.stderr)
        fn = self.model.encode_queries if kind == "query" else self.model.encode_corpus
        out = fn(texts, batch_size=self.batch_size)
        if isinstance(out, dict):  # BGEM3FlagModel returns {"dense_vecs": ...}
            out = out["dense_vecs"]
        return np.asarray(out, dtype=np.float32).reshape(len(texts), -1)

    def close(self) -> None:
        self.model.stop_self_pool()


def _faiss():
    try:
        import faiss
    except ImportError:
        raise UserError("mining needs faiss: pip install faiss-cpu (or faiss-gpu-cu12 on CUDA machines)") from None
    return faiss


def gpu_available() -> bool:
    faiss = _faiss()
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def build_index(vectors: np.ndarray, kind: str = "flat", gpu: str = "auto", nprobe: int = 32):
    """An inner-product faiss index over ``vectors`` (normalised vectors: cosine similarity)."""
    faiss = _faiss()
    if kind not in INDEX_KINDS:
        raise UserError(f"--index {kind}: choose one of {', '.join(INDEX_KINDS)}")
    n, dim = vectors.shape
    if kind == "ivf" and n >= 156:  # faiss wants ~39 points per centroid to train
        nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.nprobe = min(nprobe, nlist)
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
    index.add(vectors)
    return index


def search(index, queries: np.ndarray, k: int, batch_size: int = 256,
           desc: str = "search") -> tuple[np.ndarray, np.ndarray]:
    k = min(k, index.ntotal)
    scores, ids = [], []
    for start in tqdm(range(0, len(queries), batch_size), desc=desc, unit="batch", disable=len(queries) <= batch_size):
        s, i = index.search(np.ascontiguousarray(queries[start:start + batch_size]), k)
        scores.append(s)
        ids.append(i)
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
        bar = tqdm(texts, desc="bm25 index", disable=len(texts) < 1000)
        self.retriever.index([bm25_tokens(t) or ["<empty>"] for t in bar], show_progress=False)

    def search(self, queries: list[str], k: int) -> list[list[int]]:
        k = min(k, self.n)
        tokens = [bm25_tokens(q) or ["<empty>"] for q in queries]
        ids, scores = self.retriever.retrieve(tokens, k=k, show_progress=len(queries) > 1000)
        return [[int(i) for i, s in zip(row_ids, row_scores) if s > 0] for row_ids, row_scores in zip(ids, scores)]
