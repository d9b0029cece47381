"""Evaluate the model being trained, in memory, with bgeft's evaluator (the worker side of ``eval:``).

``InTrainingEvaluator(runner, cfg)`` wraps the FlagEmbedding runner's live model in FlagEmbedding's
own inference classes (``FlagModel`` / ``BGEM3FlagModel`` / ``FlagReranker``) without reading
anything from disk, and scores it with the functions ``bgeft eval`` uses (``search.retrieve`` +
``metrics.evaluate_run``; ``rerank.bm25_candidates`` + ``rerank.rerank_run`` for rerankers).

* encoded by bgeft's one ``Encoder`` (eval mode and inference mode while encoding, train mode restored after);
  the training precision through autocast (bf16/fp16 on an accelerator, fp32 on the CPU);
* several processes: every rank encodes its slice of the corpus (or of the reranker pairs), the
  slices are gathered on rank 0, rank 0 computes the metrics and broadcasts them, so every rank
  returns the same numbers and the Trainer's decisions (best checkpoint, early stop) agree.
"""
from __future__ import annotations

import contextlib
import time

import numpy as np
from scipy import sparse as sp

from bgeft.config.eval_section import load_dev_set
from bgeft.eval.metrics import evaluate_run
from bgeft.eval.retrieval import DEFAULT_WEIGHTS, parse_weights
from bgeft.models.embedder import MODE_OUTPUTS, Encoded, Encoder

RERANK_TOP = 100


def _dist():
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist, dist.get_rank(), dist.get_world_size()
    return None, 0, 1


def merge_encoded(parts: list[Encoded]) -> Encoded:
    """Concatenate the encodings of consecutive slices of one text list."""
    parts = [p for p in parts if p is not None and p.n]
    out = Encoded(sum(p.n for p in parts))
    if not parts:
        return out
    if parts[0].dense is not None:
        out.dense = np.concatenate([p.dense for p in parts])
    if parts[0].sparse is not None:
        out.sparse = sp.vstack([p.sparse for p in parts]).tocsr()
    if parts[0].colbert is not None:
        out.colbert = np.concatenate([p.colbert for p in parts])
        sizes = np.concatenate([np.diff(p.colbert_offsets) for p in parts])
        out.colbert_offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return out


def _flag_object(cls, tokenizer, device: str, batch_size: int, **settings):
    """An instance of FlagEmbedding's inference ``cls`` holding no model yet (nothing read from disk)."""
    from FlagEmbedding.abc.inference import AbsEmbedder, AbsReranker

    obj = cls.__new__(cls)
    base = AbsReranker if issubclass(cls, AbsReranker) else AbsEmbedder
    base.__init__(obj, "<model being trained>", use_fp16=False, devices=[device], batch_size=batch_size, **settings)
    obj.tokenizer = tokenizer
    return obj


