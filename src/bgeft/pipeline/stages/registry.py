"""The ONE table of stage kinds: kind -> (settings schema, output, resumable, body).

Everything the pipeline knows about a kind is here: ``pipeline/spec.py`` validates a kind's section with
its schema, ``pipeline/graph.py`` names its output, ``pipeline/runner.py`` resumes it (or not) and runs its
body. How the kinds are wired into rounds is ``graph.build_stages``. A body is ``(ctx, stage, resume) ->
summary dict``; the body modules import their heavy libraries inside the body, so importing this is cheap.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bgeft.pipeline.stages import eval_stage, model_stages, report, text_stages

# a schema maps key -> (expected type(s), default); "path" strings are resolved by spec.py
STR, INT, NUM, BOOL, LIST, MAP = str, int, (int, float), bool, list, dict
REJECTS = (str, int)  # max_rejects: 10 or "5%"
MODES = ("dense", "sparse", "colbert", "hybrid")
_TRAIN = {"recipe": (STR, None), "model": (MAP, {}), "data": (MAP, {}), "training": (MAP, {})}
_CHECKPOINT = "resuming from its last checkpoint"


@dataclass(frozen=True)
class Kind:
    schema: dict[str, tuple]
    output: str                    # what the kind leaves in its directory for the stages after it
    resumable: str | None          # how an interrupted stage continues; None: it restarts
    run: Callable


KINDS: dict[str, Kind] = {
    "corpus": Kind({"books": (LIST, None), "file": (STR, None), "by": (STR, "paragraph"), "max_tokens": (INT, 256),
                    "overlap": (INT, 0)}, "corpus.jsonl", None, text_stages.run_corpus),
    # gen-queries keeps OUT.partial: the passages already answered are not asked again
    "queries": Kind({"file": (STR, None), "generate": (MAP, None)}, ".",
                    "resuming, questions already generated are kept", text_stages.run_queries),
    "split": Kind({"dev": (NUM, 0.2), "test": (NUM, 0.2), "seed": (INT, 0)}, ".", None, text_stages.run_split),
    "mine": Kind({"range": (STR, "2-50"), "negatives": (INT, 7), "margin": (NUM, 0.05), "bm25": (INT, 0),
                  "seed": (INT, 42), "batch_size": (INT, 32), "query_max_len": (INT, 64),
                  "passage_max_len": (INT, 512), "skip_invalid": (BOOL, False), "max_rejects": (REJECTS, None)},
                 "train.jsonl", None, model_stages.run_mine),
    "score": Kind({"reranker": (STR, "previous"), "batch_size": (INT, 32), "max_length": (INT, 512),
                   "skip_invalid": (BOOL, False), "max_rejects": (REJECTS, None)},
                  "train.jsonl", None, model_stages.run_score),
    "train_embedder": Kind(_TRAIN, "model", _CHECKPOINT, model_stages.run_train),
    "train_reranker": Kind(_TRAIN, "model", _CHECKPOINT, model_stages.run_train),
    "eval": Kind({"modes": (LIST, list(MODES)), "k": (LIST, [1, 5, 10]), "retrieve_top": (INT, 20),
                  "rerank_top": (INT, 10), "batch_size": (INT, 32), "max_length": (INT, 512)},
                 ".", None, eval_stage.run_eval),
    "report": Kind({"select": (STR, "retriever.hybrid.ndcg@10")}, "report.md", None, report.run_report),
}


def bodies() -> dict[str, Callable]:
    return {kind: k.run for kind, k in KINDS.items()}
