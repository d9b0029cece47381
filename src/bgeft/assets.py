"""Where the shipped recipes, DeepSpeed configs, example data and pipelines live.

In a wheel they sit inside the package (``bgeft/recipes`` ...); in a source checkout (editable
install, Docker image built from the repo) they sit at the repository root. Both layouts keep
them siblings, so a recipe's ``../ds_configs/zero2.json`` holds in either.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ASSET_NAMES = ("recipes", "ds_configs", "example_data", "pipelines")


def asset_root() -> Path:
    """The directory holding ``recipes/``, ``ds_configs/``, ``example_data/``, ``pipelines/``."""
    if (PACKAGE_DIR / "recipes").is_dir():
        return PACKAGE_DIR
    repo = PACKAGE_DIR.parent.parent
    if (repo / "recipes").is_dir():
        return repo
    raise FileNotFoundError(
        f"bgeft's recipes were found neither in {PACKAGE_DIR} nor in {repo}; reinstall the package "
        "(pip install bgeft) or run from a complete checkout"
    )


def asset_dir(name: str) -> Path:
    if name not in ASSET_NAMES:
        raise ValueError(f"unknown asset directory {name!r}")
    return asset_root() / name
