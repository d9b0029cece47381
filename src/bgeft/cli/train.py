"""``bgeft train RECIPE [section.key=value ...] [--dry-run] [--resume] [--overwrite]``."""
from __future__ import annotations

import argparse

INTERMIXED = True  # flags may come after or between the overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value")
    parser.add_argument("--dry-run", action="store_true", help="print the launch plan and exit")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint-* in output_dir (starts fresh when there is none)")
    parser.add_argument("--overwrite", action="store_true", help="delete a non-empty output_dir first")
    parser.add_argument("--no-data-check", action="store_true",
                        help="skip validating every train_data row before launch")


def run(args: argparse.Namespace) -> int:
    from bgeft.train.api import cmd_train

    return cmd_train(args)
