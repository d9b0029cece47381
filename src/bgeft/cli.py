"""The ``bgeft`` command: verbs only, no logic. Heavy modules are imported inside each verb so
``bgeft --help``, ``ls``, ``cat`` and ``validate`` stay fast (no torch import)."""
from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import UserError
from .io import Terminated

# Command groups implemented in their own packages: ``bgeft data convert ...`` -> bgeft.data.cli.main
GROUPS = {
    "data": ("bgeft.data.cli", "prepare training data: convert, validate, split-book, mine, score, buckets, gen-queries"),
    "eval": ("bgeft.eval.cli", "evaluate and compare retrievers and rerankers: retriever, reranker, pipeline, compare, bench"),
    "pipeline": ("bgeft.pipeline", "run the multi-stage book -> models -> report pipeline"),
    "k8s": ("bgeft.k8s", "render Kubernetes manifests for a recipe"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in GROUPS:
        module = importlib.import_module(GROUPS[argv[0]][0])
        return _guard(lambda: module.main(argv[1:]))
    parser = build_parser()
    if argv and argv[0] in INTERMIXED:
        # flags may come after or between the section.key=value overrides
        args = INTERMIXED[argv[0]].parse_intermixed_args(argv[1:])
    else:
        args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return _guard(lambda: args.func(args))


MAX_ERROR = 8000


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


INTERMIXED: dict[str, argparse.ArgumentParser] = {}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bgeft",
        description="Fine-tune BGE-M3 embedders and BGE rerankers with FlagEmbedding from YAML recipes.",
    )
    p.add_argument("--version", action="version", version=f"bgeft {__version__}")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    s = sub.add_parser("ls", help="list the shipped recipes")
    s.set_defaults(func=_verb("recipes_cmd", "cmd_ls"))

    s = sub.add_parser("cat", help="print a shipped recipe")
    s.add_argument("name")
    s.set_defaults(func=_verb("recipes_cmd", "cmd_cat"))

    s = sub.add_parser("cp", help="copy a shipped recipe to DEST to edit it")
    s.add_argument("name")
    s.add_argument("dest")
    s.set_defaults(func=_verb("recipes_cmd", "cmd_cp"))

    s = sub.add_parser("validate", help="check a recipe (and overrides) without running it")
    s.add_argument("recipe")
    s.add_argument("overrides", nargs="*", metavar="section.key=value")
    s.set_defaults(func=_verb("recipes_cmd", "cmd_validate"))
    INTERMIXED["validate"] = s

    s = sub.add_parser("train", help="train from a recipe")
    s.add_argument("recipe")
    s.add_argument("overrides", nargs="*", metavar="section.key=value")
    s.add_argument("--dry-run", action="store_true", help="print the launch plan and exit")
    s.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint-* in output_dir (starts fresh when there is none)")
    s.add_argument("--overwrite", action="store_true", help="delete a non-empty output_dir first")
    s.add_argument("--no-data-check", action="store_true",
                   help="skip validating every train_data row before launch")
    s.set_defaults(func=_verb("train_cmd", "cmd_train"))
    INTERMIXED["train"] = s

    s = sub.add_parser("reproduce", help="re-run a finished run from its manifest, after checking what drifted")
    importlib.import_module("bgeft.reproduce").add_arguments(s)
    s.set_defaults(func=_verb("reproduce", "cmd_reproduce"))

    s = sub.add_parser("env", help="check the installation: versions, devices, what is missing")
    s.add_argument("--json", action="store_true",
                   help="print the environment record a run's environment.json holds (diff two machines)")
    s.set_defaults(func=_verb("envcheck", "cmd_env"))

    s = sub.add_parser("demo-model", help="build the embedded M3-ready all-MiniLM-L6-v2 copy in DEST")
    s.add_argument("dest")
    s.add_argument("--force", action="store_true", help="rebuild even when DEST already holds it")
    s.set_defaults(func=_verb("demo_model", "cmd_demo_model"))

    for name, (_, help_text) in GROUPS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return p


def _verb(module: str, func: str):
    def run(args):
        mod = importlib.import_module(f"bgeft.{module}")
        return getattr(mod, func)(args)
    return run


if __name__ == "__main__":
    sys.exit(main())
