"""``bgeft data score``: teacher scores from a BGE reranker for knowledge distillation.

Python API (used by the pipeline)::

    score_file(in_path, out_path, *, reranker=None, model=None, batch_size=128, max_length=512,
               query_max_length=None, fp16=None, device=None, query_instruction=None,
               chunk_rows=1024, encoding=None) -> ScoreSummary

``reranker`` is a cross-encoder (directory, hub id) loaded with ``bgeft.models.reranker.Reranker``
(FlagEmbedding's ``FlagReranker``; ``model``: an already loaded ``Reranker`` instead). Every
``(query, passage)`` pair of a row is scored with the
raw, un-normalised logits (``normalize=False``: what FlagEmbedding's distillation loss expects) and
written as ``pos_scores``/``neg_scores`` in the order of ``pos``/``neg``, replacing any old scores.
Rows are processed ``chunk_rows`` at a time, so memory does not grow with the file; the output is
written atomically.
"""
from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, field

from bgeft.console_progress import progress as progress_bar
from bgeft.data.io import atomic_writer
from bgeft.data.records import dump_row, iter_rows
from bgeft.data.rejects import Rejects
from bgeft.data.rejects import add_arguments as add_reject_arguments
from bgeft.errors import UserError
from bgeft.models.devices import add_device_argument, device_spec
from bgeft.models.reranker import Reranker
from bgeft.safety import check_output


@dataclass
class ScoreSummary:
    out: str
    rows: int = 0
    pairs: int = 0
    replaced: int = 0
    low: float = math.inf
    high: float = -math.inf
    total: float = field(default=0.0, repr=False)
    rejects: str | None = None  # the --skip-invalid summary line

    def lines(self) -> list[str]:
        out = [self.rejects] if self.rejects else []
        out += [f"scored {self.pairs} pairs in {self.rows} rows -> {self.out}"]
        if self.pairs:
            out.append(f"raw scores: min {self.low:.3f}, mean {self.total / self.pairs:.3f}, max {self.high:.3f}")
        if self.replaced:
            out.append(f"replaced old pos_scores/neg_scores in {self.replaced} rows")
        return out


def _score_chunk(model, chunk: list[tuple[int, dict]], path, summary: ScoreSummary, progress) -> list[dict]:
    pairs = [(row["query"], p) for _, row in chunk for p in row["pos"] + row.get("neg", [])]
    scores = model.score(pairs)
    out, k = [], 0
    for lineno, row in chunk:
        n_pos, n_neg = len(row["pos"]), len(row.get("neg", []))
        mine = scores[k:k + n_pos + n_neg]
        k += n_pos + n_neg
        bad = [s for s in mine if not math.isfinite(s)]
        if bad:
            raise UserError(f"{path}:{lineno}: the reranker returned a non-finite score ({bad[0]}); "
                            "fp16 overflow? run again with --fp32")
        summary.replaced += "pos_scores" in row or "neg_scores" in row
        new = {k2: v for k2, v in row.items() if k2 not in ("pos_scores", "neg_scores")}
        new["pos_scores"], new["neg_scores"] = mine[:n_pos], mine[n_pos:]
        out.append(new)
        if mine:
            summary.low, summary.high = min(summary.low, *mine), max(summary.high, *mine)
            summary.total += sum(mine)
    summary.rows += len(chunk)
    summary.pairs += len(pairs)
    progress.update(len(pairs))
    return out


def score_file(in_path, out_path, *, reranker=None, model=None, batch_size: int = 128, max_length: int = 512,
               query_max_length: int | None = None, fp16: bool | None = None, device=None,
               query_instruction: str | None = None, chunk_rows: int = 1024,
               encoding: str | None = None, rejects: Rejects | None = None) -> ScoreSummary:
    """Add raw reranker scores to every row of ``in_path`` and write ``out_path`` atomically."""
    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: must be at least 1")
    if chunk_rows < 1:
        raise UserError(f"chunk_rows {chunk_rows}: must be at least 1")
    check_output(out_path, [p for p in (in_path, reranker) if isinstance(p, (str, os.PathLike))])
    if model is None:
        if reranker is None:
            raise UserError("scoring needs --reranker PATH (a cross-encoder such as bge-reranker-v2-m3)")
        model = Reranker(reranker, device=device, batch_size=batch_size, max_length=max_length,
                         query_max_length=query_max_length, fp16=fp16, query_instruction=query_instruction)
    summary = ScoreSummary(out=str(out_path))
    with atomic_writer(out_path) as out, progress_bar(None, "score", "pairs") as progress:
        chunk: list[tuple[int, dict]] = []
        for item in iter_rows(in_path, encoding, rejects):
            chunk.append(item)
            if len(chunk) == chunk_rows:
                out.writelines(dump_row(r) for r in _score_chunk(model, chunk, in_path, summary, progress))
                chunk = []
        if chunk:
            out.writelines(dump_row(r) for r in _score_chunk(model, chunk, in_path, summary, progress))
        if rejects is not None:
            summary.rejects = rejects.finish(summary.rows)
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN.jsonl", help="training rows (query, pos, neg)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.jsonl")
    parser.add_argument("--reranker", required=True, metavar="PATH",
                        help="cross-encoder: a directory or a hub id (FlagReranker)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-length", type=int, default=512, help="max tokens of query + passage (default 512)")
    parser.add_argument("--query-max-length", type=int, default=None)
    parser.add_argument("--query-instruction", default=None, help="instruction prefixed to every query")
    add_device_argument(parser, legacy=True)
    parser.add_argument("--fp32", action="store_true", help="score in fp32 on GPUs/NPUs too (the CPU always is)")
    parser.add_argument("--encoding", default=None, help="force the input encoding (default: detect)")
    add_reject_arguments(parser)


def run(args) -> int:
    rejects = Rejects.from_args(args, args.output)
    summary = score_file(
        args.input,
        args.output,
        reranker=args.reranker,
        batch_size=args.batch_size,
        max_length=args.max_length,
        query_max_length=args.query_max_length,
        fp16=False if args.fp32 else None,
        device=device_spec(args),
        query_instruction=args.query_instruction,
        encoding=args.encoding,
        rejects=rejects,
    )
    for line in summary.lines():
        print(line)
    return 0
