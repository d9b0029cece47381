"""Tiny models built once per test session.

* ``build_tiny_xlmr`` - a randomly initialised XLM-RoBERTa (BGE-M3's architecture) with a small
  Unigram tokenizer whose vocabulary covers the characters of the example data (Chinese and English).
* the embedded MiniLM comes from ``bgeft.models.demo.build_demo_model`` (the product code).
"""
from __future__ import annotations

import json
from pathlib import Path

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
ASCII_WORDS = (
    "the a an of to in is was what who when where why how which does did do book chapter "
    "story author novel character river mountain city king war love time people"
).split()


def _corpus_chars(texts: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for text in texts:
        for ch in text:
            if not ch.isspace():
                seen.setdefault(ch, None)
    return list(seen)


def build_tiny_xlmr(dest: Path, texts: list[str], hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Write a random XLM-RoBERTa + tokenizer to ``dest`` and return it."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizer

    dest.mkdir(parents=True, exist_ok=True)
    pieces = SPECIALS + ["\u2581" + w for w in ASCII_WORDS] + ["\u2581"]
    for ch in _corpus_chars(texts) + list("abcdefghijklmnopqrstuvwxyz0123456789"):
        if ch not in pieces:
            pieces.append(ch)
    vocab = [(p, 0.0) for p in SPECIALS] + [(p, -float(i + 1)) for i, p in enumerate(pieces[4:])]
    vocab.append(("<mask>", 0.0))
    tok = XLMRobertaTokenizer(vocab=vocab)
    tok.model_max_length = 512
    tok.save_pretrained(dest)

    torch.manual_seed(seed)
    cfg = XLMRobertaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=514,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        type_vocab_size=1,
    )
    XLMRobertaModel(cfg).save_pretrained(dest)
    return dest


def example_texts(root: Path) -> list[str]:
    """Every query/passage string found in the JSONL files under ``root``."""
    texts: list[str] = []
    for path in sorted(root.rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            for key in ("query", "text", "title", "sentence1", "sentence2"):
                if isinstance(row.get(key), str):
                    texts.append(row[key])
            for key in ("pos", "neg"):
                if isinstance(row.get(key), list):
                    texts.extend(x for x in row[key] if isinstance(x, str))
    return texts
