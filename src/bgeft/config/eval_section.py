"""A recipe's ``eval:`` section: retrieval evaluation on a dev set while training.

```yaml
training:
  eval_strategy: steps              # the Trainer's own arguments decide when and what is kept
  eval_steps: 200
  save_steps: 200
  metric_for_best_model: ndcg@10    # any metric `bgeft eval` reports
  load_best_model_at_end: true
eval:
  data: ../example_data/eval        # BEIR layout: corpus.jsonl, queries.jsonl, qrels/<split>.tsv
  split: test                       # the qrels file to read (default test)
  mode: dense                       # embedder.m3: dense | sparse | colbert | hybrid
  batch_size: 64
  early_stopping_patience: 3        # optional: stop after 3 evaluations without a new best
  max_corpus: 20000                 # optional: subsample the corpus, every judged document kept
```

This module is the static part (no torch): the section's keys, its consistency with the
``training`` section, the worker argument that carries it, and the plan's cost estimate. The
worker side is ``bgeft.eval.in_training``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from bgeft.errors import did_you_mean

FIELDS = {
    "data": "path to a BEIR dev set (corpus.jsonl, queries.jsonl, qrels/<split>.tsv), relative to the recipe",
    "split": "the qrels split to read (qrels/<split>.tsv); default test",
    "mode": "dense | sparse | colbert | hybrid (sparse/colbert/hybrid need embedder.m3)",
    "batch_size": "positive int; texts per encoding batch (default 64)",
    "early_stopping_patience": "positive int; evaluations without a new best before training stops",
    "max_corpus": "positive int; encode at most this many passages, every judged passage kept",
    "rerank_top": "positive int; rerankers: BM25 candidates reranked per query (default 100)",
}
SUPPORTED_TASKS = ("embedder.m3", "embedder.base", "reranker.base")
MODES = ("dense", "sparse", "colbert", "hybrid")
DEFAULTS = {"split": "test", "mode": "dense", "batch_size": 64}
WORKER_FLAG = "--bgeft_eval"
_RETRIEVAL_METRIC = re.compile(r"^(ndcg|recall|precision|mrr|success|coverage)@([1-9][0-9]*)$")
_RERANK_METRIC = re.compile(r"^(acc@1|err@[1-9][0-9]*)$")
EXAMPLES = "ndcg@10, recall@100, mrr@10, map"


def metric_key(name: str) -> str:
    """``eval_ndcg@10`` / ``ndcg@10`` -> ``ndcg@10`` (the Trainer prefixes ``eval_`` itself)."""
    return name[len("eval_"):] if name.startswith("eval_") else name


def is_known_metric(name: str, reranker: bool) -> bool:
    key = metric_key(name)
    return key in ("map", "mrr") or bool(_RETRIEVAL_METRIC.match(key)) or (reranker and bool(_RERANK_METRIC.match(key)))


def metric_k(name: str) -> int | None:
    m = re.search(r"@([0-9]+)$", metric_key(name))
    return int(m.group(1)) if m else None


def _strategy(value) -> str:
    if value is False or value is None:
        return "no"
    return str(value)


def _steps(training: dict, key: str, default) -> float:
    value = training.get(key)
    if value is None:
        value = default
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def check(recipe) -> list[str]:
    """Every problem with ``eval:`` and the ``training`` keys it works with, as ``where: key: problem``."""
    errors: list[str] = []

    def err(dotted: str, problem: str):
        errors.append(f"{recipe.where(dotted)}: {dotted}: {problem}")

    raw = recipe.data.get("eval")
    training = recipe.section("training") if isinstance(recipe.data.get("training"), dict) else {}
    if raw is not None and not isinstance(raw, dict):
        err("eval", "must be a mapping of key: value (data, mode, batch_size, ...)")
        raw = {}
    section = raw or {}
    for key, value in section.items():
        if key not in FIELDS:
            err(f"eval.{key}", f"unknown key{did_you_mean(key, FIELDS)}; eval keys: {', '.join(FIELDS)}")
        elif key in ("batch_size", "early_stopping_patience", "max_corpus", "rerank_top") and value is not None \
                and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            err(f"eval.{key}", f"expected a {FIELDS[key].split(';')[0]}, got {value!r}")
        elif key == "split" and (not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", value)):
            err("eval.split", f"expected a split name such as dev or test, got {value!r}")
    task = recipe.data.get("task")
    reranker = isinstance(task, str) and task.startswith("reranker")
    mode = section.get("mode")
    if mode is not None:
        if reranker:
            err("eval.mode", "rerankers are evaluated by reranking BM25 candidates; remove eval.mode")
        elif mode not in MODES:
            err("eval.mode", f"{mode!r} is not one of {', '.join(MODES)}")
        elif mode != "dense" and task != "embedder.m3":
            err("eval.mode", f"{mode} scoring needs BGE-M3's sparse and ColBERT heads (task embedder.m3); "
                             f"{task} models have dense vectors only: set eval.mode: dense")
        elif mode != "dense" and training.get("unified_finetuning") is False:
            err("eval.mode", f"{mode} scoring needs the sparse and ColBERT heads, which train only with "
                             "training.unified_finetuning: true; set it, or eval.mode: dense")
    if raw is not None and isinstance(task, str) and task not in SUPPORTED_TASKS:
        err("eval", f"evaluating during training is available for {', '.join(SUPPORTED_TASKS)}, not {task}; "
                    "remove the eval: section and evaluate the saved model with `bgeft eval`")
    if section.get("rerank_top") is not None and not reranker:
        err("eval.rerank_top", "only rerankers rerank candidates; embedders rank the whole corpus: remove it")
    data = section.get("data")
    strategy = _strategy(training.get("eval_strategy"))
    if raw is not None:
        if not data:
            err("eval.data", "missing; give the dev set directory (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)")
        elif not isinstance(data, str):
            err("eval.data", f"expected a directory path, got {data!r}")
        elif not Path(data).is_dir():
            err("eval.data", f"{data} is not a directory; fix the path (relative paths resolve against the recipe "
                             "file); it holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv")
        if strategy == "no":
            err("training.eval_strategy", "the recipe has an eval: section but training.eval_strategy is not set, so "
                                          "it would never run; set training.eval_strategy: steps and "
                                          "training.eval_steps: N (or remove the eval: section)")
    elif strategy != "no":
        err(
            "training.eval_strategy",
            f"is {strategy} but the recipe has no eval: section to evaluate on (FlagEmbedding "
            "has no eval_dataset); add eval: {data: DEV_SET_DIR} with a BEIR dev set, or "
            "set training.eval_strategy: no",
        )
    if strategy == "no":
        return errors
    metric = training.get("metric_for_best_model")
    if metric is None:
        if training.get("load_best_model_at_end") or section.get("early_stopping_patience"):
            err("training.metric_for_best_model", f"missing; name the dev metric that picks the best checkpoint, "
                                                  f"e.g. ndcg@10 (any of {EXAMPLES})")
    elif not is_known_metric(str(metric), reranker):
        err("training.metric_for_best_model", f"{metric!r} is not a metric bgeft's evaluator reports; use one of "
                                              f"{EXAMPLES}, recall@k, precision@k, success@k"
                                              + (", acc@1, err@k" if reranker else ""))
    if training.get("greater_is_better") is False:
        err("training.greater_is_better", "retrieval metrics are better when higher; remove greater_is_better: false")
    save = _strategy(training.get("save_strategy", "steps"))
    load_best = bool(training.get("load_best_model_at_end"))
    if load_best and save != "best":
        eval_steps = _steps(training, "eval_steps", _steps(training, "logging_steps", 500))
        save_steps = _steps(training, "save_steps", 500)
        if save != strategy:
            err(
                "training.save_strategy",
                f"is {save} but eval_strategy is {strategy}; load_best_model_at_end needs "
                f"them equal (a checkpoint at each evaluation): set save_strategy: {strategy}",
            )
        elif strategy == "steps" and eval_steps >= 1 and save_steps >= 1 and save_steps % eval_steps != 0:
            err("training.save_steps", f"{save_steps:g} is not a multiple of eval_steps {eval_steps:g}: with "
                                       "load_best_model_at_end the best checkpoint must exist on disk; set save_steps "
                                       f"to {eval_steps:g} (or a multiple of it)")
    if section.get("early_stopping_patience") and not load_best:
        err("eval.early_stopping_patience", "needs training.load_best_model_at_end: true (the Trainer's "
                                            "EarlyStoppingCallback keeps the best checkpoint); set it")
    ds = recipe.section("launch").get("deepspeed") if isinstance(recipe.data.get("launch"), dict) else None
    if ds and Path(str(ds)).is_file():
        try:
            stage = (json.loads(Path(ds).read_text(encoding="utf-8")).get("zero_optimization") or {}).get("stage")
        except (ValueError, AttributeError):
            stage = None
        if stage == 3:
            err("launch.deepspeed", "ZeRO-3 shards the weights, and evaluating during training needs them whole on "
                                    "every rank; use ds_configs/zero2.json (or zero0/zero1) with an eval: section")
    return errors


def settings(recipe) -> dict | None:
    """The validated section with defaults, as the worker receives it; None when evaluation is off."""
    section = recipe.data.get("eval")
    if not section or _strategy(recipe.section("training").get("eval_strategy")) == "no":
        return None
    out = {**DEFAULTS, **{k: v for k, v in section.items() if v is not None}}
    metric = recipe.section("training").get("metric_for_best_model")
    ks = {1, 5, 10, 20, 100}
    if metric and metric_k(str(metric)):
        ks.add(metric_k(str(metric)))
    out["ks"] = sorted(ks)
    if recipe.data.get("task", "").startswith("reranker"):
        out.pop("mode", None)
        out.setdefault("rerank_top", 100)
    return out


def load_dev_set(cfg: dict, where: str = "eval.data"):
    """The dev set of ``cfg`` (``settings()``), the corpus cut to ``max_corpus`` with every judged
    passage kept (the rest drawn at random, seed 0, in corpus order)."""
    import random

    from bgeft.errors import UserError
    from bgeft.eval.datasets import load_eval_data

    try:
        data = load_eval_data(cfg["data"], cfg.get("split", "test"))
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None
    limit = cfg.get("max_corpus")
    if limit and len(data.corpus) > limit:
        judged = {d for docs in data.qrels.values() for d in docs}
        if len(judged) > limit:
            raise UserError(f"{where}: eval.max_corpus {limit} is below the {len(judged)} judged passages of the dev "
                            f"set, which are always kept; raise eval.max_corpus to at least {len(judged)}")
        rest = [d for d in data.corpus if d not in judged]
        keep = judged | set(random.Random(0).sample(rest, limit - len(judged)))
        data.corpus = {d: doc for d, doc in data.corpus.items() if d in keep}
    return data


def plan_notes(recipe, world: int) -> list[str]:
    """What ``--dry-run`` says about evaluation: how many, on what, and what each costs."""
    cfg = settings(recipe)
    if not cfg:
        return []
    data = load_dev_set(cfg, f"{recipe.where('eval.data')}: eval.data")
    training, rdata = recipe.section("training"), recipe.section("data")
    strategy = _strategy(training.get("eval_strategy"))
    n_docs, n_q = len(data.corpus), len(data.qrels)
    max_steps = int(training.get("max_steps") or -1)
    if strategy == "steps":
        every = _steps(training, "eval_steps", _steps(training, "logging_steps", 500))
        when = f"every {every:g} steps"
        count = f"{int(max_steps // every)} evaluation(s) planned" if max_steps > 0 and every >= 1 else "evaluations"
    else:
        epochs = training.get("num_train_epochs", 3)
        when, count = "at the end of each epoch", f"{epochs} evaluation(s) planned"
    batch = int(training.get("per_device_train_batch_size", 8)) * world
    group = int(rdata.get("train_group_size", 8))
    # a training step runs forward + backward (~3 forward passes) over batch queries and batch*group passages
    step_texts = 3 * batch * (group + 1)
    reranker = recipe.data["task"].startswith("reranker")
    texts = n_q * min(cfg.get("rerank_top", 100), n_docs) if reranker else n_docs + n_q
    equiv = texts / step_texts
    what = f"reranking the BM25 top {cfg.get('rerank_top')}" if reranker else f"{cfg['mode']} retrieval"
    kept = f" (max_corpus {cfg['max_corpus']}, judged passages kept)" if cfg.get("max_corpus") else ""
    where = " (BM25 candidates)" if reranker else " re-encoded at each evaluation"
    unit = "pairs scored" if reranker else "texts encoded"
    metric = training.get("metric_for_best_model") or "all reported"
    return [f"eval: {count} {when} on {cfg['data']} ({what}, metric {metric}): {n_q} judged queries, "
            f"{n_docs} passages{kept}{where}, split across {world} process(es)",
            f"eval: estimated cost of one evaluation ~ {equiv:.1f} training step(s) of compute ({texts} {unit} vs "
            f"~{step_texts} text-passes per step); lower it with eval.max_corpus or a larger eval_steps"]


def worker_args(recipe) -> list[str]:
    """``--bgeft_eval JSON`` for the worker (placed right after the task name), or nothing."""
    cfg = settings(recipe)
    return [WORKER_FLAG, json.dumps(cfg, sort_keys=True, ensure_ascii=False)] if cfg else []


def pop_worker_args(argv: list[str]) -> tuple[dict | None, list[str]]:
    """Worker side: take ``--bgeft_eval JSON`` out of the FlagEmbedding arguments."""
    if WORKER_FLAG not in argv:
        return None, argv
    i = argv.index(WORKER_FLAG)
    return json.loads(argv[i + 1]), argv[:i] + argv[i + 2:]
