"""Recipes a pipeline names, by shipped name (``demo_cpu_m3``) or path. Models resolve through
``bgeft.models.resolve`` (``bgeft:demo-model``, a local directory, a hub id)."""
from __future__ import annotations

from pathlib import Path

from bgeft.errors import UserError


def resolve_recipe(value: str, base_dir: Path) -> Path:
    """A shipped recipe name (``bgeft ls``) or a YAML path relative to the pipeline file."""
    from bgeft.config.shipped import find

    if value.endswith((".yaml", ".yml")) or "/" in value:
        path = (base_dir / Path(value).expanduser()).resolve()
        if path.is_file():
            return path
        raise UserError(
            f"{value}: no such recipe file (relative paths resolve against the pipeline file, or the working "
            "directory when given on the command line)"
        )
    try:
        return find(value)
    except UserError as exc:
        raise UserError(f"{exc}, or give a path to a .yaml") from None
