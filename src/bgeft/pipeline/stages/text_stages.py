"""Stages that turn text into data: ``corpus`` (split books / read a corpus), ``queries`` (a question
file mapped onto passages, or generated questions) and ``split`` (train / dev / test by passage)."""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

from bgeft.errors import UserError

_SPACE = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _SPACE.sub("", text)


def _write_jsonl(path: Path, rows) -> int:
    from bgeft.data.records import write_jsonl

    return write_jsonl(path, rows)


def _read_jsonl(path: Path):
    from bgeft.data.records import iter_json_lines

    return iter_json_lines(path)


def run_corpus(ctx, stage, resume: bool) -> dict:
    sec = ctx.spec.data["corpus"]
    out = stage.dir / "corpus.jsonl"
    if sec["books"]:
        from bgeft.data.books import split_books

        tokenizer = ctx.path(stage, "tokenizer") if sec["max_tokens"] else None
        summary = split_books(sec["books"], out, by=sec["by"], max_tokens=sec["max_tokens"],
                              overlap=sec["overlap"], tokenizer=tokenizer)
        ctx.summary(summary.lines())
        return {"passages": summary.passages, "chapters": summary.chapters}
    from bgeft.data.records import read_corpus

    seen: set[str] = set()
    rows = []
    for pid, text in read_corpus(sec["file"]):
        if pid in seen:
            raise UserError(f"{sec['file']}: passage id {pid!r} appears twice; corpus ids must be unique")
        seen.add(pid)
        rows.append({"_id": pid, "title": "", "text": text})
    n = _write_jsonl(out, rows)
    ctx.log(f"{n} passages from {sec['file']}")
    return {"passages": n}


def _corpus(ctx, stage) -> list[dict]:
    return [row for _, row in _read_jsonl(Path(ctx.path(stage, "corpus")))]


def map_questions(path: Path, passages: list[dict]) -> tuple[list[dict], list[str]]:
    """Questions ``{"query", "answer_hint"?, "pos"?, "lang"?}`` -> rows with the ids of the passages
    holding their answer (``answer_hint`` found verbatim, whitespace ignored; or ``pos`` texts)."""
    normed = [(p["_id"], _norm(p["text"])) for p in passages]
    by_text = {_norm(p["text"]): p["_id"] for p in passages}
    mapped, missed = [], []
    for lineno, row in _read_jsonl(path):
        query = row.get("query")
        if not isinstance(query, str) or not query.strip():
            raise UserError(f"{path}:{lineno}: query: expected a non-empty string "
                            '(rows look like {"query": "...", "answer_hint": "a verbatim span of the answer"})')
        hint, pos = row.get("answer_hint"), row.get("pos")
        if isinstance(hint, str) and hint.strip():
            needle = _norm(hint)
            ids = [pid for pid, text in normed if needle in text]
        elif isinstance(pos, list) and pos and all(isinstance(x, str) for x in pos):
            ids = [by_text[_norm(x)] for x in pos if _norm(x) in by_text]
        else:
            raise UserError(f"{path}:{lineno}: needs answer_hint (a verbatim span of the passage that answers "
                            "it) or pos (the answering passages' texts)")
        if not ids:
            missed.append(f"{path}:{lineno}: {query[:40]!r}: its answer was found in no passage")
            continue
        mapped.append({"_id": f"q{lineno}", "text": query.strip(), "lang": row.get("lang", ""),
                       "positives": sorted(set(ids))})
    return mapped, missed


def run_queries(ctx, stage, resume: bool) -> dict:
    passages = _corpus(ctx, stage)
    if ctx.has(stage, "file"):
        path = Path(ctx.path(stage, "file"))
    else:
        path = stage.dir / "generated.jsonl"
        _generate(ctx, stage, path)
    rows, missed = map_questions(path, passages)
    for line in missed[:5]:
        ctx.log(f"warning: {line}")
    if len(missed) > 5:
        ctx.log(f"warning: ... and {len(missed) - 5} more questions without an answering passage")
    if len(rows) < 3:
        raise UserError(f"{path}: only {len(rows)} question(s) matched a passage of the corpus; a pipeline needs "
                        "at least 3 (train, dev and test); check answer_hint spans are copied verbatim from the book")
    _write_jsonl(stage.dir / "queries.jsonl", rows)
    ctx.log(f"{len(rows)} questions mapped to passages ({len(missed)} without an answering passage)")
    return {"queries": len(rows), "unmatched": len(missed)}


