"""Recipes: load YAML, apply ``section.key=value`` overrides, resolve paths, validate, to argv.

A recipe has ``task``, ``launch`` and three sections that map 1:1 onto the task's FlagEmbedding
dataclasses (``model``, ``data``, ``training``). Every problem is collected and reported together,
each naming the file and line (or the override) and the fix.
"""
from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from bgeft.config import eval_section, value_checks
from bgeft.config.fe_fields import SECTIONS, load_schema, section_fields
from bgeft.config.tasks import TASKS
from bgeft.config.yamlfile import parse_value, read_yaml, short
from bgeft.errors import UserError, did_you_mean

TOP_KEYS = ("task", "launch", *SECTIONS, "eval")
LAUNCH_FIELDS = {
    "nproc_per_node": "int or 'auto' (all visible GPUs/NPUs; 1 on CPU)",
    "nnodes": "int (usually left to the NNODES environment variable)",
    "deepspeed": "path to a DeepSpeed JSON config, relative to the recipe",
    "device": "auto | cuda | npu | cpu",
    "precision": "auto | bf16 | fp16 | fp32",
    "deterministic": "true | false (full_determinism + the GPU/NPU determinism switches; slower)",
}
# Keys that always hold paths, and keys that hold a path or a hub id (resolved only when path-like).
PATH_KEYS = {("launch", "deepspeed"), ("data", "train_data"), ("data", "cache_path"),
             ("training", "output_dir"), ("training", "logging_dir"), ("model", "cache_dir"), ("eval", "data")}
MAYBE_PATH_KEYS = {("model", "model_name_or_path"), ("model", "tokenizer_name"), ("model", "config_name"),
                   ("model", "peft_model_path"), ("model", "from_peft")}
# Set by bgeft itself (device detection, --resume); a recipe setting them would be silently fought.
MANAGED_KEYS = {("training", "use_cpu"), ("training", "local_rank"), ("training", "deepspeed"),
                ("training", "resume_from_checkpoint")}


@dataclass
class Recipe:
    path: Path
    data: dict
    lines: dict[str, int] = field(default_factory=dict)      # "training.learning_rate" -> line
    origins: dict[str, str] = field(default_factory=dict)    # "training.learning_rate" -> "override TEXT" | "FILE:LINE"

    @property
    def task(self):
        return TASKS[self.data["task"]]

    def section(self, name: str) -> dict:
        return self.data.get(name) or {}

    def where(self, dotted: str) -> str:
        if dotted in self.origins:
            return self.origins[dotted]
        line = self.lines.get(dotted) or self.lines.get(dotted.split(".")[0])
        return f"{self.path}:{line}" if line else str(self.path)


def load(path: str | Path) -> Recipe:
    path = Path(path)
    if not os.path.lexists(path):
        raise UserError(f"{path}: recipe not found (list the shipped ones with `bgeft ls`, copy one with "
                        "`bgeft cp NAME DEST`)")
    data, where = read_yaml(path, "recipe")
    if not isinstance(data, dict):
        raise UserError(f"{path}: a recipe is a YAML mapping with keys {', '.join(TOP_KEYS)}")
    lines = {".".join(map(str, key)): int(loc.rsplit(":", 1)[1]) for key, loc in where.items()
             if 1 <= len(key) <= 2 and all(isinstance(k, str) for k in key)}
    return Recipe(path=path.resolve(), data=data, lines=lines)


