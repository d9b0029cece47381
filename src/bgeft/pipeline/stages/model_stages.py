"""Stages that use models: ``mine`` (hard negatives with the round's retriever), ``score`` (teacher
scores from a reranker) and ``train_embedder`` / ``train_reranker`` (``bgeft train`` with the recipe,
starting from the previous round's weights, always with ``--resume``)."""
from __future__ import annotations

import contextlib
import json
import shutil
import sys
from pathlib import Path

from bgeft.errors import UserError


def run_mine(ctx, stage, resume: bool) -> dict:
    from bgeft.data.mine import mine_negatives

    sec = ctx.spec.data["mine"]
    split_dir = Path(ctx.path(stage, "split"))
    out = stage.dir / "train.jsonl"
    lo, hi = (int(x) for x in sec["range"].split("-"))
    summary = mine_negatives(split_dir / "train.jsonl", out, model=ctx.path(stage, "retriever"),
                             corpus=split_dir / "train_corpus.jsonl", range_=(lo, hi), negatives=sec["negatives"],
                             margin=sec["margin"], bm25=sec["bm25"], batch_size=sec["batch_size"],
                             query_max_length=sec["query_max_len"], passage_max_length=sec["passage_max_len"],
                             seed=sec["seed"], rejects=_rejects(sec, out))
    ctx.summary(summary.lines())
    _drop_rows_without_negatives(ctx, out)
    return _row_stats(out)


def _rejects(sec: dict, out: Path):
    """``skip_invalid: true`` in the stage's section: bad rows are left out and kept in OUT.rejects in the
    stage directory."""
    from bgeft.data.rejects import Rejects

    limit = sec["max_rejects"]
    return Rejects(out, skip=sec["skip_invalid"], max_rejects=None if limit is None else str(limit))


def _drop_rows_without_negatives(ctx, path: Path) -> None:
    """FlagEmbedding cannot train on a row without negatives (a tiny pool or a strict margin filter)."""
    from bgeft.data.records import write_jsonl

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = [row for row in rows if row.get("neg")]
    if not kept:
        raise UserError(f"{path}: no row got any negative; widen mine.range, lower mine.margin or use a bigger corpus")
    if len(kept) < len(rows):
        write_jsonl(path, kept)
        ctx.log(f"dropped {len(rows) - len(kept)} row(s) without negatives (they cannot train)")


def run_score(ctx, stage, resume: bool) -> dict:
    from bgeft.data.score import score_file

    sec = ctx.spec.data["score"]
    out = stage.dir / "train.jsonl"
    summary = score_file(ctx.path(stage, "data"), out, reranker=ctx.path(stage, "reranker"),
                         batch_size=sec["batch_size"], max_length=sec["max_length"], rejects=_rejects(sec, out))
    ctx.summary(summary.lines())
    return _row_stats(out)


def _row_stats(path: Path) -> dict:
    rows = negs = 0
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rows += 1
                negs += len(json.loads(line).get("neg", []))
    if not rows:
        raise UserError(f"{path}: no training rows were produced")
    return {"rows": rows, "negatives_per_row": round(negs / rows, 2)}


SECTIONS = ("model", "data", "training")  # what a training stage may set in its recipe


def stage_recipe(recipe_path: str, kind: str, params: dict, spec_path: Path, where: dict, wired: dict):
    """The stage's recipe merged with its own settings, then with what the pipeline wires in (start weights,
    the round's data, the output directory, in-training evaluation). Relative paths in the stage's settings
    resolve against the pipeline file; those typed as command-line overrides against the working directory."""
    from bgeft.config import recipe as recipes

    written: dict = {}
    typed: dict = {}
    origins: dict = {}
    for section in SECTIONS:
        for key, value in params[section].items():
            loc = where.get((kind, section, key)) or where.get((kind, section)) or str(spec_path)
            (typed if loc.startswith("override") else written).setdefault(section, {})[key] = value
            origins[f"{section}.{key}"] = loc
    recipe = recipes.merge(recipes.load(recipe_path), written, spec_path.parent, origins)
    recipe = recipes.merge(recipe, typed, Path.cwd(), origins)
    wired_at = {f"{s}.{k}": f"{spec_path}: {kind} (set by the pipeline)" for s, keys in wired.items() for k in keys}
    return recipes.merge(recipe, wired, Path.cwd(), wired_at)


def wired_settings(stage, init: str, data: str, out_dir: Path) -> dict:
    """What the pipeline sets in a training stage's recipe: start weights, the round's data, its output."""
    return {"model": {"model_name_or_path": init}, "data": {"train_data": [data]},
            "training": {"output_dir": str(out_dir)}}