def _generate(ctx, stage, out: Path) -> None:
    import inspect

    from bgeft.data.querygen import generate_queries

    options = dict(ctx.spec.data["queries"]["generate"])
    if "api_key" in options:
        raise UserError(f"{ctx.spec.path}: queries.generate.api_key: never write the key into a file; export it "
                        "and name the variable with api_key_env (default OPENAI_API_KEY)")
    accepted = inspect.signature(generate_queries).parameters
    unknown = [k for k in options if k not in accepted]
    if unknown:
        raise UserError(f"{ctx.spec.path}: queries.generate: unknown option(s) {', '.join(unknown)}; "
                        f"it takes: {', '.join(k for k in accepted if k not in ('corpus', 'out'))}")
    generate_queries(ctx.path(stage, "corpus"), out, **options)


def _components(queries: list[dict]) -> list[list[dict]]:
    """Groups of questions that share any answering passage (so a passage is in one split only)."""
    parent: dict[str, str] = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for q in queries:
        for pid in q["positives"][1:]:
            parent[find(pid)] = find(q["positives"][0])
    groups: dict[str, list[dict]] = {}
    for q in queries:
        groups.setdefault(find(q["positives"][0]), []).append(q)
    return [groups[k] for k in sorted(groups)]


def write_beir(dest: Path, passages: list[dict], queries: list[dict]) -> None:
    (dest / "qrels").mkdir(parents=True, exist_ok=True)
    _write_jsonl(dest / "corpus.jsonl", ({"_id": p["_id"], "title": p.get("title", ""), "text": p["text"]}
                                         for p in passages))
    _write_jsonl(dest / "queries.jsonl", ({"_id": q["_id"], "text": q["text"], "lang": q["lang"]} for q in queries))
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q['_id']}\t{pid}\t1" for q in queries for pid in q["positives"]]
    (dest / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_split(ctx, stage, resume: bool) -> dict:
    sec = ctx.spec.data["split"]
    passages = _corpus(ctx, stage)
    text_of = {p["_id"]: p["text"] for p in passages}
    queries = [row for _, row in _read_jsonl(Path(ctx.path(stage, "queries")) / "queries.jsonl")]
    groups = _components(queries)
    random.Random(sec["seed"]).shuffle(groups)
    n = len(queries)
    want = {"dev": max(1, round(n * sec["dev"])), "test": round(n * sec["test"])}
    parts: dict[str, list[dict]] = {"dev": [], "test": [], "train": []}
    for group in groups:
        name = next((s for s in ("dev", "test") if len(parts[s]) < want[s]), "train")
        parts[name].extend(group)
    if not parts["train"]:
        raise UserError(f"split: no training questions left ({n} questions, dev={sec['dev']}, test={sec['test']}); "
                        "lower split.dev / split.test or add questions")
    held_out = {pid for s in ("dev", "test") for q in parts[s] for pid in q["positives"]}
    train_rows = [{"query": q["text"], "pos": [text_of[pid] for pid in q["positives"]], "neg": []}
                  for q in parts["train"]]
    _write_jsonl(stage.dir / "train.jsonl", train_rows)
    _write_jsonl(stage.dir / "train_corpus.jsonl", (p for p in passages if p["_id"] not in held_out))
    for name in ("dev", "test"):
        if parts[name]:
            write_beir(stage.dir / name, passages, parts[name])
    counts = {k: len(v) for k, v in parts.items()}
    (stage.dir / "split.json").write_text(json.dumps({"questions": counts, "held_out_passages": len(held_out)},
                                                     indent=2) + "\n", encoding="utf-8")
    ctx.log(f"questions: train {counts['train']}, dev {counts['dev']}, test {counts['test']}; "
            f"{len(held_out)} dev/test answer passages kept out of the training pool")
    return counts
