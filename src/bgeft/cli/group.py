"""Sub-verbs of a command group (``bgeft data``, ``bgeft eval``, ``bgeft pipeline``): the same convention one
level down. A sub-verb is anything with ``add_arguments(parser)`` and ``run(args)``: a module, or a
:class:`Verb` when several small ones share a module. A group's own ``run`` is :func:`show_sub_verbs`: it
is what runs when no sub-verb is given."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NamedTuple

from bgeft.console import add_log_argument, capture, check_log


class Verb(NamedTuple):
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def add_sub_verbs(parser: argparse.ArgumentParser, table: dict, log: bool = False) -> None:
    """``table``: name -> (verb, one-line help). Each sub-verb's parser runs its own ``run``; with ``log``
    every sub-verb gets ``--log FILE`` and runs with third-party output captured there (bgeft.console)."""
    parser.set_defaults(group_help=parser.print_help)
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, (verb, help_text) in table.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        verb.add_arguments(p)
        if log:
            add_log_argument(p)
        p.set_defaults(run=_logged(verb.run) if log else verb.run)


def show_sub_verbs(args: argparse.Namespace) -> int:
    """A group's ``run``: ``bgeft data`` (no sub-verb) prints the group's help with its verbs, exit 2. Each
    sub-verb's parser sets its own ``run``, which replaces this one when a sub-verb is given."""
    args.group_help()
    return 2


def _logged(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def logged(args: argparse.Namespace) -> int:
        check_log(args.log, args)
        with capture(args.log):
            return run(args)
    return logged
