"""``bgeft cat NAME``: print a shipped recipe."""
from __future__ import annotations

import argparse
import sys

from bgeft.config.shipped import find


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name")


def run(args: argparse.Namespace) -> int:
    sys.stdout.write(find(args.name).read_text(encoding="utf-8"))
    return 0
