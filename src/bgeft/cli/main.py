"""The ``bgeft`` command: ONE verb table, no logic.

Every verb is a module of this package with ``add_arguments(parser)`` and ``run(args) -> int``; the
groups (``data``, ``eval``, ``pipeline``) are verb modules whose ``add_arguments`` adds their own table of
sub-verbs. Imports here are explicit, so a reader (and a tool) sees what ``bgeft`` depends on; the verb
modules import their heavy dependencies (torch, FlagEmbedding, faiss) inside ``run``, which keeps
``bgeft --help``, ``ls``, ``cat`` and ``validate`` fast.
"""
from __future__ import annotations

import argparse
import sys
from types import ModuleType

from bgeft import __version__
from bgeft.cli import cat, cp, data, demo_model, env, k8s, ls, pipeline, reproduce, train, validate
from bgeft.cli import eval as eval_verbs
from bgeft.console import take_global_flags
from bgeft.errors import UserError, did_you_mean
from bgeft.io import Terminated

# verb -> (module with add_arguments/run, one-line help)
VERBS: dict[str, tuple[ModuleType, str]] = {
    "ls": (ls, "list the shipped recipes"),
    "cat": (cat, "print a shipped recipe"),
    "cp": (cp, "copy a shipped recipe to DEST to edit it"),
    "validate": (validate, "check a recipe (and overrides) without running it"),
    "train": (train, "train from a recipe"),
    "reproduce": (reproduce, "re-run a finished run from its manifest, after checking what drifted"),
    "env": (env, "check the installation: versions, devices, what is missing"),
    "demo-model": (demo_model, "build the embedded M3-ready all-MiniLM-L6-v2 copy in DEST"),
    "data": (data, "prepare training data: convert, validate, split-book, mine, score, buckets, gen-queries"),
    "eval": (eval_verbs, "evaluate and compare retrievers and rerankers: retriever, reranker, pipeline, compare, "
                         "bench"),
    "pipeline": (pipeline, "run the multi-stage book -> models -> report pipeline"),
    "k8s": (k8s, "render Kubernetes manifests for a recipe"),
}
MAX_ERROR = 8000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bgeft",
        description="Fine-tune BGE-M3 embedders and BGE rerankers with FlagEmbedding from YAML recipes.",
    )
    parser.add_argument("--version", action="version", version=f"bgeft {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show third-party output (transformers, DeepSpeed, FlagEmbedding, warnings) on the "
                             "console too; it always goes to the command's log (train.log, stage.log, --log FILE)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars or progress lines")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")
    for name, (module, help_text) in VERBS.items():
        verb = sub.add_parser(name, help=help_text, description=getattr(module, "DESCRIPTION", help_text))
        module.add_arguments(verb)
        verb.set_defaults(run=module.run)
    return parser


def _subparser(parser: argparse.ArgumentParser, *names: str) -> argparse.ArgumentParser:
    """The parser of ``bgeft NAME [SUBNAME]`` (argparse keeps them inside its subparsers action)."""
    for name in names:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def _check_verb(argv: list[str]) -> None:
    """An unknown verb or sub-verb gets one line with the closest name, not argparse's usage dump."""
    if not argv or argv[0].startswith("-"):
        return
    where, table = "bgeft", VERBS
    if argv[0] in VERBS:
        sub_verbs = getattr(VERBS[argv[0]][0], "SUB_VERBS", None)
        if not sub_verbs or len(argv) < 2 or argv[1].startswith("-"):
            return
        where, table, argv = f"bgeft {argv[0]}", sub_verbs, argv[1:]
    if argv[0] not in table:
        raise UserError(f"{where}: unknown verb {argv[0]!r}{did_you_mean(argv[0], table)}; "
                        f"choose from {', '.join(table)}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return _guard(lambda: _dispatch(argv))


def _dispatch(argv: list[str]) -> int:
    argv = take_global_flags(argv)   # bgeft [-v] [--no-progress] VERB ...
    _check_verb(argv)
    parser = build_parser()
    if argv and getattr(VERBS.get(argv[0], (None,))[0], "INTERMIXED", False):
        # flags may come after or between the section.key=value overrides
        args = _subparser(parser, argv[0]).parse_intermixed_args(argv[1:])
        args.command, args.run = argv[0], VERBS[argv[0]][0].run
    else:
        args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    return int(args.run(args) or 0)


def _guard(fn) -> int:
    try:
        code = fn()
    except UserError as exc:
        text = str(exc)
        if len(text) > MAX_ERROR:  # a hostile input never floods the terminal
            text = text[:MAX_ERROR] + f"\n... ({len(text) - MAX_ERROR} more characters of this message cut)"
        print(f"bgeft: error: {text}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bgeft: interrupted", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"bgeft: terminated by signal {exc.signum}; unfinished outputs were removed", file=sys.stderr)
        return int(exc.code)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
