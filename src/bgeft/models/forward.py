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


CPU_BATCH = 32


def run_batch(backend, ids: list[list[int]], pad_id: int, device, outputs: set[str]):
    """One batch padded to its longest member (right padding), through the backend."""
    import torch

    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for j, x in enumerate(ids):
        input_ids[j, :len(x)] = torch.tensor(x, dtype=torch.long)
        mask[j, :len(x)] = 1
    inputs = {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}
    return backend.forward(inputs, outputs), mask


def auto_batch_size(device, module, max_len: int) -> int:
    """CPU: small batches (cache friendly). Accelerators: from free memory, halved on out-of-memory."""
    if device.type != "cuda":
        return CPU_BATCH if device.type == "cpu" else 256
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    cfg = getattr(module, "config", None) or getattr(getattr(module, "model", None), "config", None)
    hidden, heads = getattr(cfg, "hidden_size", 1024), getattr(cfg, "num_attention_heads", 16)
    per_text = max_len * (12 * hidden + heads * max_len) * 2  # one layer's fp16 activations
    return int(max(8, min(1024, free * 0.5 // per_text)))


def token_windows(tokenizer, texts: list[str], max_len: int, window: int, ahead: bool):
    """``(start, input_ids)`` for each ``window`` texts, tokenized (truncated to ``max_len``) in one fast-tokenizer
    call. With ``ahead`` the next window is tokenized in a background thread while the caller runs this one
    through the model: a fast tokenizer releases the GIL, so on a GPU/NPU the two overlap. On the CPU the
    model's own threads use every core, so there ``ahead`` is off (the Encoder decides)."""
    def tokenize(start: int) -> list[list[int]]:
        return tokenizer(texts[start:start + window], truncation=True, max_length=max_len, add_special_tokens=True,
                         return_attention_mask=False, return_token_type_ids=False)["input_ids"]

    starts = range(0, len(texts), window)
    if not ahead or len(starts) < 2:
        for start in starts:
            yield start, tokenize(start)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="bgeft-tokenize") as pool:
        pending = pool.submit(tokenize, starts[0])
        for i, start in enumerate(starts):
            ids = pending.result()
            if i + 1 < len(starts):
                pending = pool.submit(tokenize, starts[i + 1])   # at most one window ahead
            yield start, ids
