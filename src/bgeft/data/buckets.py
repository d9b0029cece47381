"""``bgeft data buckets``: length buckets with a per-file batch size for FlagEmbedding's
same-dataset batching (``data.same_dataset_within_batch: true``).

Python API (used by the pipeline)::

    make_buckets(paths, out_dir, *, tokenizer, bounds=(0, 500, 1000, 2000, 4000, 8192),
                 batch_sizes=(64, 32, 16, 8, 4), overwrite=False, encoding=None) -> BucketSummary

A row's length is the largest token count (``tokenizer``: the target model's, a path or a loaded
tokenizer; no special tokens) of its query and passages. Bucket ``i`` holds lengths in
``[bounds[i], bounds[i+1])``; longer rows go to the last bucket (the trainer truncates them to
``passage_max_len``). Every row is written exactly once, with ``"batch_size": batch_sizes[i]`` added:
FlagEmbedding's ``AbsEmbedderSameDatasetTrainDataset`` reads a file's per-device batch size from its
first row's ``batch_size`` column and builds every batch from one file.

Inputs may be files or directories (their .json/.jsonl files, as FlagEmbedding reads them). Files are
split per input and per ``type`` (a batch must not mix types): ``DIR/<input>.len<lo>-<hi>.jsonl``
(``<input>.<type>.len…`` when one input holds several types). Inputs named ``…no_in_batch_neg`` (or
inside such a directory) go to ``DIR/no_in_batch_neg/<input>.len<lo>-<hi>-no_in_batch_neg.jsonl`` so the
flag survives whether ``train_data`` lists the directories or the files. ``DIR/buckets.yaml`` records
bounds, batch sizes, files and the ``train_data`` entries to use. The directory is built beside ``DIR``
and renamed into place, so an error never leaves half a bucket set.
"""
from __future__ import annotations

import argparse
import bisect
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bgeft.data.books import load_tokenizer
from bgeft.data.records import dump_row, iter_rows
from bgeft.data.rejects import Rejects
from bgeft.data.rejects import add_arguments as add_reject_arguments
from bgeft.errors import UserError
from bgeft.io import atomic_dir
from bgeft.safety import check_output, check_owned_dir

DEFAULT_BOUNDS = (0, 500, 1000, 2000, 4000, 8192)
DEFAULT_BATCH_SIZES = (64, 32, 16, 8, 4)
NO_IN_BATCH = "no_in_batch_neg"
MANIFEST = "buckets.yaml"
CHUNK = 256


@dataclass
class BucketSummary:
    out: str
    rows: int = 0
    files: list[dict] = field(default_factory=list)
    over_last: int = 0
    train_data: list[str] = field(default_factory=list)
    rejects: str | None = None  # the --skip-invalid summary line

    def lines(self) -> list[str]:
        out = [self.rejects] if self.rejects else []
        out += [f"bucketed {self.rows} rows into {len(self.files)} files -> {self.out}"]
        for f in self.files:
            out.append(f"  {f['path']}: {f['rows']} rows, batch_size {f['batch_size']}")
            if f["rows"] < f["batch_size"]:
                out.append(f"  warning: {f['path']} has fewer rows than its batch size: FlagEmbedding drops "
                           "incomplete batches, so these rows are never trained on (lower --batch-sizes)")
        if self.over_last:
            out.append(f"{self.over_last} rows are longer than the last bound: they are truncated at passage_max_len")
        out.append("train with data.same_dataset_within_batch=true and data.train_data="
                   + json.dumps(self.train_data))
        return out


def parse_ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise UserError(f"{flag} {text}: expected comma-separated whole numbers, e.g. 0,500,1000") from None


def _check(bounds, batch_sizes) -> None:
    if len(bounds) < 2 or any(b < 0 for b in bounds) or list(bounds) != sorted(set(bounds)):
        raise UserError(f"--bounds {','.join(map(str, bounds))}: need at least two increasing token counts, "
                        "e.g. 0,500,1000")
    if len(batch_sizes) != len(bounds) - 1:
        n = len(bounds) - 1
        raise UserError(f"--batch-sizes: {n} buckets need {n} batch sizes, got {len(batch_sizes)}")
    if any(b < 1 for b in batch_sizes):
        raise UserError("--batch-sizes: every batch size must be at least 1")


