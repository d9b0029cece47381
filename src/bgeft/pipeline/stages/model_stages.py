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


def _override(key: str, value) -> str:
    return f"{key}={json.dumps(value, ensure_ascii=False)}"  # JSON is YAML: the recipe layer parses it back


def train_overrides(stage, init: str, data: str, out_dir: Path) -> list[str]:
    """The recipe overrides a training stage passes: the stage's own sections, then what the pipeline
    wires in (start weights, the round's data, the stage's output directory)."""
    overrides = [_override(f"{section}.{key}", value)
                 for section in ("model", "data", "training") for key, value in stage.params[section].items()]
    overrides += [_override("model.model_name_or_path", init), _override("data.train_data", [data]),
                  _override("training.output_dir", str(out_dir))]
    return overrides


def eval_overrides(ctx, stage) -> list[str]:
    """Keep each round's best checkpoint by dev nDCG@10: evaluate on the split's dev set at every
    checkpoint (``eval:`` + the Trainer's own keys; what the stage's training section sets wins)."""
    from bgeft.config import recipe as recipes

    dev = Path(ctx.path(stage, "split")) / "dev" if ctx.has(stage, "split") else None
    if dev is None or not (dev / "qrels").is_dir():
        return []
    recipe = recipes.load(ctx.path(stage, "recipe"))
    own = stage.params["training"]
    training = {**recipe.section("training"), **own}
    settings = {"eval_strategy": "steps", "eval_steps": training.get("save_steps") or 500, "save_strategy": "steps",
                "metric_for_best_model": "ndcg@10", "load_best_model_at_end": True}
    overrides = [_override(f"training.{k}", v) for k, v in settings.items() if k not in own]
    overrides += [_override("eval.data", str(dev)), _override("eval.batch_size", 32)]
    kind, mode = (str(ctx.spec.data.get("report", {}).get("select", "")).split(".") + ["", ""])[:2]
    if stage.kind == "train_reranker":
        overrides.append(_override("eval.rerank_top", ctx.spec.data["eval"].get("retrieve_top", 100)))
    elif recipe.data.get("task") == "embedder.m3" and training.get("unified_finetuning") and kind == "retriever" \
            and mode in ("sparse", "colbert", "hybrid"):
        overrides.append(_override("eval.mode", mode))
    return overrides


def check_recipe(recipe: str, stage_params: dict, existing_file: str) -> None:
    """Static recipe validation with the stage's settings, before anything runs. What the pipeline
    wires in later (start weights, the mined data, output dir) gets placeholders here."""
    from bgeft.config import recipe as recipes

    overrides = [_override(f"{s}.{k}", v) for s in ("model", "data", "training") for k, v in stage_params[s].items()]
    overrides += [_override("model.model_name_or_path", "pipeline-start-weights"),
                  _override("data.train_data", [existing_file]), _override("training.output_dir", "pipeline-stage")]
    recipes.validate(recipes.apply_overrides(recipes.load(recipe), overrides))


def run_train(ctx, stage, resume: bool) -> dict:
    from bgeft.cli.main import build_parser

    out_dir = stage.dir / "model"
    if resume:
        _drop_incomplete_checkpoints(ctx, out_dir)
    argv = ["train", ctx.path(stage, "recipe"), *train_overrides(stage, ctx.path(stage, "init"),
                                                               ctx.path(stage, "data"), out_dir),
            *eval_overrides(ctx, stage), "--resume"]
    ctx.log("bgeft " + " ".join(str(a) for a in argv[:2]) + " ... --resume")
    args = build_parser().parse_args([str(a) for a in argv])
    # bgeft train's plan and closing lines go to the stage's log; its progress and errors stay on the console
    with contextlib.redirect_stdout(sys.stderr):
        code = args.run(args)
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
    for ckpt in sorted(out_dir.glob("checkpoint-*")):
        if ckpt.is_dir() and not (ckpt / "trainer_state.json").is_file():
            shutil.rmtree(ckpt)
            ctx.log(f"removed {ckpt.name}: interrupted while it was being saved")


def _train_summary(out_dir: Path) -> dict:
    ckpts = sorted(out_dir.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[-1]))
    state = out_dir / "trainer_state.json"
    if not state.is_file():
        if not ckpts:
            return {}
        state = ckpts[-1]
    data = json.loads(state.read_text(encoding="utf-8"))
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
