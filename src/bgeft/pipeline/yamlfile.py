"""Reading a pipeline file (through the one YAML loader) and its ``section.key=value`` overrides."""
from __future__ import annotations

import re
from pathlib import Path

from bgeft.config.yamlfile import parse_value, short
from bgeft.config.yamlfile import read_yaml as _read_yaml
from bgeft.errors import UserError

_EXP_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def read_yaml(path: Path) -> tuple[dict, dict[tuple, str]]:
    """The pipeline file through the one YAML loader (bgeft.config.yamlfile), which must hold a mapping."""
    if not path.exists() and not path.is_symlink():
        raise UserError(f"{path}: no such pipeline file (shipped ones: bgeft pipeline ls)")
    data, where = _read_yaml(path, "pipeline file")
    if not isinstance(data, dict):
        raise UserError(f"{path}:1: a pipeline file is a mapping of stages (corpus:, queries:, ...)")
    return data, where


def apply_overrides(data: dict, where: dict, overrides: list[str]) -> None:
    """``a.b=value`` sets (value parsed as YAML), ``~a.b`` deletes; records where each came from."""
    for item in overrides:
        delete = item.startswith("~")
        key, sep, raw = (item[1:], "", "") if delete else item.partition("=")
        parts = tuple(p for p in key.split(".") if p)
        if not parts or (not delete and not sep) or (delete and "=" in key):
            raise UserError(f"override {short(item)}: expected section.key=value (or ~section.key to delete)")
        node = data
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None and not delete:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                dotted = ".".join(parts[: i + 1])
                raise UserError(f"override {short(item)}: {dotted} is not a section, so it has no keys")
            node = nxt
        if delete:
            if parts[-1] not in node:
                raise UserError(f"override {short(item)}: {key} is not set, so there is nothing to delete")
            del node[parts[-1]]
            continue
        value = parse_value(raw, f"override {short(item)}")
        if isinstance(value, str) and _EXP_FLOAT.fullmatch(value):
            value = float(value)  # YAML 1.1 reads 3e-5 (no dot) as a string
        node[parts[-1]] = value
        for i in range(1, len(parts) + 1):
            where.setdefault(parts[:i], f"override {short(item)}")
        where[parts] = f"override {short(item)}"
