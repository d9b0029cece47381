"""``bgeft pipeline``: one command from a raw book to a fine-tuned retriever + reranker and a
before/after report, with ANCE-style re-mining rounds.

    bgeft pipeline run PIPELINE.yaml [section.key=value ...] [--from STAGE] [--dry-run]
    bgeft pipeline status PIPELINE.yaml [section.key=value ...]
    bgeft pipeline ls

Each stage writes into ``work_dir/NN-stage/`` with a ``stage.json`` manifest recording the hash of
its inputs and parameters: re-running skips finished stages, re-runs only what a change reaches, and
restarts an interrupted stage (training resumes from its checkpoint). See docs/pipeline.md.
"""
from __future__ import annotations

import argparse
import sys

from .errors import UserError


def _bodies() -> dict:
    from .pipeline_stages import eval_stage, model_stages, report, text_stages

    return {
        "corpus": text_stages.run_corpus,
        "queries": text_stages.run_queries,
        "split": text_stages.run_split,
        "mine": model_stages.run_mine,
        "score": model_stages.run_score,
        "train_embedder": model_stages.run_train,
        "train_reranker": model_stages.run_train,
        "eval": eval_stage.run_eval,
        "report": report.run_report,
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bgeft pipeline", description="Run a multi-stage pipeline: book -> "
                                "passages -> questions -> mined data -> retriever + reranker (N rounds) -> report.")
    sub = p.add_subparsers(dest="verb", metavar="VERB")
    r = sub.add_parser("run", help="run (or continue) a pipeline")
    r.add_argument("pipeline", nargs="?",
                   help="a pipeline YAML file, or the name of a shipped one (bgeft pipeline ls)")
    r.add_argument("overrides", nargs="*", metavar="section.key=value",
                   help="change a setting, e.g. rounds=3 or train_embedder.training.learning_rate=2e-5 "
                        "(~section.key deletes)")
    r.add_argument("--from", dest="from_stage", metavar="STAGE",
                   help="re-run this stage (a kind like mine, or one instance like mine-r2) and everything after it")
    r.add_argument("--dry-run", action="store_true", help="print the stage plan (run / resume / skip and why) and exit")
    r.add_argument("--reproduce", metavar="DIR",
                   help="re-run the finished pipeline whose work_dir is DIR from its record, into work_dir=NEW "
                        "(default DIR-reproduce); give no pipeline file")
    r.add_argument("--allow-drift", action="store_true",
                   help="with --reproduce: run even when inputs or FlagEmbedding/transformers/torch changed")
    s = sub.add_parser("status", help="show each stage's state and whether it is up to date")
    s.add_argument("pipeline")
    s.add_argument("overrides", nargs="*", metavar="section.key=value")
    sub.add_parser("ls", help="list the shipped pipelines")
    return p


def _pipeline_path(name: str):
    from pathlib import Path

    from .assets import asset_dir

    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    shipped = asset_dir("pipelines") / f"{name}.yaml"
    if shipped.is_file():
        return shipped
    raise UserError(f"{name}: no such pipeline file and no shipped pipeline of that name (bgeft pipeline ls)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.verb is None:
        build_parser().print_help()
        return 2
    if args.verb == "ls":
        from .assets import asset_dir

        for path in sorted(asset_dir("pipelines").glob("*.yaml")):
            first = path.read_text(encoding="utf-8").splitlines()[0].lstrip("# ").strip()
            print(f"{path.stem:<20} {first}")
        return 0

    from .pipeline_stages.graph import build_stages, select_from
    from .pipeline_stages.runner import Runner
    from .pipeline_stages.spec import load_spec

    if getattr(args, "reproduce", None):
        from .pipeline_stages.reproduce import reproduce_spec

        # no pipeline file with --reproduce: a first word like work_dir=NEW is an override
        extra = [args.pipeline] if args.pipeline else []
        spec = reproduce_spec(args.reproduce, extra + args.overrides, args.allow_drift)
    elif not args.pipeline:
        raise UserError(f"bgeft pipeline {args.verb}: give a pipeline file (or, for run, --reproduce DIR)")
    else:
        spec = load_spec(_pipeline_path(args.pipeline), args.overrides)
    stages = build_stages(spec)
    if args.verb == "status":
        from .pipeline_stages.report import print_status

        print_status(spec, stages, Runner(spec, stages).plan())
        return 0
    from_index = select_from(stages, args.from_stage) if args.from_stage else None
    runner = Runner(spec, stages, from_index)
    print(f"pipeline {spec.path} -> {spec.work_dir} ({spec.rounds} round(s), {len(stages)} stages)")
    runner.print_plan(runner.plan())
    if args.dry_run:
        return 0
    runner.run(_bodies())
    from .pipeline_stages.report import print_summary

    print_summary(spec, stages)
    return 0
