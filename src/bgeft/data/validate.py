"""``bgeft data validate`` and the pre-launch check ``bgeft train`` runs on a recipe's ``train_data``.

Reads exactly what FlagEmbedding's embedder datasets read (each file path ending in .json/.jsonl; every
.json/.jsonl directly inside a directory) one row at a time and reports ``path:line: key: problem``.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bgeft.data.fixes import FIX_NAMES, fix_row
from bgeft.data.io import atomic_writer, open_text
from bgeft.data.jsonstream import iter_json_values, iter_jsonl
from bgeft.data.rejects import Rejects, rejects_path
from bgeft.data.schema import row_problems
from bgeft.errors import UserError
from bgeft.safety import check_output

PURPOSES = ("auto", "training", "mining")
MAX_MESSAGES = 1000  # stored per list; counts stay exact beyond it
TOKEN_BATCH = 256


@dataclass
class ValidationReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rows_checked: int = 0
    rows_dropped: int = 0
    rejects_line: str | None = None  # --fix: "kept N, rejected M: ..." summary
    files: list[str] = field(default_factory=list)
    error_count: int = 0
    warning_count: int = 0
    reasons: Counter = field(default_factory=Counter)  # "pos: empty list" -> rows
    fixes: Counter = field(default_factory=Counter)  # fixes.FIX_NAMES key -> rows repaired (--fix)

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def error(self, message: str, reason: str | None = None) -> None:
        self.error_count += 1
        if reason:
            self.reasons[reason] += 1
        if len(self.errors) < MAX_MESSAGES:
            self.errors.append(message)

    def warn(self, message: str) -> None:
        self.warning_count += 1
        if len(self.warnings) < MAX_MESSAGES:
            self.warnings.append(message)

    def format(self, limit: int = 20) -> str:
        lines = []
        for title, items, count in (("error", self.errors, self.error_count),
                                    ("warning", self.warnings, self.warning_count)):
            lines += [f"{title}: {m}" for m in items[:limit]]
            if count > limit:
                lines.append(f"... and {count - limit} more {title}s")
        lines.append(f"checked {self.rows_checked} rows in {len(self.files)} file(s): "
                     f"{self.error_count} error(s), {self.warning_count} warning(s)")
        return "\n".join(lines)


def training_files(paths: list[str | Path], report: ValidationReport) -> list[Path]:
    """The files FlagEmbedding loads for ``train_data``: paths ending in .json/.jsonl, and the .json/.jsonl
    files directly inside directories (subdirectories are not read)."""
    files = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.name.endswith((".json", ".jsonl")) and p.is_file())
            for sub in sorted(p for p in path.iterdir() if p.is_dir()):
                if any(q.name.endswith((".json", ".jsonl")) for q in sub.iterdir()):
                    report.warn(f"{sub}: subdirectory ignored (FlagEmbedding reads only files directly inside "
                                f"{path}); list it in train_data to train on it")
            if not found:
                report.error(f"{path}: no .json/.jsonl files in this directory")
            files += found
        elif not str(path).endswith((".json", ".jsonl")):
            report.warn(f"{path}: skipped (FlagEmbedding reads only .json/.jsonl files); rename it or run "
                        "bgeft data convert")
        elif not path.exists():
            report.error(f"{path}: no such file")
        else:
            files.append(path)
    return files


def iter_rows(path: Path, src, on_error=None) -> Iterator[tuple[int, object]]:
    """``(line, parsed value)``; JSON arrays are streamed element by element. ``on_error(message)`` gets
    each invalid JSON line of a JSON Lines file (which is then skipped) instead of stopping."""
    first = ""
    with open(path, "rb") as fh:
        while not first:
            chunk = fh.read(4096)
            if not chunk:
                break
            first = chunk.lstrip(b"\xef\xbb\xbf \t\r\n")[:1].decode("latin-1")
    if first == "[":
        yield from iter_json_values(src)
        return
    yield from iter_jsonl(src, on_error)


class _Checker:
    def __init__(self, report, kd_required, train_group_size, tokenizer, max_tokens, fixing=False, rejects=None):
        self.report, self.kd_required, self.train_group_size = report, kd_required, train_group_size
        self.fixing, self.rejects, self.mining = fixing, rejects, False
        self.tokenizer, self.max_tokens = tokenizer, max_tokens
        self.seen: dict[int, int] = {}  # row hash -> file index << 40 | line (about 100 bytes per row)
        self.file_index = -1
        self.pending: list[tuple[str, str, str]] = []  # (where, key, text) awaiting token counts
        self.short_neg = 0

    def check(self, where: str, line: int, row: object) -> object | None:
        """The row to keep (repaired with --fix), or None when it is dropped."""
        fixes: list[str] = []
        if self.fixing:
            row, fixes = fix_row(row, self.mining)
        elif self.mining and isinstance(row, dict) and "neg" not in row:
            row = {**row, "neg": []}
        problems = row_problems(row, kd_required=self.kd_required,
                                allow_empty_neg=self.train_group_size == 1 or self.mining)
        for i, (key, problem) in enumerate(problems):  # reasons count each dropped row once
            reason = f"{key.split('[')[0]}: {problem.split(';')[0].split(' (')[0]}"
            self.report.error(f"{where}: {key}: {problem}", None if i else reason)
            if not i and self.rejects is not None:
                self.rejects.reject_message(where.rpartition(":")[0], line, f"{where}: {key}: {problem}", reason)
        if problems:
            return None
        digest = int.from_bytes(hashlib.blake2b(json.dumps([row["query"], row["pos"], row["neg"]],
                                                           ensure_ascii=False).encode(), digest_size=8).digest(), "big")
        first = self.seen.get(digest)
        if first is not None:
            path = self.report.files[first >> 40]
            message = f"{where}: row: duplicate of {path}:{first & (1 << 40) - 1}"
            self.report.error(message, "row: duplicate")
            if self.rejects is not None:
                self.rejects.reject_message(where.rpartition(":")[0], line, message, "row: duplicate")
            return None
        self.seen[digest] = self.file_index << 40 | line
        if self.train_group_size and len(row["neg"]) < self.train_group_size - 1:
            self.short_neg += 1
        if self.tokenizer is not None and self.max_tokens:
            for key in ("pos", "neg"):
                self.pending += [(where, f"{key}[{i}]", text) for i, text in enumerate(row[key])]
            if len(self.pending) >= TOKEN_BATCH:
                self.flush_tokens()
        self.report.fixes.update(fixes)
        return row

    def flush_tokens(self) -> None:
        if not self.pending:
            return
        ids = self.tokenizer([text for _, _, text in self.pending], add_special_tokens=True)["input_ids"]
        for (where, key, _), tokens in zip(self.pending, ids):
            if len(tokens) > self.max_tokens:
                self.report.warn(f"{where}: {key}: {len(tokens)} tokens > {self.max_tokens}; "
                                 "FlagEmbedding truncates it (split long passages with bgeft data split-book)")
        self.pending.clear()


def _load_tokenizer(tokenizer):
    if tokenizer is None or not isinstance(tokenizer, (str, os.PathLike)):
        return tokenizer
    from bgeft.data.books import load_tokenizer

    return load_tokenizer(tokenizer)


def check_training_data(paths: list[str | Path], *, tokenizer=None, max_tokens: int | None = None,
                        kd_required: bool = False, train_group_size: int | None = None,
                        fix_out: str | Path | None = None, purpose: str = "training",
                        max_rejects: str | None = None, digests: dict[str, str] | None = None) -> ValidationReport:
    """Check every row FlagEmbedding would read from ``paths`` (files or directories) in one streaming
    pass. ``tokenizer`` (a tokenizer or a local path) with ``max_tokens`` warns about passages FlagEmbedding
    would truncate; ``kd_required`` demands pos_scores/neg_scores; ``fix_out`` writes the valid rows, repaired
    where ``fixes.py`` knows how, and lists the dropped ones in ``fix_out.rejects``. ``purpose``: "training"
    (``neg`` required), "mining" (``neg`` may be missing or empty: mining input) or "auto" (mining for a file
    in which no row has ``neg``). ``digests`` gets the sha256 of each file checked (``str(path)`` -> hex),
    computed from the bytes the check reads."""
    if purpose not in PURPOSES:
        raise UserError(f"--for {purpose}: choose one of {', '.join(PURPOSES)}")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]  # FlagEmbedding's train_data may be one path
    report = ValidationReport()
    rejects = Rejects(fix_out, skip=True, max_rejects=max_rejects) if fix_out is not None else None
    if max_rejects is not None and fix_out is None:
        raise UserError("--max-rejects goes with --fix (the rows --fix leaves out)")
    checker = _Checker(report, kd_required, train_group_size, _load_tokenizer(tokenizer), max_tokens,
                       fixing=fix_out is not None, rejects=rejects)
    files = training_files(paths, report)
    if fix_out is not None and len(files) != 1:
        raise UserError(f"--fix writes one file: give exactly one input file (found {len(files)})")
    if fix_out is not None:
        check_output(fix_out, files, what="--fix")
    target = atomic_writer(fix_out) if fix_out is not None else contextlib.nullcontext()
    with target as out:
        for path in files:
            checker.mining = purpose == "mining" or (purpose == "auto" and _no_row_has_neg(path))
            if checker.mining and purpose == "auto":
                report.warn(f"{path}: no row has neg: checked as mining input (bgeft data mine adds the "
                            "negatives); pass --for training to require them")
            digest = hashlib.sha256() if digests is not None else None
            _check_file(path, checker, report, out, digest)
            if digest is not None:
                digests[str(path)] = digest.hexdigest()
        checker.flush_tokens()
        if rejects is not None:
            report.rejects_line = rejects.finish(report.rows_checked - report.rows_dropped)
    if checker.short_neg:
        report.warn(f"{checker.short_neg} row(s) have fewer than train_group_size-1 = {train_group_size - 1} "
                    "negatives; FlagEmbedding repeats negatives to fill the group")
    return report


def _no_row_has_neg(path: Path) -> bool:
    """Mining input: not one row of the file has a ``neg`` key (unreadable lines are left to the check)."""
    with open_text(path) as src:
        try:
            return not any(isinstance(row, dict) and "neg" in row for _, row in iter_rows(path, src, lambda _: None))
        except UserError:
            return False


def _check_file(path: Path, checker: _Checker, report: ValidationReport, out, digest=None) -> None:
    report.files.append(str(path))
    checker.file_index = len(report.files) - 1
    errors_before = report.error_count
    with open_text(path, digest=digest) as src:
        if src.encoding == "gb18030":
            report.error(f"{path}: encoded as GB18030; FlagEmbedding reads UTF-8 only (bgeft data validate "
                         f"--fix OUT or bgeft data convert rewrite it as UTF-8)", "file: not UTF-8")
        rows = objects = 0
        first_type, mixed_type = None, False
        # prompt/type must be on every row or none: the datasets library fills a missing one with None,
        # which FlagEmbedding then uses as the prompt (or crashes on, for type)
        optional = {key: [0, None] for key in ("prompt", "type")}  # rows without it, first such line

        def bad_line(message: str) -> None:
            report.rows_checked += 1
            report.rows_dropped += 1
            report.error(message, "row: unreadable line")
            if checker.rejects is not None:
                checker.rejects.reject_message(path, src.lineno, message, "row: unreadable line")

        try:
            for line, row in iter_rows(path, src, bad_line):
                rows += 1
                report.rows_checked += 1
                if isinstance(row, dict):
                    objects += 1
                    for key, missing in optional.items():
                        if row.get(key) is None:
                            missing[0] += 1
                            missing[1] = missing[1] or line
                    if isinstance(row.get("type"), str):
                        first_type = first_type or (row["type"], line)
                        if row["type"] != first_type[0] and not mixed_type:
                            mixed_type = True
                            report.error(f"{path}:{line}: type: {row['type']!r} but line {first_type[1]} has "
                                         f"{first_type[0]!r}; FlagEmbedding asserts one type per batch and batches "
                                         "within a file: put each type in its own file", "file: mixed types")
                kept = checker.check(f"{path}:{line}", line, row)
                if kept is not None:
                    if out is not None:
                        out.write(json.dumps(kept, ensure_ascii=False) + "\n")
                else:
                    report.rows_dropped += 1
        except UserError as exc:  # a broken JSON array or undecodable bytes stop this file only
            report.error(str(exc), "file: unreadable")
            return
        for key, (missing, first) in optional.items():
            if 0 < missing < objects:
                report.error(f"{path}:{first}: {key}: missing on {missing} of {objects} rows but set on the others "
                             f"(FlagEmbedding would use None as their {key}); set it on every row or none",
                             f"file: {key} on some rows only")
        if rows == 0 and report.error_count == errors_before:
            report.error(f"{path}: no rows (the datasets library cannot load an empty file; delete it)",
                         "file: empty")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="FILE", help="training .jsonl/.json files or directories")
    parser.add_argument("--strict", action="store_true", help="exit 1 when any error is found")
    parser.add_argument(
        "--fix",
        metavar="OUT",
        help="write the valid rows (first of duplicates) to OUT, repairing what "
        "can be repaired (blank/duplicate items, positives in neg, missing neg of mining input); "
        "dropped rows are listed in OUT.rejects",
    )
    parser.add_argument("--for", dest="purpose", choices=PURPOSES, default="auto",
                        help="training: rows need neg; mining: neg may be missing (bgeft data mine adds it); "
                             "auto (default): mining when no row of a file has neg")
    parser.add_argument("--max-rejects", metavar="N|P%", help="with --fix: fail when more rows than this are dropped")
    parser.add_argument("--kd", action="store_true", help="require pos_scores/neg_scores (knowledge_distillation)")
    parser.add_argument(
        "--train-group-size", type=int, metavar="N", help="warn about rows with fewer negatives than this - 1"
    )
    parser.add_argument("--tokenizer", metavar="PATH", help="local tokenizer to measure passages with")
    parser.add_argument(
        "--max-tokens", type=int, metavar="N", help="warn about passages longer than this (passage_max_len)"
    )
    parser.add_argument("--limit", type=int, default=20, metavar="N", help="messages to print per kind (default 20)")


def run(args: argparse.Namespace) -> int:
    if (args.tokenizer is None) != (args.max_tokens is None):
        raise UserError("--tokenizer and --max-tokens go together")
    report = check_training_data(args.paths, tokenizer=args.tokenizer, max_tokens=args.max_tokens,
                                 kd_required=args.kd, train_group_size=args.train_group_size, fix_out=args.fix,
                                 purpose=args.purpose, max_rejects=args.max_rejects)
    print(report.format(limit=args.limit))
    if args.fix:
        kept = report.rows_checked - report.rows_dropped
        why = "; ".join(f"{n} {reason}" for reason, n in report.reasons.most_common()
                        if not reason.startswith("file"))
        for name, n in report.fixes.most_common():
            print(f"fixed {n} row(s): {FIX_NAMES[name]}")
        print(f"wrote {kept} valid row(s) to {args.fix}; dropped {report.rows_dropped}" + (f" ({why})" if why else ""))
        if report.rows_dropped:
            print(f"dropped rows are listed in {rejects_path(args.fix)}")
    return 1 if args.strict and not report.ok else 0
