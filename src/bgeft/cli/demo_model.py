"""``bgeft demo-model DEST [--force]``: build the embedded M3-ready all-MiniLM-L6-v2 copy."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dest")
    parser.add_argument("--force", action="store_true", help="rebuild even when DEST already holds it")


def run(args: argparse.Namespace) -> int:
    from bgeft.models.demo import build_demo_model

    path = build_demo_model(args.dest, force=args.force)
    print(f"M3-ready all-MiniLM-L6-v2 in {path}\n"
          f"use it with: bgeft train RECIPE model.model_name_or_path={path}")
    return 0
