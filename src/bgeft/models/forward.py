"""One padded batch through a FlagEmbedding model: dense vectors, sparse weights, ColBERT vectors.

The models and their heads are FlagEmbedding's own; this module only calls them:

* ``FlagModel`` (any BERT-like embedder): its transformer, then its ``pooling`` (cls / mean);
* ``BGEM3FlagModel``: its ``EncoderOnlyEmbedderM3ModelForInference`` with ``return_sparse_embedding``
  (the vocabulary-sized lexical weights, special tokens already zeroed) and ColBERT vectors;
* a model being trained (FlagEmbedding's ``AbsEmbedderModel``, what in-training evaluation holds):
  its ``encode`` (dense), or for an M3 model the same inference forward as above, run on it.

``forward(inputs, outputs)`` returns ``{"dense": (B, d), "sparse": (B, V) | None,
"colbert": (B, L-1, d) | None}`` tensors; dense and ColBERT vectors are L2-normalised.
"""
from __future__ import annotations

import torch


class FlagBackend:
    """A loaded FlagEmbedding inference object (``FlagModel`` or ``BGEM3FlagModel``)."""

    def __init__(self, fe, m3: bool):
        self.fe, self.m3 = fe, m3
        self.tokenizer = fe.tokenizer
        self.module = fe.model

    def forward(self, inputs: dict, outputs: set[str]) -> dict:
        if self.m3:
            out = self.module(inputs, return_dense=True, return_sparse="sparse" in outputs,
                              return_colbert_vecs="colbert" in outputs, return_sparse_embedding=True)
            return {"dense": out["dense_vecs"], "sparse": out.get("sparse_vecs"), "colbert": out.get("colbert_vecs")}
        hidden = self.module(**inputs, return_dict=True).last_hidden_state
        dense = self.fe.pooling(hidden, inputs["attention_mask"])
        if self.fe.normalize_embeddings:
            dense = torch.nn.functional.normalize(dense, dim=-1)
        return {"dense": dense, "sparse": None, "colbert": None}


class TrainingBackend:
    """A FlagEmbedding training model already in memory (``AbsEmbedderModel``)."""

    def __init__(self, model, tokenizer=None):
        self.model = model
        self.tokenizer = tokenizer or getattr(model, "tokenizer", None)
        if self.tokenizer is None:
            raise TypeError("Encoder(model object): the model has no .tokenizer; pass tokenizer=")
        self.m3 = hasattr(model, "colbert_linear") and hasattr(model, "sparse_linear")
        self.module = model

    def forward(self, inputs: dict, outputs: set[str]) -> dict:
        """Called in eval mode (``Encoder`` switches the model and restores its mode afterwards)."""
        if not self.m3:
            dense = self.model.encode(inputs)
            dense = dense[-1] if isinstance(dense, list) else dense  # MRL: the full dimension
            return {"dense": torch.nn.functional.normalize(dense, dim=-1), "sparse": None, "colbert": None}
        from FlagEmbedding.finetune.embedder.encoder_only.m3.modeling import EncoderOnlyEmbedderM3ModelForInference

        out = EncoderOnlyEmbedderM3ModelForInference.forward(  # sets .training = False: the Encoder restores it
            self.model, inputs, return_dense=True, return_sparse="sparse" in outputs,
            return_colbert_vecs="colbert" in outputs, return_sparse_embedding=True)
        dense = torch.nn.functional.normalize(out["dense_vecs"], dim=-1)
        colbert = out.get("colbert_vecs")
        if colbert is not None:
            colbert = torch.nn.functional.normalize(colbert, dim=-1)
        return {"dense": dense, "sparse": out.get("sparse_vecs"), "colbert": colbert}


def model_device(module) -> torch.device:
    try:
        return next(module.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")
