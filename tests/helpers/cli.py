"""Run one verb module of the verb table directly (its own add_arguments + run), as ``bgeft VERB`` does."""
from __future__ import annotations

import argparse


def parse(module, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"bgeft {module.__name__.rsplit('.', 1)[-1]}")
    module.add_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


def call(module, argv: list[str]) -> int:
    return module.run(parse(module, argv))