def apply_overrides(recipe: Recipe, overrides: list[str], base_dir: Path | None = None) -> Recipe:
    """``section.key=value`` (value parsed as YAML) or ``~section.key`` to delete. Paths given in
    overrides are typed in a shell, so they resolve against ``base_dir`` (the working directory)."""
    out = copy.deepcopy(recipe)
    base_dir = (base_dir or Path.cwd()).resolve()
    for text in overrides:
        delete = text.startswith("~")
        dotted, eq, raw = text[1:].partition("=") if delete else text.partition("=")
        parts = dotted.strip().split(".")
        if delete and eq or (not delete and not eq) or not all(parts) or len(parts) > 2 \
                or (len(parts) == 1 and parts[0] != "task"):
            raise UserError(f"override {short(text)}: expected section.key=value (or ~section.key to delete), "
                            f"with section one of {', '.join(TOP_KEYS[1:])}; e.g. training.learning_rate=1e-5")
        if delete:
            section = out.data.get(parts[0])
            if not isinstance(section, dict) or parts[1] not in section:
                raise UserError(f"override {short(text)}: {dotted.strip()} is not set in {recipe.path}, so there is "
                                "nothing to delete")
            del section[parts[1]]
            continue
        value = parse_value(raw, f"override {short(text)}") if raw.strip() else ""
        if len(parts) == 1:
            out.data["task"] = value
        else:
            _set(out, parts[0], parts[1], value, base_dir, f"override {short(text)}")
        out.origins[dotted] = f"override {short(text)}"
    return out


def merge(recipe: Recipe, settings: dict[str, dict], base_dir: Path, origins: dict[str, str] | None = None) -> Recipe:
    """Settings given as values (``{"training": {"learning_rate": 1e-5}}``, e.g. a pipeline's training
    stage): relative paths resolve against ``base_dir`` (the file that wrote them); ``origins`` says where
    each ``section.key`` was written, for the error messages."""
    out = copy.deepcopy(recipe)
    for section, values in settings.items():
        for key, value in values.items():
            where = (origins or {}).get(f"{section}.{key}") or str(base_dir)
            _set(out, section, key, copy.deepcopy(value), base_dir.resolve(), where)
            out.origins[f"{section}.{key}"] = where
    return out


def _set(recipe: Recipe, section: str, key: str, value, base_dir: Path, where: str) -> None:
    sec = recipe.data.setdefault(section, {})
    if not isinstance(sec, dict):
        raise UserError(f"{where}: {section} is not a mapping in {recipe.path}")
    if (section, key) in PATH_KEYS | MAYBE_PATH_KEYS:
        value = _resolve(value, base_dir, maybe=(section, key) in MAYBE_PATH_KEYS)
    sec[key] = value


def _resolve(value, base: Path, maybe: bool = False):
    if isinstance(value, list):
        return [_resolve(v, base, maybe) for v in value]
    if not isinstance(value, str) or not value:
        return value
    p = Path(value).expanduser()
    if p.is_absolute():
        return str(p)
    if maybe and not (value.startswith((".", "~")) or (base / p).exists()):
        return value  # a hub id such as BAAI/bge-m3
    return str((base / p).resolve())


def resolve_paths(recipe: Recipe) -> Recipe:
    """Relative paths in the file resolve against the recipe's own directory."""
    out = copy.deepcopy(recipe)
    for sec, key in PATH_KEYS | MAYBE_PATH_KEYS:
        section = out.data.get(sec)
        if isinstance(section, dict) and key in section and f"{sec}.{key}" not in out.origins:
            section[key] = _resolve(section[key], recipe.path.parent, maybe=(sec, key) in MAYBE_PATH_KEYS)
    return out


def _coerce(value, spec: dict):
    """Return (value, problem). YAML reads ``1e-5`` as a string: numbers given as strings are accepted."""
    kind = spec["type"]
    if kind.startswith("list["):
        items = value if isinstance(value, list) else [value]
        inner = {"type": kind[5:-1]}
        out = []
        for item in items:
            v, problem = _coerce(item, inner)
            if problem:
                return value, f"list item {short(item)}: {problem}"
            out.append(v)
        return out, None
    if kind == "bool":
        if isinstance(value, bool):
            return value, None
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true", None
        return value, f"expected true or false, got {short(value)}"
    if kind in ("int", "float"):
        if isinstance(value, bool):
            return value, f"expected a number, got {short(value)}"
        try:
            num = float(value) if kind == "float" else int(value) if isinstance(value, (int, str)) else None
        except (TypeError, ValueError):
            num = None
        if num is None or (kind == "int" and isinstance(value, float)):
            return value, f"expected {'an integer' if kind == 'int' else 'a number'}, got {short(value)}"
        return (value if isinstance(value, int) and not isinstance(value, bool) else num), None
    if kind == "str":
        if isinstance(value, (dict, list)):
            return value, f"expected a single value, got {type(value).__name__}"
        if isinstance(value, bool):  # YAML 1.1 reads no/yes/off/on as booleans: `save_strategy: no`
            choices = [str(c) for c in spec.get("choices") or []]
            value = ("yes" if value else "no") if "no" in choices or "yes" in choices else str(value).lower()
        value = value if isinstance(value, str) else str(value)
        if spec.get("choices") and value not in [str(c) for c in spec["choices"]]:
            return value, f"{short(value)} is not one of {', '.join(map(str, spec['choices']))}"
        return value, None
    return value, None


