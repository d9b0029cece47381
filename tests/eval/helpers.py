"""Builders for the evaluation tests: M3-ready model copies and tiny data sets in tmp dirs."""
from __future__ import annotations

import json
import os
from pathlib import Path


def add_m3_heads(src: Path, dest: Path, seed: int = 0, perturb: float = 0.0) -> Path:
    """A copy of ``src`` (weights symlinked, or perturbed copies) with colbert/sparse heads saved.

    ``torch.nn.Linear`` state dicts of the shapes FlagEmbedding's M3 runner builds, so
    ``BGEM3FlagModel`` loads real (seeded) heads instead of random ones; ``perturb`` > 0 adds
    seeded noise to every encoder weight (a stand-in for a fine-tuned model).
    """
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoConfig

    dest.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and not (dest / f.name).exists():
            if perturb and f.name == "model.safetensors":
                continue
            os.symlink(f.resolve(), dest / f.name)
    if perturb:
        g = torch.Generator().manual_seed(seed + 1)
        state = load_file(str(src / "model.safetensors"))
        state = {k: (v + perturb * torch.randn(v.shape, generator=g) * v.float().std().clamp_min(1e-3)).to(v.dtype)
                 if v.is_floating_point() and v.numel() > 1 else v for k, v in state.items()}
        save_file(state, str(dest / "model.safetensors"), metadata={"format": "pt"})
    hidden = AutoConfig.from_pretrained(src).hidden_size
    torch.manual_seed(seed)
    torch.save(torch.nn.Linear(hidden, hidden).state_dict(), dest / "colbert_linear.pt")
    torch.save(torch.nn.Linear(hidden, 1).state_dict(), dest / "sparse_linear.pt")
    return dest


DOCS = {
    "d1": ("River", "the river runs past the old town and the ferry crosses it"),
    "d2": ("King", "the king of the city went to war in the mountain"),
    "d3": ("Book", "a book about love and time written by the author"),
    "d4": ("Story", "the story of a character who lives by the river"),
    "d5": ("People", "people of the town gather when the ferry arrives"),
    "d6": ("Novel", "the novel chapter tells what the author did in the war"),
}
QUERIES = {
    "q1": "where does the ferry cross the river",
    "q2": "who went to war",
    "q3": "what book did the author write",
    "q4": "a query whose judgements are all zero",
}
QRELS = [("q1", "d1", 2), ("q1", "d5", 1), ("q2", "d2", 1), ("q2", "d6", 1), ("q3", "d3", 2), ("q4", "d4", 0)]


def write_beir(root: Path, docs=DOCS, queries=QUERIES, qrels=QRELS, qrels_file: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": k, "title": t, "text": x}) + "\n"
                                               for k, (t, x) in docs.items()), encoding="utf-8")
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in queries.items()),
                                        encoding="utf-8")
    if qrels_file:
        (root / "qrels").mkdir(exist_ok=True)
        (root / "qrels" / "test.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in qrels), encoding="utf-8")
    return root


def build_tiny_reranker(src: Path, dest: Path, seed: int = 0) -> Path:
    """A cross-encoder (``XLMRobertaForSequenceClassification``, 1 label) from the tiny XLM-R."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    cfg = AutoConfig.from_pretrained(src, num_labels=1)
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(src, config=cfg)
    model.save_pretrained(dest)
    AutoTokenizer.from_pretrained(src).save_pretrained(dest)
    return dest
