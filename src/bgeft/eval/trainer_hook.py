"""Give FlagEmbedding's Trainer an ``evaluate()`` so the HF Trainer's own machinery does the rest.

FlagEmbedding's runners build their Trainer without an ``eval_dataset``; with ``eval_strategy`` set,
transformers refuses to build it ("didn't pass an eval_dataset"). The worker therefore builds the
runner with evaluation off (``hold_eval_strategy``) and then ``install`` s:

* ``trainer.evaluate``: ``InTrainingEvaluator`` on the live model -> ``eval_<metric>`` values, logged
  with ``trainer.log`` (console, TensorBoard, W&B, ``log_history``) and passed to
  ``on_evaluate`` (``EarlyStoppingCallback``); ``_maybe_log_save_evaluate`` then sets
  ``best_metric`` / ``best_model_checkpoint``, and ``save_total_limit`` keeps the best;
* ``trainer._load_best_model`` for encoder checkpoints, which FlagEmbedding saves as the bare encoder
  (+ M3 heads): the worker's own checkpoint loader puts them back into the wrapper model;
* ``EarlyStoppingCallback`` when ``eval.early_stopping_patience`` is set;
* ``eval_history.jsonl`` (one line per evaluation) and the curves PNG (``bgeft.eval.history``).
"""
from __future__ import annotations

import sys
import time
import types
from pathlib import Path


def hold_eval_strategy(training_args):
    """Switch evaluation off while the runner builds its Trainer; returns what to put back."""
    from transformers.trainer_utils import IntervalStrategy

    held = training_args.eval_strategy
    training_args.eval_strategy = IntervalStrategy.NO
    return held


def install(runner, task: str, cfg: dict, held_strategy, restore_checkpoint=None) -> None:
    from transformers import EarlyStoppingCallback

    from bgeft.eval.history import EvalHistory
    from bgeft.eval.in_training import InTrainingEvaluator

    trainer = runner.trainer
    trainer.args.eval_strategy = held_strategy
    evaluator = InTrainingEvaluator(runner, cfg, task)
    history = EvalHistory(Path(trainer.args.output_dir), trainer.args.metric_for_best_model,
                          enabled=trainer.args.should_save)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        start = time.perf_counter()
        metrics, timing = evaluator.evaluate()
        seconds = time.perf_counter() - start
        out = {f"{metric_key_prefix}_{k}": v for k, v in metrics.items()}
        out[f"{metric_key_prefix}_runtime"] = round(seconds, 4)
        if self.args.should_save:
            parts = ", ".join(f"{k} {v:.1f}s" for k, v in timing.items())
            print(f"bgeft.eval: step {self.state.global_step}: evaluation took {seconds:.2f}s ({parts}); "
                  f"{_headline(metrics, self.args.metric_for_best_model)}", file=sys.stderr, flush=True)
        self.log(out)
        history.add(self.state.global_step, self.state.epoch, out, seconds)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, out)
        return out

    trainer.evaluate = types.MethodType(evaluate, trainer)
    if restore_checkpoint is not None:
        original = trainer._load_best_model

        def load_best(self):
            if self.is_deepspeed_enabled:
                return original()
            best = self.state.best_model_checkpoint
            print(f"bgeft.eval: loading the best checkpoint {best} ({self.args.metric_for_best_model} "
                  f"{self.state.best_metric})", file=sys.stderr, flush=True)
            restore_checkpoint(runner, best)

        trainer._load_best_model = types.MethodType(load_best, trainer)
    if cfg.get("early_stopping_patience"):
        trainer.add_callback(EarlyStoppingCallback(early_stopping_patience=int(cfg["early_stopping_patience"])))
    trainer.add_callback(history.callback())


def _headline(metrics: dict, metric: str | None) -> str:
    from bgeft.config.eval_section import metric_key

    names = [metric_key(metric)] if metric else []
    names += [n for n in ("ndcg@10", "recall@10", "mrr@10") if n not in names]
    return ", ".join(f"{n} {metrics[n]:.4f}" for n in names if n in metrics)
