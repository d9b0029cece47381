"""``bgeft validate RECIPE [section.key=value ...]``: check a recipe without running it (no torch import)."""
from __future__ import annotations

import argparse
from pathlib import Path

from bgeft.config import recipe as recipes
from bgeft.config.shipped import find

INTERMIXED = True  # flags may come after or between the overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value")


def run(args: argparse.Namespace) -> int:
    path = Path(args.recipe)
    if not path.exists() and not path.suffix:
        path = find(args.recipe)
    checked = recipes.validate(recipes.apply_overrides(recipes.load(path), args.overrides))
    print(f"{path}: OK (task {checked.data['task']}; output_dir {checked.section('training').get('output_dir')})")
    return 0
