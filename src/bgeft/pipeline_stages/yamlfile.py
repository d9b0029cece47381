"""Reading a pipeline file with the line of every key, and ``section.key=value`` overrides."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from ..errors import UserError

_EXP_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _construct(node, loader, path: tuple, where: dict, label: str, errors: list):
    where[path] = f"{label}:{node.start_mark.line + 1}"
    if isinstance(node, yaml.MappingNode):
        out: dict = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node)
            if not isinstance(key, str):
                errors.append(f"{label}:{key_node.start_mark.line + 1}: keys must be strings, got {key!r}")
                continue
            if key in out:
                errors.append(f"{label}:{key_node.start_mark.line + 1}: {'.'.join(path + (key,))}: "
                              "duplicate key (the earlier one would be silently ignored): keep one")
            out[key] = _construct(value_node, loader, path + (key,), where, label, errors)
            where[path + (key,)] = f"{label}:{key_node.start_mark.line + 1}"
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(v, loader, path + (i,), where, label, errors) for i, v in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def read_yaml(path: Path) -> tuple[dict, dict[tuple, str]]:
    """Parse ``path`` into a dict and a map of key path -> ``file:line``."""
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{path}: no such pipeline file (shipped ones: bgeft pipeline ls)") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}): save it as UTF-8") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{label}:{mark.line + 1}" if mark else label
        raise UserError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    finally:
        loader.dispose()
    if node is None or not isinstance(node, yaml.MappingNode):
        raise UserError(f"{label}:1: a pipeline file is a mapping of stages (corpus:, queries:, ...)")
    where: dict[tuple, str] = {}
    errors: list[str] = []
    data = _construct(node, yaml.SafeLoader(""), (), where, label, errors)
    if errors:
        raise UserError("\n".join(errors))
    return data, where


def apply_overrides(data: dict, where: dict, overrides: list[str]) -> None:
    """``a.b=value`` sets (value parsed as YAML), ``~a.b`` deletes; records where each came from."""
    for item in overrides:
        delete = item.startswith("~")
        key, sep, raw = (item[1:], "", "") if delete else item.partition("=")
        parts = tuple(p for p in key.split(".") if p)
        if not parts or (not delete and not sep) or (delete and "=" in key):
            raise UserError(f"override {item!r}: expected section.key=value (or ~section.key to delete)")
        node = data
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None and not delete:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                dotted = ".".join(parts[: i + 1])
                raise UserError(f"override {item!r}: {dotted} is not a section, so it has no keys")
            node = nxt
        if delete:
            if parts[-1] not in node:
                raise UserError(f"override {item!r}: {key} is not set, so there is nothing to delete")
            del node[parts[-1]]
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str) and _EXP_FLOAT.fullmatch(value):
            value = float(value)  # YAML 1.1 reads 3e-5 (no dot) as a string
        node[parts[-1]] = value
        for i in range(1, len(parts) + 1):
            where.setdefault(parts[:i], f"override {item!r}")
        where[parts] = f"override {item!r}"
