"""The one cross-encoder loader: FlagEmbedding's ``FlagReranker`` on the chosen device.

Used by ``bgeft data score`` (teacher scores for distillation) and ``bgeft eval reranker|pipeline``.
Scores are the raw, un-normalised logits (``normalize=False``: what FlagEmbedding's distillation loss
expects, and what ranking needs). On one accelerator the weights are cast to the half type it computes in
(bf16 on CUDA compute capability >= 8 and on Ascend NPUs that have it, fp16 otherwise: ``devices.half_dtype``);
with several devices FlagEmbedding's pool keeps its own fp16; fp32 on the CPU or with ``fp16=False``.
"""
from __future__ import annotations

import json

from bgeft.models.devices import parse_devices, precision
from bgeft.models.resolve import model_dir, model_fingerprint


class Reranker:
    def __init__(self, model, *, device=None, batch_size: int = 32, max_length: int = 512,
                 query_max_length: int | None = None, fp16: bool | None = None, query_instruction: str | None = None,
                 flag: str = "--reranker"):
        self.path = model_dir(model, flag)
        self.devices = parse_devices(device)
        self.fp16, self.half_dtype = precision(self.devices, fp16)
        self.batch_size, self.max_length, self.query_max_length = batch_size, max_length, query_max_length
        self.query_instruction = query_instruction
        cfg = json.loads((self.path / "config.json").read_text(encoding="utf-8"))
        self.trained_head = any(a.endswith("ForSequenceClassification") for a in cfg.get("architectures") or [])
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from FlagEmbedding import FlagReranker

            from bgeft.console import note
            from bgeft.console_progress import quiet_library_bars

            quiet_library_bars()
            if not self.trained_head:   # said once, before transformers' load report (which goes to the log)
                note("reranker-head", subject=str(self.path))
            # one device: bgeft casts to the device's half type (FlagEmbedding's use_fp16 would force fp16)
            self._model = FlagReranker(str(self.path), devices=self.devices,
                                       use_fp16=self.fp16 and self.half_dtype is None,
                                       batch_size=self.batch_size, max_length=self.max_length,
                                       query_max_length=self.query_max_length,
                                       query_instruction_for_rerank=self.query_instruction, normalize=False)
            if self.half_dtype is not None:
                self._model.model.to(self.half_dtype)
        return self._model

    def score(self, pairs) -> list[float]:
        """Raw scores of ``(query, passage)`` pairs, in order."""
        if not pairs:
            return []
        scores = self.model.compute_score([list(p) for p in pairs], batch_size=self.batch_size,
                                          max_length=self.max_length, normalize=False)
        return [float(s) for s in (scores if isinstance(scores, list) else [scores])]

    def info(self) -> dict:
        return {"path": str(self.path), "class": "FlagReranker", "fingerprint": model_fingerprint(self.path),
                "devices": self.devices, "fp16": self.fp16,
                "half": str(self.half_dtype or ""), "max_length": self.max_length,
                "classifier_head_trained": self.trained_head}

    def close(self) -> None:
        if self._model is not None:
            self._model.stop_self_pool()
