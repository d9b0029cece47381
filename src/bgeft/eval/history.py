"""What in-training evaluation leaves in the output dir (written by rank 0 only).

* ``eval_history.jsonl``: one line per evaluation ``{"step", "epoch", "eval_seconds", "eval_ndcg@10", ...}``,
  appended as it happens (a crash keeps what was measured; ``--resume`` continues it);
* ``eval_curves.png``: the metric for best model (and nDCG/Recall@10) against the step, best step marked;
* ``eval_summary.json``: which checkpoint was kept and why (``best_model_checkpoint``, ``best_metric``,
  ``best_global_step``, whether it was loaded at the end, whether early stopping ended the run),
  read by the model card (``bgeft.train.artifacts``).
"""
from __future__ import annotations

import json
from pathlib import Path

from bgeft.io import atomic_write_text

HISTORY = "eval_history.jsonl"
CURVES = "eval_curves.png"
SUMMARY = "eval_summary.json"


def read_history(output_dir: Path) -> list[dict]:
    path = Path(output_dir) / HISTORY
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_curves(rows: list[dict], metric: str, best_step: int | None, path: Path) -> Path | None:
    from bgeft.eval.plots import _save, plt

    names = [n for n in dict.fromkeys([f"eval_{metric}", "eval_ndcg@10", "eval_recall@10"]) if rows and n in rows[0]]
    if not names:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [r["step"] for r in rows]
    for i, name in enumerate(names):
        ax.plot(steps, [r.get(name, float("nan")) for r in rows], marker="o", color=f"C{i}",
                label=name[len("eval_"):], linewidth=2.2 if i == 0 else 1.2)
    if best_step is not None:
        best = [r for r in rows if r["step"] == best_step]
        if best:
            ax.axvline(best_step, color="grey", linestyle="--", linewidth=1)
            ax.plot([best_step], [best[-1].get(names[0])], marker="*", markersize=16, color="C0",
                    label=f"best: step {best_step}")
    ax.set_xlabel("training step")
    ax.set_ylabel("dev metric")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"dev {metric} during training")
    return _save(fig, path)


class EvalHistory:
    def __init__(self, output_dir: Path, metric: str | None, enabled: bool = True):
        from bgeft.config.eval_section import metric_key

        self.dir, self.enabled = Path(output_dir), enabled
        self.metric = metric_key(metric) if metric else "ndcg@10"

    def add(self, step: int, epoch, metrics: dict, seconds: float) -> None:
        if not self.enabled:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        earlier = [r for r in read_history(self.dir) if r.get("step", -1) < step]
        if len(earlier) < len(read_history(self.dir)):  # resumed before a step evaluated last time: measure it anew
            (self.dir / HISTORY).write_text("".join(json.dumps(r) + "\n" for r in earlier), encoding="utf-8")
        row = {"step": step, "epoch": round(epoch, 4) if epoch is not None else None,
               "eval_seconds": round(seconds, 4), **metrics}
        with (self.dir / HISTORY).open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, sort_keys=False) + "\n")

    def finish(self, args, state) -> None:
        if not self.enabled:
            return
        rows = read_history(self.dir)
        best_ckpt = state.best_model_checkpoint
        stopped_early = bool(args.max_steps and args.max_steps > 0 and state.global_step < args.max_steps)
        summary = {
            "metric": self.metric, "greater_is_better": bool(args.greater_is_better),
            "best_metric": state.best_metric, "best_global_step": state.best_global_step,
            "best_model_checkpoint": Path(best_ckpt).name if best_ckpt else None,
            "load_best_model_at_end": bool(args.load_best_model_at_end),
            "last_step": state.global_step, "evaluations": len(rows),
            "stopped_early": stopped_early,
            "eval_seconds_total": round(sum(r.get("eval_seconds", 0.0) for r in rows), 3),
        }
        atomic_write_text(self.dir / SUMMARY, json.dumps(summary, indent=2) + "\n")
        plot_curves(rows, self.metric, state.best_global_step, self.dir / CURVES)

    def callback(self):
        from transformers import TrainerCallback

        history = self

        class EvalHistoryCallback(TrainerCallback):
            def on_train_end(self, args, state, control, **kwargs):
                history.finish(args, state)

        return EvalHistoryCallback()


def card_section(output_dir: Path) -> list[str]:
    """Model-card lines: which checkpoint was kept and why, with the curves."""
    path = Path(output_dir) / SUMMARY
    if not path.is_file():
        return []
    s = json.loads(path.read_text(encoding="utf-8"))
    best = s.get("best_model_checkpoint")
    if s.get("load_best_model_at_end") and best:
        kept = (f"These weights are **{best}** (step {s['best_global_step']} of {s['last_step']}): the best dev "
                f"{s['metric']} ({s['best_metric']:.4f}) of {s['evaluations']} evaluations, loaded back at the end "
                "(`load_best_model_at_end`).")
    else:
        kept = (f"These weights are the last step ({s['last_step']}); the best dev {s['metric']} was "
                + (f"{s['best_metric']:.4f} at step {s['best_global_step']}" if s.get("best_metric") is not None
                   else "not recorded") + " (`load_best_model_at_end` is off).")
    lines = ["", "## Dev-set evaluation during training", "", kept]
    if s.get("stopped_early"):
        lines.append(f"Training stopped early at step {s['last_step']}: the metric stopped improving "
                     "(`eval.early_stopping_patience`).")
    lines.append(f"Evaluation took {s['eval_seconds_total']:.1f} s in all; every evaluation is in `{HISTORY}`.")
    if (Path(output_dir) / CURVES).is_file():
        lines += ["", f"![dev {s['metric']} by step]({CURVES})"]
    return lines