def _row_lengths(tok, rows: list[dict]) -> list[int]:
    texts, owners = [], []
    for i, row in enumerate(rows):
        for t in [row["query"], *row["pos"], *row.get("neg", [])]:
            texts.append(t)
            owners.append(i)
    lengths = [0] * len(rows)
    for owner, ids in zip(owners, tok(texts, add_special_tokens=False, verbose=False)["input_ids"]):
        lengths[owner] = max(lengths[owner], len(ids))
    return lengths


class _Writer:
    """Open bucket files in a temporary directory, one per (input, type, bucket)."""

    def __init__(self, root: Path):
        self.root, self.handles, self.counts, self.parts = root, {}, {}, {}

    def write(self, key, row: dict) -> None:
        if key not in self.handles:
            folder = self.root / (NO_IN_BATCH if key[0][1] else "")
            folder.mkdir(exist_ok=True)
            self.parts[key] = folder / f"part-{len(self.handles)}.jsonl"
            self.handles[key] = open(self.parts[key], "w", encoding="utf-8", newline="\n")
            self.counts[key] = 0
        self.handles[key].write(dump_row(row))
        self.counts[key] += 1

    def close(self) -> None:
        for h in self.handles.values():
            h.close()


def _final_names(writer: _Writer, bounds) -> dict:
    types_per_input: dict = {}
    for (source, ty, _) in writer.counts:
        types_per_input.setdefault(source, set()).add(ty)
    names = {}
    for key in writer.counts:
        (label, no_in_batch), ty, b = key
        base = _strip_flag(label)
        typed = f".{ty}" if len(types_per_input[key[0]]) > 1 else ""
        name = f"{base}{typed}.len{bounds[b]}-{bounds[b + 1]}{'-' + NO_IN_BATCH if no_in_batch else ''}.jsonl"
        names[key] = f"{NO_IN_BATCH}/{name}" if no_in_batch else name
    return names


def _strip_flag(name: str) -> str:
    return name[: -len(NO_IN_BATCH)].rstrip("-_.") if name.endswith(NO_IN_BATCH) else name


def _label_inputs(paths) -> list[tuple[Path, str, bool]]:
    """``(file, label, no_in_batch_neg)`` per input file; a directory stands for its .json/.jsonl files
    (as FlagEmbedding reads it) and its name decides the no_in_batch_neg flag, as in FlagEmbedding."""
    files: list[tuple[Path, bool]] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix in (".json", ".jsonl") and f.is_file())
            if not found:
                raise UserError(f"{p}: no .json/.jsonl files in this directory")
            files += [(f, p.name.endswith(NO_IN_BATCH)) for f in found]
        else:
            files.append((p, p.stem.endswith(NO_IN_BATCH) or p.parent.name.endswith(NO_IN_BATCH)))
    stems = [f.stem for f, _ in files]
    out, seen = [], {}
    for f, flag in files:
        if flag and not f.stem.endswith(NO_IN_BATCH):  # flagged by its directory: name it after it
            label = f"{_strip_flag(f.parent.name)}_{f.stem}"
        else:
            label = f.stem if stems.count(f.stem) == 1 else f"{_strip_flag(f.parent.name)}_{f.stem}"
        if label in seen:
            raise UserError(f"{f}: its bucket files would have the same names as those of {seen[label]}; rename one")
        seen[label] = f
        out.append((f, label, flag))
    return out


