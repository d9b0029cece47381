"""Sub-verbs of a command group (``bgeft data``, ``bgeft eval``, ``bgeft pipeline``): the same convention one
level down. A sub-verb is anything with ``add_arguments(parser)`` and ``run(args)``: a module, or a
:class:`Verb` when several small ones share a module."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NamedTuple


class Verb(NamedTuple):
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def add_sub_verbs(parser: argparse.ArgumentParser, table: dict) -> None:
    """``table``: name -> (verb, one-line help). Each sub-verb's parser runs its own ``run``."""
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, (verb, help_text) in table.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        verb.add_arguments(p)
        p.set_defaults(run=verb.run)
