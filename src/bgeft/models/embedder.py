"""The one encoder every verb uses: mining, scoring, evaluation, pipelines, in-training evaluation.

::

    enc = Encoder("outputs/bge-m3_unified", device="auto")       # or bgeft:demo-model, BAAI/bge-m3,
    enc.is_m3, enc.available_modes                               # or a model object being trained
    docs = enc.encode(passages, kind="passage", outputs={"dense", "sparse", "colbert"})   # -> Encoded
    qs = enc.encode(questions, kind="query")                     # dense only
    docs.dense, docs.sparse, docs.colbert_of(0)

Rules (one copy of each):

* **M3** = the directory holds both ``colbert_linear.pt`` and ``sparse_linear.pt``; FlagEmbedding loads
  the heads only when both exist (otherwise it initialises them at random), so one head is not M3.
  M3 models load with ``BGEM3FlagModel``, others with ``FlagModel``.
* **Pooling** ``auto`` = what the model was trained with: ``1_Pooling/config.json`` (sentence-transformers
  layout, which ``bgeft train`` writes too) says mean or CLS; without one, CLS (BGE's convention).
* **Precision**: half precision on CUDA/NPU — bf16 where the device has it (CUDA compute capability
  >= 8, Ascend NPUs), fp16 otherwise (and with several devices, where FlagEmbedding's pool casts);
  fp32 on the CPU (half precision is never used on a CPU).

Each text is encoded once per ``Encoder``: inputs are deduplicated across calls (pool, positives and
queries share one cache keyed by the model input and its max length, so a query equal to a passage
is encoded once when no instruction prefixes queries). New texts are tokenized in windows, sorted by
length and cut into batches padded only to their longest member, truncated at the model's position
limit; the forward runs under ``torch.inference_mode``. On a GPU/NPU the next window is tokenized in a
background thread while this one runs (``tokenize_ahead``; off on the CPU, whose cores the model uses).
Dense vectors larger than ``spill_bytes`` go to a float16 memory-mapped file in chunks whose pages leave
the process once their window is written (``bgeft.models.pages.release``), so resident memory stays flat
as the corpus grows.
With more than one device (``--device cuda``), FlagEmbedding's one-process-per-device pool encodes.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from contextlib import closing
from pathlib import Path

import numpy as np
from scipy import sparse as sp

from bgeft.console_progress import progress as progress_bar
from bgeft.console_progress import quiet_library_bars
from bgeft.errors import UserError
from bgeft.models.choices import MODEL_CLASSES, POOLINGS
from bgeft.models.devices import parse_devices, precision
from bgeft.models.encoded import Encoded, concat_rows, lexical_to_csr
from bgeft.models.pages import release
from bgeft.models.resolve import model_dir

ALL_MODES = ("dense", "sparse", "colbert", "hybrid")
MODE_OUTPUTS = {"dense": {"dense"}, "sparse": {"sparse"}, "colbert": {"dense", "colbert"},
                "hybrid": {"dense", "sparse", "colbert"}}
WINDOW = 1024                 # texts tokenized and length-sorted together (a fast tokenizer's batch output,
                              # overflow tokens included, costs ~25 MB of peak RSS per 1,024 texts)
SPILL_MB = 256                # dense vectors above this size go to a float16 memmap (`data mine --spill-mb`)


def spill_limit(mb: float | None = None) -> int:
    """Bytes of dense vectors kept in RAM before the Encoder spills to a memmap (default 256 MB)."""
    mb = SPILL_MB if mb is None else mb
    if not (isinstance(mb, (int, float)) and mb >= 0):
        raise UserError(f"--spill-mb {mb!r}: expected megabytes (a number >= 0, e.g. 256); leave it out for 256")
    return int(mb * 2**20)


def is_m3_model(path: str | Path) -> bool:
    p = Path(path)
    return (p / "colbert_linear.pt").is_file() and (p / "sparse_linear.pt").is_file()


def detect_pooling(path: str | Path) -> str:
    cfg = Path(path) / "1_Pooling" / "config.json"
    if cfg.is_file():
        try:
            if json.loads(cfg.read_text(encoding="utf-8")).get("pooling_mode_mean_tokens"):
                return "mean"
        except (OSError, ValueError):
            pass
    return "cls"


def missing_modes_message(model, modes) -> str:
    return (f"{model}: {', '.join(modes)} scoring needs BGE-M3's sparse and ColBERT heads "
            "(colbert_linear.pt and sparse_linear.pt are not in the model directory), so this model "
            "supports only dense mode; pass --modes dense, or evaluate an M3 model (BAAI/bge-m3 or an "
            "embedder.m3 fine-tune)")


class Encoder:
    """A FlagEmbedding embedder plus the settings that decide what its vectors look like."""

    def __init__(self, model, *, device=None, batch_size: int | None = None, query_max_length: int = 64,
                 passage_max_length: int = 512, pooling: str = "auto", query_instruction: str | None = None,
                 fp16: bool | None = None, model_class: str = "auto", tokenizer=None, progress: bool = True,
                 spill_bytes: int | None = None, spill_mb: float | None = None, tokenize_ahead: bool | None = None):
        if model_class not in MODEL_CLASSES or pooling not in POOLINGS:
            raise UserError(f"--model-class must be one of {', '.join(MODEL_CLASSES)}, "
                            f"--pooling one of {', '.join(POOLINGS)}")
        if batch_size is not None and batch_size < 1:
            raise UserError(f"--batch-size {batch_size}: must be at least 1")
        self.obj = None if isinstance(model, (str, Path)) else model
        if self.obj is None:
            self.path = model_dir(model)
            self.is_m3 = is_m3_model(self.path) if model_class == "auto" else model_class == "m3"
            self.pooling = detect_pooling(self.path) if pooling == "auto" else pooling
            self.devices = parse_devices(device)
        else:
            from bgeft.models.forward import FlagBackend, TrainingBackend, model_device

            self.path = None
            query_instruction = query_instruction or getattr(model, "query_instruction_for_retrieval", None)
            if hasattr(model, "encode_corpus"):  # a FlagModel / BGEM3FlagModel already loaded
                self._backend = FlagBackend(model, hasattr(model, "compute_lexical_matching_score"))
            else:
                self._backend = TrainingBackend(model, tokenizer)
            self.is_m3 = self._backend.m3
            self.pooling = getattr(model, "sentence_pooling_method", getattr(model, "pooling_method", pooling))
            self.devices = [str(model_device(self._backend.module))]
        self.fp16, self.half_dtype = precision(self.devices, fp16, cast_here=self.obj is None)
        self.batch_size = batch_size
        self.query_max_length, self.passage_max_length = query_max_length, passage_max_length
        self.query_instruction = query_instruction
        self.query_format = getattr(model, "query_instruction_format", None) or "{}{}"
        self.available_modes = ALL_MODES if self.is_m3 else ("dense",)
        self.progress, self.spill_bytes = progress, spill_limit(spill_mb) if spill_bytes is None else spill_bytes
        self.tokenize_ahead = tokenize_ahead   # None: the next window is tokenized in a thread on GPUs/NPUs only
        self.texts_encoded = 0          # model inputs run through the network (the dedupe is tested on it)
        self._rows: dict[str, tuple[int, int, int, int]] = {}  # text -> chunk, row, tokens, limit
        self._chunks: list[Encoded] = []
        self._spill: str | None = None
        if self.obj is None:
            self._backend = None

    # ---- the model --------------------------------------------------------------------------
    @property
    def class_name(self) -> str:
        if self.obj is not None:
            return type(self.obj).__name__
        return "BGEM3FlagModel" if self.is_m3 else "FlagModel"

    def settings(self) -> dict:
        """Everything that changes passage encodings (part of the eval cache key)."""
        return {"class": self.class_name, "pooling": self.pooling, "passage_max_len": self.passage_max_length,
                "fp16": self.fp16, "half": str(self.half_dtype or ""), "normalize": True}

    def check_modes(self, modes) -> None:
        bad = [m for m in modes if m not in self.available_modes]
        if bad:
            raise UserError(missing_modes_message(self.path or self.class_name, bad))

    @property
    def backend(self):
        if self._backend is None:
            import torch

            from bgeft.models.flag_classes import flag_model_class
            from bgeft.models.forward import FlagBackend

            cls = flag_model_class(self.is_m3)
            quiet_library_bars()  # after FlagEmbedding's modules are imported
            one = len(self.devices) == 1  # one device: our loop casts; several: FlagEmbedding's pool (fp16)
            fe = cls(str(self.path), devices=self.devices, use_fp16=self.fp16 and not one,
                     pooling_method=self.pooling, normalize_embeddings=True,
                     query_instruction_for_retrieval=self.query_instruction,
                     batch_size=self.batch_size or 256, query_max_length=self.query_max_length,
                     passage_max_length=self.passage_max_length)
            if one:
                fe.model.to(self.devices[0])
                fe.model.eval()
                fe.model.to(self.half_dtype or torch.float32)
            self._backend = FlagBackend(fe, self.is_m3)
        return self._backend

    def load(self) -> Encoder:
        self.backend  # noqa: B018 - loads the weights now (timings after this are encoding only)
        return self

    @property
    def tokenizer(self):
        return self.backend.tokenizer

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def position_limit(self) -> int:
        """The most tokens the model takes (tokenizer limit, position embeddings minus RoBERTa's offset)."""
        limits = [n for n in (getattr(self.tokenizer, "model_max_length", None),) if n and n < 1_000_000]
        cfg = getattr(self.backend.module, "config", None) or getattr(getattr(self.backend.module, "model", None),
                                                                       "config", None)
        if cfg is not None and getattr(cfg, "max_position_embeddings", None):
            offset = (cfg.pad_token_id or 0) + 1 if "roberta" in (getattr(cfg, "model_type", "") or "") else 0
            limits.append(cfg.max_position_embeddings - offset)
        return min(limits) if limits else 512

    # ---- encoding ---------------------------------------------------------------------------
    def encode(self, texts: list[str], kind: str = "passage", outputs=("dense",)) -> Encoded:
        """Encodings of ``texts`` (``kind``: ``query`` adds the query instruction and its max length)."""
        outputs = set(outputs) | {"dense"}
        if {"sparse", "colbert"} & outputs and not self.is_m3:
            self.check_modes(sorted({"sparse", "colbert"} & outputs))
        max_len = min(self.query_max_length if kind == "query" else self.passage_max_length, self.position_limit())
        prefix = self.query_instruction if kind == "query" and self.query_instruction else ""
        inputs = [self.query_format.format(prefix, t) for t in texts] if prefix else list(texts)
        missing = list(dict.fromkeys(t for t in inputs if not self._cached(t, max_len, outputs)))
        if missing:
            lengths = self._add_chunk(missing, max_len, outputs, kind)
            chunk = len(self._chunks) - 1
            for row, text in enumerate(missing):
                self._rows[text] = (chunk, row, lengths[row], max_len)
        return self._gather(inputs, outputs)

    def dense(self, texts: list[str], kind: str = "passage") -> np.ndarray:
        return self.encode(texts, kind).dense

    def encode_corpus(self, texts: list[str], outputs=("dense",)) -> Encoded:
        return self.encode(texts, "passage", outputs)

    def encode_queries(self, texts: list[str], outputs=("dense",)) -> Encoded:
        return self.encode(texts, "query", outputs)

    def _cached(self, text: str, max_len: int, outputs: set[str]) -> bool:
        """Encoded before with these outputs, and the same tokens reach the model (same limit, or none cut)."""
        entry = self._rows.get(text)
        if entry is None or not outputs <= self._chunks[entry[0]].outputs:
            return False
        _, _, tokens, used = entry
        return used == max_len or (tokens < used and tokens <= max_len)

    def _gather(self, keys, outputs: set[str]) -> Encoded:
        n = len(keys)
        where = np.array([self._rows[k][:2] for k in keys], dtype=np.int64).reshape(n, 2)
        last = len(self._chunks) - 1
        if n and (where[:, 0] == last).all() and (where[:, 1] == np.arange(n)).all() and self._chunks[last].n == n:
            return self._chunks[last]  # the common case: every text new, in order
        dim = self._chunks[int(where[0, 0])].dense.shape[1] if n else 1
        out = Encoded(n, dense=np.empty((n, dim), np.float32))
        parts, order = [], []
        for c in np.unique(where[:, 0]):
            mask = where[:, 0] == c
            rows, chunk = where[mask, 1], self._chunks[int(c)]
            out.dense[mask] = chunk.dense[rows]
            if "sparse" in outputs:
                parts.append(chunk.sparse[rows])
                order.append(np.nonzero(mask)[0])
        if "sparse" in outputs:
            out.sparse = sp.vstack(parts).tocsr()[np.argsort(np.concatenate(order))] if parts else None
        if "colbert" in outputs:
            vecs = [self._chunks[c].colbert_of(r) for c, r in where]
            out.colbert, out.colbert_offsets = concat_rows(vecs, dim)
        return out

    def _add_chunk(self, texts: list[str], max_len: int, outputs: set[str], kind: str) -> list[int]:
        """Encode ``texts`` as a new chunk; returns their token counts (``max_len`` when unknown)."""
        lengths = [max_len] * len(texts)
        if self.obj is None and len(self.devices) > 1:
            self._chunks.append(self._encode_sharded(texts, max_len, outputs))
        else:
            self._chunks.append(self._encode_here(texts, max_len, outputs, kind, lengths))
        self.texts_encoded += len(texts)
        return lengths

    def _dense_store(self, n: int, dim: int) -> np.ndarray:
        if n * dim * 4 <= self.spill_bytes:
            return np.empty((n, dim), np.float32)
        if self._spill is None:
            self._spill = tempfile.mkdtemp(prefix="bgeft-embeddings-")
        path = Path(self._spill) / f"dense-{len(self._chunks)}.f16"
        return np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, dim))

    def _encode_here(self, texts: list[str], max_len: int, outputs: set[str], kind: str,
                     lengths: list[int]) -> Encoded:
        import torch

        from bgeft.models.forward import auto_batch_size, model_device, run_batch, token_windows

        backend = self.backend
        device = model_device(backend.module)
        tok = backend.tokenizer
        pad_id = tok.pad_token_id or 0
        batch = self.batch_size or auto_batch_size(device, backend.module, max_len)
        enc = Encoded(len(texts))
        sparse_rows: list[tuple[np.ndarray, sp.csr_matrix]] = []
        colbert: list[np.ndarray | None] = [None] * len(texts)
        bar = progress_bar(len(texts), "encode", f"{kind}s", enabled=self.progress, min_total=64)
        was_training = backend.module.training  # a model being trained: dropout off now, its mode back after
        backend.module.eval()
        try:
            ahead = device.type != "cpu" if self.tokenize_ahead is None else self.tokenize_ahead
            with torch.inference_mode(), closing(token_windows(tok, texts, max_len, WINDOW, ahead)) as windows:
                for w0, ids in windows:
                    lengths[w0:w0 + len(ids)] = [len(x) for x in ids]
                    order = np.argsort([-len(x) for x in ids], kind="stable")
                    start = 0
                    while start < len(order):
                        idx = order[start:start + batch]
                        try:
                            out, mask = run_batch(backend, [ids[i] for i in idx], pad_id, device, outputs)
                        except torch.cuda.OutOfMemoryError:
                            if batch == 1:
                                raise
                            batch = max(1, batch // 2)
                            torch.cuda.empty_cache()
                            continue
                        dense = out["dense"].float().cpu().numpy()
                        if enc.dense is None:
                            enc.dense = self._dense_store(len(texts), dense.shape[1])
                        enc.dense[w0 + idx] = dense
                        if out.get("sparse") is not None and "sparse" in outputs:
                            sparse_rows.append((w0 + idx, sp.csr_matrix(out["sparse"].float().cpu().numpy())))
                        if out.get("colbert") is not None and "colbert" in outputs:
                            vecs, lens = out["colbert"].float().cpu().numpy(), mask.sum(1).cpu().numpy() - 1
                            for j, i in enumerate(idx):
                                colbert[w0 + i] = vecs[j, :lens[j]]
                        bar.update(len(idx))
                        start += len(idx)
                    release(enc.dense, w0, w0 + len(ids))  # a spilled window's pages leave RSS
        finally:
            backend.module.train(was_training)
            bar.close()
        if isinstance(enc.dense, np.memmap):
            enc.dense.flush()
        if "sparse" in outputs:
            rows = np.concatenate([r for r, _ in sparse_rows]) if sparse_rows else np.zeros(0, np.int64)
            mat = sp.vstack([m for _, m in sparse_rows]).tocsr() if sparse_rows else sp.csr_matrix((0, self.vocab_size))
            enc.sparse = mat[np.argsort(rows)]
        if "colbert" in outputs:
            enc.colbert, enc.colbert_offsets = concat_rows(colbert, enc.dense.shape[1] if enc.dense is not None else 1)
        return enc

    def _encode_sharded(self, texts: list[str], max_len: int, outputs: set[str]) -> Encoded:
        """One process per device through FlagEmbedding's multi-process pool."""
        fe = self.backend.fe
        batch = self.batch_size or 256
        if not self.is_m3:
            vecs = fe.encode(texts, batch_size=batch, max_length=max_len)
            return Encoded(len(texts), dense=np.asarray(vecs, np.float32).reshape(len(texts), -1))
        out = fe.encode(texts, batch_size=batch, max_length=max_len, return_dense=True,
                        return_sparse="sparse" in outputs, return_colbert_vecs="colbert" in outputs)
        enc = Encoded(len(texts), dense=np.asarray(out["dense_vecs"], np.float32).reshape(len(texts), -1))
        if "sparse" in outputs:
            enc.sparse = lexical_to_csr(out["lexical_weights"], self.vocab_size)
        if "colbert" in outputs:
            enc.colbert, enc.colbert_offsets = concat_rows([np.asarray(v, np.float32) for v in out["colbert_vecs"]],
                                                       enc.dense.shape[1])
        return enc

    def clear_cache(self) -> None:
        """Forget every encoding of this run (benchmarks time real encodes with it)."""
        self._rows.clear()
        self._chunks.clear()

    def close(self) -> None:
        if self._backend is not None and hasattr(self._backend, "fe"):
            self._backend.fe.stop_self_pool()
        if self._spill:
            shutil.rmtree(self._spill, ignore_errors=True)
            self._spill = None

    def __del__(self):
        if getattr(self, "_spill", None):
            shutil.rmtree(self._spill, ignore_errors=True)