def eval_settings(ctx, stage) -> dict:
    """Keep each round's best checkpoint by dev nDCG@10: evaluate on the split's dev set at every
    checkpoint (``eval:`` + the Trainer's own keys; what the stage's training section sets wins)."""
    from bgeft.config import recipe as recipes

    dev = Path(ctx.path(stage, "split")) / "dev" if ctx.has(stage, "split") else None
    if dev is None or not (dev / "qrels").is_dir():
        return {}
    recipe = recipes.load(ctx.path(stage, "recipe"))
    own = stage.params["training"]
    training = {**recipe.section("training"), **own}
    settings = {"eval_strategy": "steps", "eval_steps": training.get("save_steps") or 500, "save_strategy": "steps",
                "metric_for_best_model": "ndcg@10", "load_best_model_at_end": True}
    out = {"training": {k: v for k, v in settings.items() if k not in own},
           "eval": {"data": str(dev), "batch_size": 32}}
    kind, mode = (str(ctx.spec.data.get("report", {}).get("select", "")).split(".") + ["", ""])[:2]
    if stage.kind == "train_reranker":
        out["eval"]["rerank_top"] = ctx.spec.data["eval"].get("retrieve_top", 100)
    elif recipe.data.get("task") == "embedder.m3" and training.get("unified_finetuning") and kind == "retriever" \
            and mode in ("sparse", "colbert", "hybrid"):
        out["eval"]["mode"] = mode
    return out


def check_recipe(kind: str, section: dict, spec_path: Path, where: dict, existing_file: str) -> None:
    """Static recipe validation with the stage's settings, before anything runs. What the pipeline
    wires in later (start weights, the mined data, output dir) gets placeholders here."""
    from bgeft.config import recipe as recipes

    wired = {"model": {"model_name_or_path": "pipeline-start-weights"}, "data": {"train_data": [existing_file]},
             "training": {"output_dir": "pipeline-stage"}}
    recipes.validate(stage_recipe(section["recipe"], kind, section, spec_path, where, wired))


def run_train(ctx, stage, resume: bool) -> dict:
    from bgeft.train import api

    out_dir = stage.dir / "model"
    if resume:
        _drop_incomplete_checkpoints(ctx, out_dir)
    wired = wired_settings(stage, ctx.path(stage, "init"), ctx.path(stage, "data"), out_dir)
    for section, values in eval_settings(ctx, stage).items():
        wired.setdefault(section, {}).update(values)
    recipe = stage_recipe(ctx.path(stage, "recipe"), stage.kind, stage.params, ctx.spec.path, ctx.spec.where, wired)
    ctx.log(f"bgeft train {ctx.path(stage, 'recipe')} ... --resume")
    # bgeft train's plan and closing lines go to the stage's log; its progress and errors stay on the console
    with contextlib.redirect_stdout(sys.stderr):
        recipe, plan = api.prepare(recipe)
        code = api.run(recipe, plan, resume=True)
    if code:
        raise UserError(f"stage {stage.name}: training exited with code {code} (log: {out_dir / 'train.log'}); "
                        "run the pipeline again to resume from the last checkpoint")
    summary = _train_summary(out_dir)
    for ckpt in out_dir.glob("checkpoint-*"):  # finished: the checkpoints only served resuming
        shutil.rmtree(ckpt, ignore_errors=True)
    return summary


def _drop_incomplete_checkpoints(ctx, out_dir: Path) -> None:
    """A kill while a checkpoint is being saved leaves it without trainer_state.json (written last);
    resuming from it would fail, so resume from the newest complete one."""
    from bgeft.train.checkpoints import checkpoints

    complete = set(checkpoints(out_dir))
    for ckpt in sorted(out_dir.glob("checkpoint-*")):
        if ckpt.is_dir() and ckpt not in complete:
            shutil.rmtree(ckpt)
            ctx.log(f"removed {ckpt.name}: interrupted while it was being saved")


def _train_summary(out_dir: Path) -> dict:
    from bgeft.train.checkpoints import trainer_state

    data = trainer_state(out_dir)
    if data is None:
        return {}
    losses = [h["loss"] for h in data.get("log_history", []) if "loss" in h]
    out = {"global_step": data.get("global_step"), "last_loss": losses[-1] if losses else None}
    kept = out_dir / "eval_summary.json"  # written by in-training evaluation (bgeft.eval.history)
    if kept.is_file():
        ev = json.loads(kept.read_text(encoding="utf-8"))
        out.update(
            {
                "kept_step": ev.get("best_global_step") if ev.get("load_best_model_at_end") else ev.get("last_step"),
                "dev_metric": ev.get("metric"),
                "dev_best": ev.get("best_metric"),
            }
        )
    return out