def _option_like(value) -> str | None:
    """A value that would become an argv word the training command reads as an option (``--output_dir``
    hidden in a list would redirect the run); numbers such as -1 are fine."""
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str) and item.startswith("-"):
            try:
                float(item)
            except ValueError:
                return (f"value {short(item)} starts with '-', so the training command would read it as an "
                        "option; a value cannot start with '-' (set each option under its own key)")
    return None


def check(recipe: Recipe, schema: dict | None = None) -> tuple[Recipe, list[str]]:
    """Static validation (no torch): returns the recipe with coerced values, and every problem."""
    schema = schema or load_schema()[0]
    out = copy.deepcopy(recipe)
    errors: list[str] = []

    def err(dotted: str, problem: str):
        errors.append(f"{out.where(dotted)}: {dotted}: {problem}")

    for key in out.data:
        if key not in TOP_KEYS:
            err(str(key)[:80], f"unknown section{did_you_mean(str(key), TOP_KEYS)}; a recipe has {', '.join(TOP_KEYS)}")
    task = out.data.get("task")
    if task is None:
        err("task", f"missing; set it to one of {', '.join(TASKS)}")
        return out, errors
    if not isinstance(task, str) or task not in TASKS:
        hint = did_you_mean(task, TASKS) if isinstance(task, str) else ""
        err("task", f"unknown task {short(task)}{hint}; tasks: {', '.join(TASKS)}")
        return out, errors
    for sec in ("launch", *SECTIONS):
        if not isinstance(out.data.get(sec) or {}, dict):
            err(sec, "must be a mapping of key: value")
            out.data[sec] = {}
    for key, value in list(out.section("launch").items()):
        if key not in LAUNCH_FIELDS:
            err(f"launch.{key}",
                f"unknown key{did_you_mean(key, LAUNCH_FIELDS)}; launch keys: {', '.join(LAUNCH_FIELDS)}")
        elif key in ("nproc_per_node", "nnodes") and not (value == "auto" and key == "nproc_per_node") \
                and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            err(f"launch.{key}", f"expected {LAUNCH_FIELDS[key]}, got {short(value)}")
        elif key == "device" and value not in ("auto", "cuda", "npu", "cpu"):
            err(f"launch.{key}", f"expected {LAUNCH_FIELDS[key]}, got {short(value)}")
        elif key == "precision" and value not in ("auto", "bf16", "fp16", "fp32"):
            err(f"launch.{key}", f"expected {LAUNCH_FIELDS[key]}, got {short(value)}")
        elif key == "deterministic" and not isinstance(value, bool):
            err(f"launch.{key}", f"expected {LAUNCH_FIELDS[key]}, got {short(value)}")
    for sec in SECTIONS:
        fields = section_fields(schema, task, sec)
        section = out.data.setdefault(sec, {}) or {}
        out.data[sec] = section
        for key in list(section):
            dotted = f"{sec}.{key}"
            if (sec, key) in MANAGED_KEYS:
                hint = {
                    "deepspeed": "set launch.deepspeed instead",
                    "resume_from_checkpoint": "use `bgeft train --resume`",
                    "use_cpu": "set launch.device: cpu instead",
                }.get(key, "bgeft sets it")
                err(dotted, f"managed by bgeft: {hint}")
            elif key not in fields:
                err(dotted[:120], f"unknown key{did_you_mean(key, fields)}; it is not a field of "
                            f"{schema['tasks'][task][sec].split(':')[1]}")
            elif section[key] is None:
                del section[key]
            else:
                section[key], problem = _coerce(section[key], fields[key])
                problem = problem or _option_like(section[key])
                if problem:
                    err(dotted, problem)
        for key, spec in fields.items():
            if spec["required"] and key not in section:
                err(f"{sec}.{key}", f"missing (required by {schema['tasks'][task][sec].split(':')[1]})")
    errors += _semantic(out)
    errors += [f"{out.where(key)}: {key}: {problem}" for key, problem in value_checks.check(out)]
    errors += eval_section.check(out)  # the eval: section and the training keys it works with
    return out, errors


