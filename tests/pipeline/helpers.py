"""Pipeline files for the tests: the example book and questions, tiny models, a few training steps."""
from __future__ import annotations

import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BOOK = REPO / "example_data" / "book" / "river_town.txt"
QUESTIONS = REPO / "example_data" / "book" / "questions.jsonl"

TRAIN = "{max_steps: 2, save_steps: 1, per_device_train_batch_size: 2, logging_steps: 1}"


def tiny_pipeline(dest: Path, model: Path, rounds: int = 2, extra: str = "") -> Path:
    """A complete pipeline (every stage) on the tiny model; returns the file's path."""
    dest.mkdir(parents=True, exist_ok=True)
    text = textwrap.dedent(f"""\
        # test pipeline
        work_dir: work
        rounds: {rounds}
        base:
          retriever: {model}
          reranker: {model}
        corpus:
          books: [{BOOK}]
          by: paragraph
          max_tokens: 48
        queries:
          file: {QUESTIONS}
        split: {{dev: 0.25, test: 0.25, seed: 1}}
        mine:
          range: 1-20
          margin: null              # a random tiny model scores everything alike
          negatives: 2
          batch_size: 16
          query_max_len: 16
          passage_max_len: 48
        score:
          reranker: previous
          batch_size: 16
          max_length: 64
        train_embedder:
          recipe: demo_cpu_m3
          data: {{train_group_size: 2, query_max_len: 16, passage_max_len: 48}}
          training: {TRAIN}
        train_reranker:
          recipe: demo_cpu_reranker
          data: {{train_group_size: 2, query_max_len: 16, passage_max_len: 48, max_len: 64}}
          training: {TRAIN}
        eval:
          modes: [dense, sparse, colbert, hybrid]
          k: [1, 5, 10]
          retrieve_top: 10
          rerank_top: 5
          batch_size: 16
          max_length: 48
        report:
          select: retriever.dense.ndcg@10
        """) + extra
    path = dest / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    return path
