"""``bgeft data VERB ...``: one module per verb, imported only when that verb runs.

Every verb module exposes ``add_arguments(parser)`` and ``run(args) -> int``. ``bgeft data --help`` lists
the verbs from the table below without importing any of them (mining pulls in torch and faiss).
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import sys

from ..errors import UserError

# verb -> (module under bgeft.data, one-line help)
VERBS = {
    "convert": ("convert", "convert JSON/JSONL/CSV/TSV/DuReader/MS MARCO/TREC XML/SQuAD/STS/label files to training JSONL"),
    "validate": ("validate", "check training JSONL rows against FlagEmbedding's schema; --fix writes the valid rows"),
    "split-book": ("books", "split .txt/.md books into passages (a BEIR corpus.jsonl)"),
    "mine": ("mine", "mine hard negatives with a BGE model and faiss (positive-aware filtering)"),
    "score": ("score", "add reranker teacher scores (pos_scores/neg_scores) for knowledge distillation"),
    "buckets": ("buckets", "split training data into length buckets with per-file batch sizes"),
    "gen-queries": ("querygen", "write questions for corpus passages with an OpenAI-compatible chat endpoint"),
}


def _top_parser() -> argparse.ArgumentParser:
    lines = "\n".join(f"  {verb:<12} {help_text}" for verb, (_, help_text) in VERBS.items())
    return argparse.ArgumentParser(
        prog="bgeft data",
        description="Prepare training data for FlagEmbedding: from what you have to clean, mined, scored JSONL.",
        usage="bgeft data VERB [options]   (bgeft data VERB --help for a verb's options)",
        epilog=f"verbs:\n{lines}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def verb_parser(verb: str) -> tuple[argparse.ArgumentParser, object]:
    """The argparse parser for one verb (module imported here) and the module itself."""
    module_name, help_text = VERBS[verb]
    module = importlib.import_module(f"bgeft.data.{module_name}")
    parser = argparse.ArgumentParser(prog=f"bgeft data {verb}", description=help_text)
    module.add_arguments(parser)
    return parser, module


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        _top_parser().print_help()
        return 0 if argv else 2
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        close = difflib.get_close_matches(verb, VERBS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(f"bgeft data: unknown verb {verb!r}{hint}; choose from {', '.join(VERBS)}")
    parser, module = verb_parser(verb)
    args = parser.parse_args(rest)
    return int(module.run(args) or 0)


if __name__ == "__main__":
    from ..cli import _guard

    sys.exit(_guard(main))
