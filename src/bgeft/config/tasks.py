"""Task name -> the FlagEmbedding finetune module and its three argument dataclasses.

Nothing here imports FlagEmbedding at module load: ``Task.dataclasses()`` imports them on demand,
so ``bgeft ls`` / ``validate`` stay torch-free (validation uses the field snapshot in schema.py).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

FE = "FlagEmbedding.finetune"


@dataclass(frozen=True)
class Task:
    name: str
    module: str            # run as ``python -m <module>``
    model_args: str        # "module:Class" of each argument dataclass, never re-declared here
    data_args: str
    training_args: str
    runner: str
    kind: str              # "embedder" | "reranker"

    def dataclasses(self) -> tuple[type, type, type]:
        return tuple(_load(ref) for ref in (self.model_args, self.data_args, self.training_args))

    def runner_class(self) -> type:
        return _load(self.runner)

    @property
    def is_reranker(self) -> bool:
        return self.kind == "reranker"


def _load(ref: str):
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


_RR_ABS = "FlagEmbedding.abc.finetune.reranker"

TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("embedder.m3", f"{FE}.embedder.encoder_only.m3",
             f"{FE}.embedder.encoder_only.m3:EncoderOnlyEmbedderM3ModelArguments",
             f"{FE}.embedder.encoder_only.m3:EncoderOnlyEmbedderM3DataArguments",
             f"{FE}.embedder.encoder_only.m3:EncoderOnlyEmbedderM3TrainingArguments",
             f"{FE}.embedder.encoder_only.m3:EncoderOnlyEmbedderM3Runner",
             "embedder"),
        Task("embedder.base", f"{FE}.embedder.encoder_only.base",
             f"{FE}.embedder.encoder_only.base:EncoderOnlyEmbedderModelArguments",
             f"{FE}.embedder.encoder_only.base:EncoderOnlyEmbedderDataArguments",
             f"{FE}.embedder.encoder_only.base:EncoderOnlyEmbedderTrainingArguments",
             f"{FE}.embedder.encoder_only.base:EncoderOnlyEmbedderRunner",
             "embedder"),
        Task("embedder.decoder", f"{FE}.embedder.decoder_only.base",
             f"{FE}.embedder.decoder_only.base:DecoderOnlyEmbedderModelArguments",
             f"{FE}.embedder.decoder_only.base:DecoderOnlyEmbedderDataArguments",
             f"{FE}.embedder.decoder_only.base:DecoderOnlyEmbedderTrainingArguments",
             f"{FE}.embedder.decoder_only.base:DecoderOnlyEmbedderRunner",
             "embedder"),
        Task("embedder.decoder_icl", f"{FE}.embedder.decoder_only.icl",
             f"{FE}.embedder.decoder_only.icl:DecoderOnlyEmbedderICLModelArguments",
             f"{FE}.embedder.decoder_only.icl:DecoderOnlyEmbedderICLDataArguments",
             f"{FE}.embedder.decoder_only.icl:DecoderOnlyEmbedderICLTrainingArguments",
             f"{FE}.embedder.decoder_only.icl:DecoderOnlyEmbedderICLRunner",
             "embedder"),
        Task("reranker.base", f"{FE}.reranker.encoder_only.base",
             f"{_RR_ABS}:AbsRerankerModelArguments",
             f"{_RR_ABS}:AbsRerankerDataArguments",
             f"{_RR_ABS}:AbsRerankerTrainingArguments",
             f"{FE}.reranker.encoder_only.base:EncoderOnlyRerankerRunner",
             "reranker"),
        Task("reranker.decoder", f"{FE}.reranker.decoder_only.base",
             f"{FE}.reranker.decoder_only.base:RerankerModelArguments",
             f"{_RR_ABS}:AbsRerankerDataArguments",
             f"{_RR_ABS}:AbsRerankerTrainingArguments",
             f"{FE}.reranker.decoder_only.base:DecoderOnlyRerankerRunner",
             "reranker"),
        Task("reranker.layerwise", f"{FE}.reranker.decoder_only.layerwise",
             f"{FE}.reranker.decoder_only.layerwise:RerankerModelArguments",
             f"{_RR_ABS}:AbsRerankerDataArguments",
             f"{_RR_ABS}:AbsRerankerTrainingArguments",
             f"{FE}.reranker.decoder_only.layerwise:DecoderOnlyRerankerRunner",
             "reranker"),
    )
}