class InTrainingEvaluator:
    def __init__(self, runner, cfg: dict, task: str):
        self.runner, self.cfg, self.task = runner, cfg, task
        self.reranker = task.startswith("reranker")
        self.data = load_dev_set(cfg)
        self.ks = cfg.get("ks", [1, 5, 10, 20, 100])
        self.mode = cfg.get("mode", "dense")
        self.candidates = None
        if self.reranker:
            from bgeft.eval.rerank import bm25_candidates

            self.top = int(cfg.get("rerank_top", RERANK_TOP))
            self.candidates = bm25_candidates(self.data, self.top)

    # -- building FlagEmbedding inference objects around the live model ----------------------------
    def _device(self) -> str:
        return str(self.runner.training_args.device)

    def _flag_model(self):
        from FlagEmbedding import BGEM3FlagModel, FlagModel, FlagReranker

        from ..console_progress import quiet_library_bars

        quiet_library_bars()   # train.log gets lines, not FlagEmbedding's bar frames
        args, data_args, live = self.runner.training_args, self.runner.data_args, self.runner.model
        bs = self.cfg["batch_size"]
        if self.reranker:
            obj = _flag_object(FlagReranker, self.runner.tokenizer, self._device(), bs,
                               max_length=data_args.max_len, query_max_length=data_args.query_max_len)
            obj.model = live.model
            return obj
        common = dict(query_instruction_for_retrieval=data_args.query_instruction_for_retrieval,
                      query_instruction_format=data_args.query_instruction_format,
                      query_max_length=data_args.query_max_len, passage_max_length=data_args.passage_max_len,
                      normalize_embeddings=True)
        pooling = getattr(args, "sentence_pooling_method", "cls")
        if self.task == "embedder.m3":
            from FlagEmbedding.finetune.embedder.encoder_only.m3 import EncoderOnlyEmbedderM3ModelForInference

            obj = _flag_object(BGEM3FlagModel, self.runner.tokenizer, self._device(), bs, **common)
            heads = {"model": live.model, "colbert_linear": live.colbert_linear, "sparse_linear": live.sparse_linear}
            obj.model = EncoderOnlyEmbedderM3ModelForInference(heads, tokenizer=self.runner.tokenizer,
                                                               sentence_pooling_method=pooling,
                                                               normalize_embeddings=True)
        else:
            obj = _flag_object(FlagModel, self.runner.tokenizer, self._device(), bs, **common)
            obj.model = live.model
        obj.pooling_method = pooling
        return obj

    def _autocast(self):
        import torch

        args = self.runner.training_args
        kind = args.device.type
        if kind != "cpu" and (args.bf16 or args.fp16):
            return torch.autocast(device_type=kind, dtype=torch.bfloat16 if args.bf16 else torch.float16)
        return contextlib.nullcontext()

    # -- one evaluation --------------------------------------------------------------------------
    def evaluate(self) -> tuple[dict, dict]:
        """Metrics ``{name: value}`` (the same on every rank) and timings. All ranks must call it."""
        dist, rank, world = _dist()
        live = self.runner.model
        was_training = live.training
        flag = self._flag_model()
        timing: dict[str, float] = {}
        try:
            with self._autocast():
                metrics = self._rerank(flag, rank, world, timing) if self.reranker else \
                    self._retrieve(flag, rank, world, timing)
        finally:
            flag.model = None  # FlagEmbedding's __del__ would move the model to the CPU
            live.train(was_training)
        if dist is not None and world > 1:
            box = [metrics]
            dist.broadcast_object_list(box, src=0)
            metrics = box[0]
        return metrics, timing

    def _gather(self, part, rank: int, world: int):
        dist, _, _ = _dist()
        if dist is None or world == 1:
            return [part]
        parts = [None] * world if rank == 0 else None
        dist.gather_object(part, parts, dst=0)
        return parts

    def _retrieve(self, flag, rank: int, world: int, timing: dict) -> dict | None:
        from bgeft.eval.search import retrieve

        encoder = Encoder(flag, batch_size=self.cfg["batch_size"], query_max_length=flag.query_max_length,
                          passage_max_length=flag.passage_max_length, progress=False)  # a fresh one per evaluation
        outputs = set(MODE_OUTPUTS[self.mode])
        texts = self.data.doc_texts()
        lo, hi = rank * len(texts) // world, (rank + 1) * len(texts) // world
        t0 = time.perf_counter()
        part = encoder.encode_corpus(texts[lo:hi], outputs) if hi > lo else None
        parts = self._gather(part, rank, world)
        timing["encode_corpus_s"] = time.perf_counter() - t0
        if rank != 0:
            return None
        docs = merge_encoded(parts)
        qids = self.data.eval_qids
        t1 = time.perf_counter()
        queries = encoder.encode_queries([self.data.queries[q] for q in qids], outputs)
        depth = max(100, self.ks[-1])
        runs = retrieve(docs, queries, self.data.doc_ids, qids, [self.mode], parse_weights(DEFAULT_WEIGHTS),
                        depth=depth, candidates=100, gpu=self._device().startswith("cuda"), progress=False)
        timing["queries_and_search_s"] = time.perf_counter() - t1
        return _clean(evaluate_run(runs[self.mode], self.data.qrels, self.ks)["metrics"])

    def _rerank(self, flag, rank: int, world: int, timing: dict) -> dict | None:
        from bgeft.eval.rerank import rerank_run

        evaluator = self

        class _Sharded:  # rerank_run's reranker: scores its slice of the pairs, rank 0 gets them all
            def score(self, pairs):
                lo, hi = rank * len(pairs) // world, (rank + 1) * len(pairs) // world
                mine = flag.compute_score([list(p) for p in pairs[lo:hi]], batch_size=evaluator.cfg["batch_size"],
                                          max_length=flag.max_length) if hi > lo else []
                mine = [float(s) for s in (mine if isinstance(mine, list) else [mine])]
                return [s for part in evaluator._gather(mine, rank, world) or [] for s in part]

        t0 = time.perf_counter()
        run = rerank_run(_Sharded(), self.data, self.candidates, self.top)
        timing["rerank_s"] = time.perf_counter() - t0
        if rank != 0:
            return None
        return _clean(evaluate_run(run, self.data.qrels, self.ks, reranker=True)["metrics"])


def _clean(metrics: dict) -> dict:
    return {k: round(float(v), 6) for k, v in metrics.items() if k != "n_queries"}