def _unreadable(path: Path) -> str | None:
    """Why a data path would hang or fail the reader: a FIFO, device or socket (also inside a folder)."""
    from bgeft.safety import check_input

    files = [path]
    if path.is_dir():
        files = [p for p in path.iterdir() if p.suffix in (".json", ".jsonl")]
    for f in files:
        try:
            check_input(f, "file", allow_dir=f is path)
        except UserError as exc:
            return str(exc)[len("file "):]
    return None


def _semantic(r: Recipe) -> list[str]:
    errors: list[str] = []
    data, training, launch = r.section("data"), r.section("training"), r.section("launch")

    def err(dotted: str, problem: str):
        errors.append(f"{r.where(dotted)}: {dotted}: {problem}")

    if not data.get("train_data"):
        err("data.train_data", "missing; give one or more JSONL files or directories of them")
    for p in data.get("train_data") or []:
        if isinstance(p, str) and not Path(p).exists():
            err("data.train_data", f"{p} does not exist; fix the path (relative paths resolve against the recipe file)")
        elif isinstance(p, str):
            problem = _unreadable(Path(p))
            if problem:
                err("data.train_data", problem)
    if not training.get("output_dir"):
        err("training.output_dir", "missing; say where the trained model and checkpoints go")
    ds = launch.get("deepspeed")
    if ds:
        if Path(ds).is_dir():
            err(
                "launch.deepspeed",
                f"{ds} is a directory; give the DeepSpeed JSON file in it (e.g. ds_configs/zero2.json)",
            )
        elif not Path(ds).exists():
            err("launch.deepspeed", f"{ds} does not exist; use one of ds_configs/zero*.json")
        elif _unreadable(Path(ds)):
            err("launch.deepspeed", _unreadable(Path(ds)))
        else:
            try:
                json.loads(Path(ds).read_text(encoding="utf-8"))
            except ValueError as exc:
                err("launch.deepspeed", f"{ds} is not valid JSON ({exc})")
    if training.get("bf16") and training.get("fp16"):
        err("training.bf16", "bf16 and fp16 are both true; choose one (or set launch.precision)")
    if training.get("use_self_distill") and not training.get("unified_finetuning"):
        err("training.use_self_distill", "needs training.unified_finetuning: true (self-distillation "
                                         "distils the unified dense+sparse+colbert score)")
    if r.task.is_reranker and not training.get("dataloader_drop_last"):
        err("training.dataloader_drop_last", "must be true for rerankers: FlagEmbedding's reranker loss "
                                             "reshapes scores by batch size and crashes on a short last batch")
    return errors


def validate(recipe: Recipe) -> Recipe:
    """Resolve paths + static check; raise one UserError listing every problem."""
    checked, errors = check(resolve_paths(recipe))
    if errors:
        raise UserError(f"{len(errors)} problem(s) in {recipe.path}:\n  " + "\n  ".join(errors))
    return checked


def to_argv(section: dict) -> list[str]:
    """FlagEmbedding's HfArgumentParser command line for one section (lists as nargs)."""
    argv: list[str] = []
    for key, value in section.items():
        if value is None or value == []:
            continue
        if isinstance(value, (dict,)):
            value = json.dumps(value)
        values = value if isinstance(value, list) else [value]
        words = [str(v) if not isinstance(v, bool) else ("True" if v else "False") for v in values]
        problem = _option_like(words)
        if problem:  # check() refuses these first; this keeps to_argv safe on its own
            raise UserError(f"{key}: {problem}")
        argv.append(f"--{key}")
        argv += words
    return argv
