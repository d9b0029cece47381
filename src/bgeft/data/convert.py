"""``bgeft data convert IN... -o OUT.jsonl``: what users have -> FlagEmbedding training JSONL.

Each input's container and record shape are detected (or forced with ``--format``) and announced; rows
stream from input to a temporary file beside OUT, which replaces OUT only when every input converted
cleanly. A bad record stops the run with ``file:line: key: problem`` and leaves no output behind, or with
``--skip-invalid`` is left out and listed in ``OUT.rejects`` (see ``rejects.py``).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

from bgeft.data import labelsets, shapes
from bgeft.data.detect import FORMATS, Detected, detect
from bgeft.data.io import atomic_writer
from bgeft.data.pointwise import pointwise
from bgeft.data.rejects import Rejects
from bgeft.data.rejects import add_arguments as add_reject_arguments
from bgeft.data.schema import row_problems
from bgeft.data.shapes import Options, Stats
from bgeft.errors import UserError
from bgeft.safety import check_output

CONVERTERS: dict[str, Callable] = {
    "training": shapes.training,
    "retrieval": shapes.training,
    "dureader": shapes.dureader,
    "squad": shapes.squad,
    "msmarco": shapes.msmarco,
    "trec": shapes.trec,
    "pointwise": pointwise,
    "sts": labelsets.sts,
    "classification": labelsets.classification,
    "clustering": labelsets.clustering,
}
# shapes whose rows may share one output file
FAMILY = {
    "training": "retrieval",
    "retrieval": "retrieval",
    "dureader": "retrieval",
    "squad": "retrieval",
    "msmarco": "retrieval",
    "trec": "retrieval",
    "pointwise": "retrieval",
    "sts": "sts",
    "classification": "classification",
    "clustering": "clustering",
}
INPUT_KEYS = {"retrieval": {"pos": "positive", "neg": "negative"}}
IDENTICAL = "identical to the query (teaches nothing)"


def convert(inputs: list[str | Path], output: str | Path, *, fmt: str = "auto", encoding: str | None = None,
            options: Options | None = None, log: Callable[[str], None] = print) -> Stats:
    """Convert ``inputs`` into one training JSONL file at ``output``; returns what was written/skipped."""
    opts = options or Options()
    if opts.negatives < 0:
        raise UserError(f"--negatives {opts.negatives}: must be 0 or more")
    check_output(output, [*inputs, *(p for p in (opts.qrels, opts.corpus) if p)])
    found = [detect(path, fmt, encoding) for path in inputs]
    for det in found:
        log(det.describe())
    _check_plan(found, Path(output), opts)
    stats = Stats()
    empty_neg = 0
    with atomic_writer(output) as out, _progress() as bar:
        for det in found:
            names = INPUT_KEYS.get(det.shape, {})
            for where, row in bar(CONVERTERS[det.shape](det, opts, stats), det.path):
                if det.shape != "trec" or not stats.queries_only:
                    problems = row_problems(row, allow_empty_neg=True)
                    if problems and problems[0][1] == IDENTICAL:
                        stats.skipped["row whose query equals a positive"] += 1
                        continue
                    if problems:
                        key, problem = problems[0]
                        base, _, index = key.partition("[")
                        shown = names.get(base, base) + (f"[{index}" if index else "")
                        if opts.rejects is None:
                            raise UserError(f"{where}: {shown}: {problem}")
                        path, _, line = where.rpartition(":")
                        opts.rejects.reject(path, int(line), shown, problem)
                        continue
                    empty_neg += not row["neg"]
                out.write(shapes.dump(row) + "\n")
                stats.rows += 1
        rejected = opts.rejects.finish(stats.rows) if opts.rejects is not None and stats.rows else None
        if stats.rows == 0:
            if opts.rejects is not None and opts.rejects.count:
                stats.skipped[f"rejected ({opts.rejects.summary_reasons()})"] = opts.rejects.count
            skipped = "; ".join(f"{n} {why}" for why, n in stats.skipped.items())
            raise UserError(f"no rows to write from {', '.join(map(str, inputs))}"
                            + (f" (skipped: {skipped})" if skipped else "") + "; nothing written")
    what = "BEIR query rows (_id, text)" if stats.queries_only else "training rows"
    if rejected:
        log(rejected)
    log(f"wrote {stats.rows} {what} to {output}")
    for why, n in stats.skipped.most_common():
        log(f"skipped {n} {why}")
    if empty_neg:
        log(f"{empty_neg} row(s) have no negatives yet: run bgeft data mine {output} -o OUT --model PATH "
            "before training")
    if stats.dropped_fields:
        log(f"fields not carried over: {', '.join(sorted(stats.dropped_fields))}")
    return stats


@contextlib.contextmanager
def _progress():
    """Rows-per-second progress for each input file (big files take a while; bgeft.console_progress)."""
    from bgeft.console_progress import track

    bars = []

    def wrap(rows, path):
        bars.append(track(rows, os.path.basename(str(path)), "rows"))
        return bars[-1]

    try:
        yield wrap
    finally:
        for bar in bars:
            bar.close()


def _check_plan(found: list[Detected], output: Path, opts: Options) -> None:
    families = {FAMILY[d.shape] for d in found}
    if len(families) > 1:
        parts = ", ".join(f"{d.path}: {d.shape}" for d in found)
        raise UserError(f"inputs have different kinds of records ({parts}); convert each kind into its own "
                        "output file (FlagEmbedding batches each file on its own)")
    if any(d.shape == "trec" for d in found) and len(found) > 1 and not opts.qrels:
        raise UserError("TREC topics without --qrels convert to BEIR queries: give one topics file at a time")
    family = families.pop()
    if family in ("classification", "clustering"):
        stem_ok = output.name.split(".")[0].endswith("no_in_batch_neg")
        if not stem_ok and not output.parent.name.endswith("no_in_batch_neg"):
            raise UserError(
                f"-o {output}: {family} rows must train without in-batch negatives (other rows share their "
                f"labels): name the file *-no_in_batch_neg.jsonl (e.g. {_no_in_batch_name(output)}) "
                "or put it in a directory whose name ends in -no_in_batch_neg"
            )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="IN", help="input files (format detected per file)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.jsonl",
                        help="training JSONL to write (with --to beir: the BEIR directory to create)")
    parser.add_argument("--to", choices=("training", "beir"), default="training",
                        help="training (default): FlagEmbedding training JSONL; beir: judged eval data (DuReader "
                             "relevance/is_relevant, pointwise relevance or label, query/pos/neg) as a BEIR "
                             "directory (corpus.jsonl, queries.jsonl, qrels/test.tsv) for bgeft eval")
    parser.add_argument("--format", default="auto", choices=FORMATS, metavar="FORMAT",
                        help=f"{' | '.join(FORMATS)}: a container (jsonl json csv tsv) or a record shape; "
                             "default auto: detect per file")
    parser.add_argument(
        "--encoding", metavar="ENC", help="force the input encoding (utf-8, utf-8-sig, gb18030, gbk, gb2312)"
    )
    parser.add_argument("--negatives", type=int, default=15, metavar="N",
                        help="negatives drawn per row for SQuAD/STS/classification/clustering (default 15)")
    parser.add_argument("--seed", type=int, default=42, metavar="N", help="seed for the drawn negatives (default 42)")
    parser.add_argument("--prompt", metavar="TEXT", help="set this prompt (instruction) on every row")
    parser.add_argument("--min-score", type=float, metavar="S",
                        help="STS: lowest score kept as a positive pair (default 80%% of the highest score)")
    parser.add_argument("--graded", action="store_true",
                        help="pointwise query/passage/label records: keep the labels as pos_scores/neg_scores")
    parser.add_argument("--qrels", metavar="FILE", help="TREC topics: qrels file (TREC 'qid 0 docid rel' or BEIR TSV)")
    parser.add_argument("--corpus", metavar="FILE", help="TREC topics: BEIR corpus.jsonl holding the judged documents")
    add_reject_arguments(parser)


def run(args: argparse.Namespace) -> int:
    opts = Options(
        negatives=args.negatives,
        seed=args.seed,
        prompt=args.prompt,
        min_score=args.min_score,
        qrels=args.qrels,
        corpus=args.corpus,
        graded=args.graded,
        rejects=Rejects.from_args(args, args.output, "record"),
    )
    if args.to == "beir":
        from bgeft.data.beir import convert_beir

        convert_beir(args.inputs, args.output, fmt=args.format, encoding=args.encoding, options=opts,
                     log=lambda message: print(message, file=sys.stdout))
        return 0
    convert(args.inputs, args.output, fmt=args.format, encoding=args.encoding, options=opts,
            log=lambda message: print(message, file=sys.stdout))
    return 0


def _no_in_batch_name(output: Path) -> Path:
    return output.parent / (output.name.split(".")[0] + "-no_in_batch_neg.jsonl")
