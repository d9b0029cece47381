"""Field snapshot of FlagEmbedding's argument dataclasses, so recipes validate without torch.

Importing FlagEmbedding or ``transformers.TrainingArguments`` pulls in torch (seconds). ``bgeft
validate`` must stay fast, so it checks keys and types against a JSON snapshot of the very same
dataclasses, taken for the installed FlagEmbedding + transformers versions. When the installed
versions differ from the snapshot's, the fields are read live from the dataclasses instead (slower,
still exact). ``python -m bgeft.config.fe_fields`` rewrites the snapshot; a test keeps it equal to the live
dataclasses.
"""
from __future__ import annotations

import dataclasses
import enum
import json
import sys
import typing
from importlib import metadata
from pathlib import Path

from bgeft.config.tasks import TASKS

SNAPSHOT = Path(__file__).with_name("fe_fields_snapshot.json")
SECTIONS = ("model", "data", "training")


def installed_versions() -> dict[str, str]:
    out = {}
    for dist in ("FlagEmbedding", "transformers"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "missing"
    return out


def _type_name(tp) -> tuple[str, bool, list | None]:
    """(kind, optional, choices) for a dataclass field type."""
    optional = False
    origin = typing.get_origin(tp)
    if origin is typing.Union or (sys.version_info >= (3, 10) and origin is __import__("types").UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        if len(args) == 1:
            kind, _, choices = _type_name(args[0])
            return kind, optional, choices
        enums = [a for a in args if isinstance(a, type) and issubclass(a, enum.Enum)]
        if all(a is str or a in enums for a in args):  # e.g. IntervalStrategy | str
            return "str", optional, [m.value for e in enums for m in e] or None
        return "any", optional, None
    if origin in (list, list):
        (inner,) = typing.get_args(tp) or (str,)
        return f"list[{_type_name(inner)[0]}]", optional, None
    if origin is typing.Literal:
        return "str", optional, list(typing.get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "str", optional, [m.value for m in tp]
    if tp in (bool, int, float, str):
        return tp.__name__, optional, None
    if tp is dict or origin is dict:
        return "dict", optional, None
    return "any", optional, None


def describe(cls) -> dict[str, dict]:
    hints = typing.get_type_hints(cls)
    fields = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        kind, optional, choices = _type_name(hints.get(f.name, str))
        if f.metadata.get("nargs") in ("+", "*") and not kind.startswith("list"):
            kind = f"list[{kind}]"
        choices = f.metadata.get("choices", choices)
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        fields[f.name] = {"type": kind, "optional": optional, "required": required}
        if choices:
            fields[f.name]["choices"] = [c.value if isinstance(c, enum.Enum) else c for c in choices]
    return fields


def live_schema() -> dict:
    classes: dict[str, dict] = {}
    tasks: dict[str, dict[str, str]] = {}
    for task in TASKS.values():
        refs = dict(zip(SECTIONS, (task.model_args, task.data_args, task.training_args)))
        tasks[task.name] = refs
        for ref in refs.values():
            if ref not in classes:
                module, _, attr = ref.partition(":")
                import importlib
                classes[ref] = describe(getattr(importlib.import_module(module), attr))
    return {"versions": installed_versions(), "tasks": tasks, "classes": classes}


def load_schema() -> tuple[dict, bool]:
    """(schema, from_snapshot). Falls back to the live dataclasses when versions differ."""
    if SNAPSHOT.is_file():
        snap = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
        if snap.get("versions") == installed_versions() and set(snap["tasks"]) == set(TASKS):
            return snap, True
    try:
        return live_schema(), False
    except Exception as exc:  # FlagEmbedding or transformers broken by a version bgeft was not tested with
        from bgeft.errors import UserError
        from bgeft.train.envcheck import broken_flagembedding

        raise UserError(f"cannot read FlagEmbedding's arguments: {broken_flagembedding(exc)}") from None


def section_fields(schema: dict, task: str, section: str) -> dict[str, dict]:
    return schema["classes"][schema["tasks"][task][section]]


def write_snapshot(path: Path = SNAPSHOT) -> Path:
    path.write_text(json.dumps(live_schema(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write_snapshot())