def make_buckets(paths, out_dir, *, tokenizer, bounds=DEFAULT_BOUNDS, batch_sizes=DEFAULT_BATCH_SIZES,
                 overwrite: bool = False, encoding: str | None = None, rejects: Rejects | None = None) -> BucketSummary:
    """Split every row of ``paths`` into length buckets under ``out_dir`` (see module docstring); with
    ``rejects`` (``--skip-invalid``) bad rows are left out and listed in ``DIR.rejects`` beside it."""
    bounds, batch_sizes = tuple(bounds), tuple(batch_sizes)
    _check(bounds, batch_sizes)
    inputs = _label_inputs(paths)
    sources = [p for p, _, _ in inputs] + ([tokenizer] if isinstance(tokenizer, (str, Path)) else [])
    if overwrite:  # only a buckets directory bgeft wrote may be replaced, and only once the new one is complete
        out_dir = check_owned_dir(out_dir, marker=MANIFEST, inputs=sources, known=["*.jsonl", NO_IN_BATCH],
                                  what="-o")
    else:
        out_dir = check_output(out_dir, sources, is_dir=True)
        if out_dir.exists() and any(out_dir.iterdir()):
            raise UserError(f"{out_dir}: exists and is not an empty directory; choose a new -o DIR or pass --overwrite")
    stems = {label: str(p) for p, label, _ in inputs}
    tok = load_tokenizer(tokenizer) if isinstance(tokenizer, (str, Path)) else tokenizer
    summary = BucketSummary(out=str(out_dir))
    with atomic_dir(out_dir, replace=overwrite) as tmp:
        writer = _Writer(tmp)
        try:
            _fill(inputs, tmp, writer, tok, bounds, batch_sizes, summary, stems, out_dir, encoding, rejects)
            if rejects is not None:
                summary.rejects = rejects.finish(summary.rows)
        finally:
            writer.close()
    return summary


def _fill(inputs, tmp: Path, writer: _Writer, tok, bounds, batch_sizes, summary: BucketSummary, stems, out_dir: Path,
          encoding, rejects=None) -> None:
    for p, label, no_in_batch in inputs:
        source = (label, no_in_batch)
        chunk: list[dict] = []
        for _, row in iter_rows(p, encoding, rejects):
            chunk.append(row)
            if len(chunk) == CHUNK:
                _assign(tok, chunk, source, bounds, batch_sizes, writer, summary)
                chunk = []
        if chunk:
            _assign(tok, chunk, source, bounds, batch_sizes, writer, summary)
    writer.close()
    names = _final_names(writer, bounds)
    for key, name in sorted(names.items(), key=lambda kv: kv[1]):
        os.replace(writer.parts[key], tmp / name)
        summary.files.append({"path": name, "rows": writer.counts[key], "batch_size": batch_sizes[key[2]],
                              "min_tokens": bounds[key[2]], "max_tokens": bounds[key[2] + 1],
                              "source": stems[key[0][0]], "type": key[1]})
    summary.train_data = [str(out_dir)] + ([str(out_dir / NO_IN_BATCH)] if any(k[0][1] for k in names) else [])
    manifest = {"bounds": list(bounds), "batch_sizes": list(batch_sizes), "rows": summary.rows,
                "files": summary.files, "train_data": summary.train_data}
    # not *.json: FlagEmbedding would load any .json/.jsonl file in a train_data directory as data
    (tmp / MANIFEST).write_text(yaml.safe_dump(manifest, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _assign(tok, rows, source, bounds, batch_sizes, writer: _Writer, summary: BucketSummary) -> None:
    for row, length in zip(rows, _row_lengths(tok, rows)):
        b = min(max(bisect.bisect_right(bounds, length) - 1, 0), len(batch_sizes) - 1)
        summary.over_last += length >= bounds[-1]
        ty = row.get("type") if isinstance(row.get("type"), str) else None
        writer.write((source, ty, b), {**row, "batch_size": batch_sizes[b]})
        summary.rows += 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="IN.jsonl",
                        help="training JSONL files or directories (prompt/type columns are kept)")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="new directory for the bucket files")
    parser.add_argument("--tokenizer", required=True, metavar="PATH",
                        help="the target model (directory) to count tokens with")
    parser.add_argument("--bounds", default=",".join(map(str, DEFAULT_BOUNDS)),
                        help="bucket edges in tokens (default %(default)s)")
    parser.add_argument("--batch-sizes", default=",".join(map(str, DEFAULT_BATCH_SIZES)),
                        help="per-device batch size of each bucket, one fewer than --bounds (default %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    parser.add_argument("--encoding", default=None, help="force the input encoding (default: detect)")
    add_reject_arguments(parser)


def run(args) -> int:
    summary = make_buckets(args.inputs, args.output, tokenizer=args.tokenizer,
                           bounds=parse_ints(args.bounds, "--bounds"),
                           batch_sizes=parse_ints(args.batch_sizes, "--batch-sizes"),
                           overwrite=args.overwrite, encoding=args.encoding,
                           rejects=Rejects.from_args(args, str(args.output).rstrip("/")))
    for line in summary.lines():
        print(line)
    return 0
