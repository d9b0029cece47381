"""The training-row schema FlagEmbedding reads, checked one row at a time.

FlagEmbedding's embedder datasets index ``pos`` and ``neg`` at random (``random.choice`` on ``pos``; ``neg``
sampled with repeats when short, a division by ``len(neg)`` when empty), look up teacher scores at the
same indices, and prefix ``prompt`` to the query. Every problem below is one that crashes a run or
silently trains on wrong text.
"""
from __future__ import annotations

import math

STRING_KEYS = ("prompt", "type")


def row_problems(row: object, *, kd_required: bool = False, allow_empty_neg: bool = False) -> list[tuple[str, str]]:
    """``(key, problem)`` pairs for one parsed JSON value; an empty list means the row is usable."""
    if not isinstance(row, dict):
        return [("row", f"expected a JSON object, found {kind(row)}")]
    problems: list[tuple[str, str]] = []
    query = row.get("query")
    if "query" not in row:
        problems.append(("query", "missing"))
    elif not isinstance(query, str):
        problems.append(("query", f"expected a string, found {kind(query)}"))
    elif not query.strip():
        problems.append(("query", "empty string"))

    for key in ("pos", "neg"):
        problems.extend(_text_list_problems(row, key, allow_empty=key == "neg" and allow_empty_neg))

    for text_key, score_key in (("pos", "pos_scores"), ("neg", "neg_scores")):
        if score_key in row:
            problems.extend(_score_problems(row, text_key, score_key))
        elif kd_required:
            problems.append((score_key, "missing (knowledge_distillation needs teacher scores on every row; "
                                        "run bgeft data score)"))

    for key in STRING_KEYS:
        if key in row and not isinstance(row[key], str):
            problems.append((key, f"expected a string, found {kind(row[key])}"))
    if "batch_size" in row and (isinstance(row["batch_size"], bool) or not isinstance(row["batch_size"], int)
                                or row["batch_size"] < 1):
        problems.append(("batch_size", f"expected a positive integer, found {row['batch_size']!r}"))

    if isinstance(query, str) and query.strip() and isinstance(row.get("pos"), list):
        stripped = query.strip()
        for i, text in enumerate(row["pos"]):
            if isinstance(text, str) and text.strip() == stripped:
                problems.append((f"pos[{i}]", "identical to the query (teaches nothing)"))
                break
    return problems


def _text_list_problems(row: dict, key: str, allow_empty: bool) -> list[tuple[str, str]]:
    if key not in row:
        return [(key, "missing" + (" (use [] and run bgeft data mine)" if key == "neg" else ""))]
    value = row[key]
    if not isinstance(value, list):
        return [(key, f"expected a list of strings, found {kind(value)}")]
    if not value and not allow_empty:
        fix = "; run bgeft data mine to add hard negatives" if key == "neg" else ""
        return [(key, f"empty list{fix}")]
    for i, text in enumerate(value):
        if not isinstance(text, str):
            return [(f"{key}[{i}]", f"expected a string, found {kind(text)}")]
        if not text.strip():
            return [(f"{key}[{i}]", "empty string")]
    return []


def _score_problems(row: dict, text_key: str, score_key: str) -> list[tuple[str, str]]:
    scores = row[score_key]
    if not isinstance(scores, list):
        return [(score_key, f"expected a list of numbers, found {kind(scores)}")]
    for i, score in enumerate(scores):
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            return [(f"{score_key}[{i}]", f"expected a number, found {kind(score)}")]
        if not math.isfinite(score):
            return [(f"{score_key}[{i}]", f"non-finite score {score}")]
    texts = row.get(text_key)
    if isinstance(texts, list) and len(scores) != len(texts):
        return [(score_key, f"{len(scores)} scores for {len(texts)} {text_key} passages")]
    return []


def kind(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)
