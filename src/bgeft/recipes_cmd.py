"""``bgeft ls | cat | cp | validate``: discover, read, copy and check recipes (no torch import)."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from . import recipe as recipes
from .assets import asset_dir, asset_root
from .errors import UserError
from .io import atomic_write_text


def shipped() -> dict[str, Path]:
    return {p.stem: p for p in sorted(asset_dir("recipes").glob("*.yaml"))}


def find(name: str) -> Path:
    found = shipped()
    key = name[:-5] if name.endswith(".yaml") else name
    if key in found:
        return found[key]
    import difflib
    close = difflib.get_close_matches(key, found, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise UserError(f"no shipped recipe named {name!r}{hint}; `bgeft ls` lists them")


def summary(path: Path) -> str:
    """The recipe's first comment line: what it trains."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def cmd_ls(args) -> int:
    rows = [(name, summary(path)) for name, path in shipped().items()]
    width = max((len(n) for n, _ in rows), default=0)
    for name, text in rows:
        print(f"{name:<{width}}  {text}")
    return 0


def cmd_cat(args) -> int:
    sys.stdout.write(find(args.name).read_text(encoding="utf-8"))
    return 0


def cmd_cp(args) -> int:
    """Copy a recipe; its ``../ds_configs`` and ``../example_data`` paths are rewritten to the shipped
    files' absolute location so the copy works from anywhere."""
    src = find(args.name)
    dest = Path(args.dest)
    if dest.is_dir():
        dest = dest / src.name
    if os.path.lexists(dest):  # a dangling link too: writing would follow it
        raise UserError(f"{dest} already exists; choose another DEST or delete it first")
    root = asset_root()
    text = re.sub(r"(?<![\w/.])\.\./(ds_configs|example_data)/",
                  lambda m: f"{root / m.group(1)}/", src.read_text(encoding="utf-8"))
    atomic_write_text(dest, text)
    print(f"copied {src.stem} to {dest}")
    return 0


def cmd_validate(args) -> int:
    path = Path(args.recipe)
    if not path.exists() and not path.suffix:
        path = find(args.recipe)
    checked = recipes.validate(recipes.apply_overrides(recipes.load(path), args.overrides))
    print(f"{path}: OK (task {checked.data['task']}; output_dir {checked.section('training').get('output_dir')})")
    return 0
