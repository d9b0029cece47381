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

from bgeft.cli.group import Verb, add_sub_verbs, show_sub_verbs
from bgeft.errors import UserError


def _add_run(r: argparse.ArgumentParser) -> None:
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
    _add_outputs_root(r)
    r.add_argument("--allow-drift", action="store_true",
                   help="with --reproduce: run even when inputs or FlagEmbedding/transformers/torch changed")


def _add_status(s: argparse.ArgumentParser) -> None:
    s.add_argument("pipeline")
    s.add_argument("overrides", nargs="*", metavar="section.key=value")
    _add_outputs_root(s)


def _add_outputs_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("--outputs-root", metavar="DIR",
                   help="the writable outputs mount (run_docker_training.sh passes /workspace/outputs): a work_dir "
                        "written in the file outside DIR becomes DIR/<file name>, with a note")


def _add_ls(s: argparse.ArgumentParser) -> None:
    pass


def _pipeline_path(name: str):
    from pathlib import Path

    from bgeft.assets import asset_dir

    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    shipped = asset_dir("pipelines") / f"{name}.yaml"
    if shipped.is_file():
        return shipped
    raise UserError(f"{name}: no such pipeline file and no shipped pipeline of that name (bgeft pipeline ls)")


def _ls(args: argparse.Namespace) -> int:
    from bgeft.assets import asset_dir

    for path in sorted(asset_dir("pipelines").glob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[0].lstrip("# ").strip()
        print(f"{path.stem:<20} {first}")
    return 0


def _load(args: argparse.Namespace):
    from bgeft.pipeline.graph import build_stages
    from bgeft.pipeline.spec import load_spec

    if getattr(args, "reproduce", None):
        from bgeft.pipeline.stages.reproduce import reproduce_spec

        # no pipeline file with --reproduce: a first word like work_dir=NEW is an override
        extra = [args.pipeline] if args.pipeline else []
        spec = reproduce_spec(args.reproduce, extra + args.overrides, args.allow_drift)
    elif not args.pipeline:
        raise UserError(f"bgeft pipeline {args.verb}: give a pipeline file (or, for run, --reproduce DIR)")
    else:
        spec = load_spec(_pipeline_path(args.pipeline), args.overrides, outputs_root=args.outputs_root)
    for note in spec.notes:
        print(f"bgeft: note: {note}", file=sys.stderr)
    return spec, build_stages(spec)


def _status(args: argparse.Namespace) -> int:
    from bgeft.pipeline.runner import Runner
    from bgeft.pipeline.stages.report import print_status

    spec, stages = _load(args)
    print_status(spec, stages, Runner(spec, stages).plan())
    return 0


def _run(args: argparse.Namespace) -> int:
    from bgeft.pipeline.graph import select_from
    from bgeft.pipeline.runner import Runner
    from bgeft.pipeline.stages.report import print_summary

    spec, stages = _load(args)
    from_index = select_from(stages, args.from_stage) if args.from_stage else None
    runner = Runner(spec, stages, from_index)
    print(f"pipeline {spec.path} -> {spec.work_dir} ({spec.rounds} round(s), {len(stages)} stages)")
    runner.print_plan(runner.plan())
    if args.dry_run:
        return 0
    runner.run()
    print_summary(spec, stages)
    return 0


DESCRIPTION = ("Run a multi-stage pipeline: book -> passages -> questions -> mined data -> retriever + reranker "
               "(N rounds) -> report.")
SUB_VERBS = {
    "run": (Verb(_add_run, _run), "run (or continue) a pipeline"),
    "status": (Verb(_add_status, _status), "show each stage's state and whether it is up to date"),
    "ls": (Verb(_add_ls, _ls), "list the shipped pipelines"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_sub_verbs(parser, SUB_VERBS)


run = show_sub_verbs  # `bgeft pipeline` alone; each sub-verb's parser sets its own run
