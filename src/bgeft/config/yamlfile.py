"""The one YAML loader (recipes and pipeline files): the line of every key, and hostile files refused.

``read_yaml(path, what)`` returns ``(data, where)`` where ``where`` maps a key path (a tuple) to
``file:line``. Refused, each with one message naming the file (and line) and the fix:

* not UTF-8 (a UTF-16 file, Latin-1 bytes), or not a regular file (a FIFO would hang the read);
* invalid YAML; nesting deeper than :data:`MAX_DEPTH` (``[[[[…`` would overflow Python's stack);
* aliases that expand to more than :data:`MAX_VALUES` values (an "alias bomb": a few hundred bytes
  that expand to gigabytes once walked or printed);
* duplicate keys (YAML would silently keep the last) and keys that are not strings.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from bgeft.errors import UserError
from bgeft.safety import check_input

MAX_DEPTH = 64          # mappings/sequences inside each other
MAX_VALUES = 100_000    # scalars + collections after expanding aliases
MAX_BYTES = 10 * 1024 * 1024


def short(value, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: error messages stay short, whatever the value."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _read_text(path: Path, what: str) -> str:
    check_input(path, what)
    if os.path.getsize(path) > MAX_BYTES:
        raise UserError(f"{path}: {what} is larger than {MAX_BYTES // (1024 * 1024)} MB; is it the right file?")
    raw = path.read_bytes()
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(raw) > 1 and b"\x00" in raw[:2]):
        raise UserError(f"{path}: {what} is UTF-16 text; save it as UTF-8")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: {what} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
                        f"{exc.start}); save it as UTF-8") from None


_BRACKETS = re.compile(r"[\[\]{}\n]")


def _check_flow_depth(text: str, label: str) -> None:
    """``[[[[…`` is refused before PyYAML reads it (its scanner and composer slow down, then recurse too
    deep). Brackets inside quoted strings count too: a real file never opens 64 of them."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    depth, line = 0, 1
    for m in _BRACKETS.finditer(text):
        ch = m.group()
        if ch == "\n":
            line += 1
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise UserError(f"{label}:{line}: nested more than {MAX_DEPTH} levels deep; a recipe or pipeline "
                                "file is a few levels of key: value")
        else:
            depth = max(depth - 1, 0)


def _check_shape(root, label: str) -> None:
    """Bound depth and alias expansion; sizes are memoised per node, so a bomb costs linear time."""
    sizes: dict[int, int] = {}

    def size(node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise UserError(f"{label}:{node.start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep; "
                            "a recipe or pipeline file is a few levels of key: value")
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = MAX_VALUES + 1  # a node reached again while being measured: a cycle
        if isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(v, depth + 1) for v in node.value)
        else:
            total = 1
        if total > MAX_VALUES:
            raise UserError(f"{label}:{node.start_mark.line + 1}: YAML aliases (*name) expand to more than "
                            f"{MAX_VALUES} values here (an alias bomb?); write the values out or use fewer aliases")
        sizes[id(node)] = total
        return total

    size(root, 0)


def _construct(node, loader, path: tuple, where: dict, label: str, errors: list):
    where[path] = f"{label}:{node.start_mark.line + 1}"
    if isinstance(node, yaml.MappingNode):
        out: dict = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                shown = repr(key) if key is not None else "a list or mapping"
                errors.append(f"{label}:{key_node.start_mark.line + 1}: keys must be strings, got {shown[:80]}: "
                              "quote it or rename it")
                continue
            if key in out:
                errors.append(f"{label}:{key_node.start_mark.line + 1}: {'.'.join(map(str, path + (key,)))}: "
                              "duplicate key (the earlier one would be silently ignored): keep one")
            out[key] = _construct(value_node, loader, path + (key,), where, label, errors)
            where[path + (key,)] = f"{label}:{key_node.start_mark.line + 1}"
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(v, loader, path + (i,), where, label, errors) for i, v in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def read_yaml(path: str | os.PathLike, what: str = "YAML file") -> tuple[object, dict[tuple, str]]:
    """Parse ``path`` into plain data and a map of key path -> ``file:line``; raise one UserError."""
    path = Path(path)
    label = str(path)
    text = _read_text(path, what)
    _check_flow_depth(text, label)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{label}:{mark.line + 1}" if mark else label
        raise UserError(
            f"{where}: not valid YAML ({str(getattr(exc, 'problem', None) or exc)[:300]}); fix the syntax"
        ) from None
    except RecursionError:
        raise UserError(f"{label}: nested more than {MAX_DEPTH} levels deep; a recipe or pipeline file is a "
                        "few levels of key: value") from None
    finally:
        loader.dispose()
    where: dict[tuple, str] = {}
    if node is None:
        return None, where
    _check_shape(node, label)
    errors: list[str] = []
    try:
        data = _construct(node, yaml.SafeLoader(""), (), where, label, errors)
    except yaml.YAMLError as exc:
        raise UserError(f"{label}: not valid YAML ({str(exc)[:300]}); fix the value") from None
    if errors:
        shown = errors[:20] + ([f"... and {len(errors) - 20} more"] if len(errors) > 20 else [])
        raise UserError("\n".join(shown))
    return data, where


def parse_value(raw: str, label: str):
    """An override's value (``key=VALUE``) read as YAML under the same bounds; plain text when not YAML."""
    if not raw.strip():
        return raw
    _check_flow_depth(raw, label)
    loader = yaml.SafeLoader(raw)
    try:
        node = loader.get_single_node()
    except (yaml.YAMLError, RecursionError):
        return raw
    finally:
        loader.dispose()
    if node is None:
        return None
    _check_shape(node, label)
    return yaml.SafeLoader("").construct_object(node, deep=True)
