"""``bgeft reproduce RUN_DIR [-o NEW_DIR] [--check] [--allow-drift] [--dry-run]``."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a finished run's output directory (holds bgeft_run.yaml, environment.json)")
    parser.add_argument("-o", "--output", help="where the new run goes (default: RUN_DIR-reproduce)")
    parser.add_argument("--check", action="store_true",
                        help="compare the new loss curve and final metrics with the recorded trainer_state.json")
    parser.add_argument("--tolerance", type=float, default=0.0,
                        help="largest difference --check accepts (default 0: identical, as two CPU runs are)")
    parser.add_argument("--allow-drift", action="store_true",
                        help="run even when training files or FlagEmbedding/transformers/torch changed")
    parser.add_argument("--dry-run", action="store_true", help="print the drift table and the launch plan only")


def run(args: argparse.Namespace) -> int:
    from bgeft.train.reproduce import cmd_reproduce

    return cmd_reproduce(args)
