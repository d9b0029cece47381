"""``bgeft ls``: the shipped recipes, one line each."""
from __future__ import annotations

import argparse

from bgeft.config.shipped import shipped, summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    rows = [(name, summary(path)) for name, path in shipped().items()]
    width = max((len(n) for n, _ in rows), default=0)
    for name, text in rows:
        print(f"{name:<{width}}  {text}")
    return 0
