"""``bgeft env [--json]``: what is installed, which devices are seen, what is missing and how to fix it."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print the environment record a run's environment.json holds (diff two machines)")


def run(args: argparse.Namespace) -> int:
    from bgeft.train.envcheck import cmd_env

    return cmd_env(args)
