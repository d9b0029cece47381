"""``bgeft data VERB ...``: prepare training data. Each verb is a module of ``bgeft.data`` with
``add_arguments(parser)`` and ``run(args)``; they import torch, faiss and FlagEmbedding inside ``run``."""
from __future__ import annotations

import argparse

from bgeft.cli.group import add_sub_verbs, show_sub_verbs
from bgeft.data import books, buckets, convert, mine, querygen, score, validate

DESCRIPTION = "Prepare training data for FlagEmbedding: from what you have to clean, mined, scored JSONL."
SUB_VERBS = {
    "convert": (convert, "convert JSON/JSONL/CSV/TSV/DuReader/MS MARCO/TREC XML/SQuAD/STS/label files to training "
                         "JSONL"),
    "validate": (validate, "check training JSONL rows against FlagEmbedding's schema; --fix writes the valid rows"),
    "split-book": (books, "split .txt/.md books into passages (a BEIR corpus.jsonl)"),
    "mine": (mine, "mine hard negatives with a BGE model and faiss (positive-aware filtering)"),
    "score": (score, "add reranker teacher scores (pos_scores/neg_scores) for knowledge distillation"),
    "buckets": (buckets, "split training data into length buckets with per-file batch sizes"),
    "gen-queries": (querygen, "write questions for corpus passages with an OpenAI-compatible chat endpoint"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_sub_verbs(parser, SUB_VERBS, log=True)


run = show_sub_verbs  # `bgeft data` alone; each sub-verb's parser sets its own run
