"""Recipe values, not only types: settings FlagEmbedding's dataclasses accept but training cannot use.

``check(recipe)`` returns ``(dotted key, problem)`` pairs for values set in the recipe that are out of
range (a zero learning rate trains nothing; ``max_steps: 0`` or ``num_train_epochs: 0`` stops before the
first step; a zero batch size or temperature crashes in the first step; ``save_steps: 0`` divides by zero),
and for max lengths beyond what the model's position embeddings hold (read from a local ``config.json``;
a hub id is not looked up). ``recipe.check`` reports them with the file:line of each key, together with
every other problem, before anything is written to ``output_dir``.
"""
from __future__ import annotations

import json
from pathlib import Path

# (section, key) -> (lowest allowed, lowest is allowed?, what to write instead)
LOWER_BOUNDS = {
    ("training", "learning_rate"): (0, False, "e.g. 1e-5 (embedders) or 6e-5 (rerankers)"),
    ("training", "per_device_train_batch_size"): (1, True, "e.g. 4"),
    ("training", "per_device_eval_batch_size"): (1, True, "e.g. 8"),
    ("training", "gradient_accumulation_steps"): (1, True, "1 for no accumulation"),
    ("training", "num_train_epochs"): (0, False, "e.g. 1 (or set max_steps)"),
    ("training", "temperature"): (0, False, "e.g. 0.02"),
    ("training", "save_steps"): (0, False, "a number of steps, e.g. 500 (or a fraction < 1 of all steps)"),
    ("training", "logging_steps"): (0, False, "a number of steps, e.g. 10 (or a fraction < 1 of all steps)"),
    ("training", "eval_steps"): (0, False, "a number of steps, e.g. 500 (or a fraction < 1 of all steps)"),
    ("training", "warmup_steps"): (0, True, "0 for no warm-up, a step count, or a fraction < 1 of all steps"),
    ("training", "weight_decay"): (0, True, "0 for none, e.g. 0.01"),
    ("training", "max_grad_norm"): (0, True, "e.g. 1.0"),
    ("data", "query_max_len"): (1, True, "e.g. 64"),
    ("data", "passage_max_len"): (1, True, "e.g. 512"),
    ("data", "max_len"): (1, True, "e.g. 512"),
}
LENGTH_KEYS = ("query_max_len", "passage_max_len", "max_len")
# RoBERTa-style models (XLM-R, BGE-M3, bge-reranker) keep two positions for the padding offset
PADDING_OFFSET_TYPES = {"roberta": 2, "xlm-roberta": 2, "camembert": 2, "longformer": 2}


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check(recipe) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    sections = {name: recipe.section(name) for name in ("model", "data", "training")}
    for (sec, key), (low, inclusive, fix) in LOWER_BOUNDS.items():
        value = sections[sec].get(key)
        if not _number(value):
            continue
        if value < low or (value == low and not inclusive):
            bound = f">= {low}" if inclusive else f"> {low}"
            problems.append((f"{sec}.{key}", f"{value!r} is out of range: must be {bound}; {fix}"))
    training, data = sections["training"], sections["data"]
    steps = training.get("max_steps")
    if _number(steps) and (steps == 0 or steps < -1):
        problems.append(("training.max_steps", f"{steps!r} trains nothing: give a positive number of optimizer steps, "
                                               "or -1 (the default) to let num_train_epochs decide"))
    group = data.get("train_group_size")
    if _number(group):
        least = 2 if recipe.task.is_reranker else 1
        if group < least:
            why = ("a reranker scores each query's positive against its negatives: with fewer than 2 there is "
                   "nothing to rank" if recipe.task.is_reranker else "each query needs its positive")
            problems.append(("data.train_group_size", f"{group!r} is out of range: must be >= {least} ({why}); "
                                                      "e.g. 8 (1 positive + 7 negatives)"))
    problems += _length_problems(sections["model"], data)
    return problems


def model_positions(model: object) -> tuple[int, str] | None:
    """``(usable positions, where it was read)`` from a local model directory's config.json, else None."""
    if not isinstance(model, str) or not (Path(model) / "config.json").is_file():
        return None
    try:
        config = json.loads((Path(model) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # an unreadable config is reported when the model loads
    if not isinstance(config, dict):
        return None
    positions = config.get("max_position_embeddings")
    if not _number(positions) or positions <= 0:
        return None
    offset = PADDING_OFFSET_TYPES.get(str(config.get("model_type")), 0)
    return int(positions) - offset, str(Path(model) / "config.json")


def _length_problems(model: dict, data: dict) -> list[tuple[str, str]]:
    found = model_positions(model.get("model_name_or_path"))
    if found is None:
        return []
    usable, where = found
    problems = []
    for key in LENGTH_KEYS:
        value = data.get(key)
        if _number(value) and value > usable:
            problems.append((f"data.{key}", f"{value!r} is longer than the model can read: {where} allows "
                                            f"{usable} tokens (max_position_embeddings); set data.{key}: "
                                            f"{usable} or less"))
    return problems
