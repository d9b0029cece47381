"""The recipe's eval: section: every refusal up front, with the file:line and the fix (no torch)."""
from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from bgeft.config import eval_section
from bgeft.config import recipe as recipes
from bgeft.errors import UserError
from bgeft.train.launch import Device, make_plan

REPO = Path(__file__).resolve().parent.parent
DEV = REPO / "example_data" / "eval"
TRAIN = REPO / "example_data" / "retrieval" / "train.jsonl"
GOOD_TRAINING = ("eval_strategy: steps, eval_steps: 2, save_steps: 2, metric_for_best_model: ndcg@10, "
                 "load_best_model_at_end: true")


def write(tmp_path: Path, training: str = GOOD_TRAINING, eval_: str | None = f"{{data: {DEV}}}",
          task: str = "embedder.m3", launch: str = "{}") -> Path:
    path = tmp_path / "r.yaml"
    text = textwrap.dedent(f"""\
        task: {task}
        launch: {launch}
        model: {{model_name_or_path: BAAI/bge-m3}}
        data: {{train_data: [{TRAIN}]}}
        training:
          output_dir: out
          dataloader_drop_last: true
          {training.replace(', ', chr(10) + '          ').replace(': ', ': ', -1)}
        """)
    if eval_ is not None:
        text += f"eval: {eval_}\n"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path, overrides=()) -> str:
    with pytest.raises(UserError) as info:
        recipes.validate(recipes.apply_overrides(recipes.load(path), list(overrides)))
    return str(info.value)


def test_a_good_eval_section_validates_and_reaches_the_worker(tmp_path):
    path = write(tmp_path, eval_=f"{{data: {DEV}, mode: hybrid, batch_size: 8, early_stopping_patience: 2, "
                                 "max_corpus: 40}")
    recipe = recipes.validate(recipes.load(path))
    plan = make_plan(recipe, Device("cpu", 1), env={})
    i = plan.argv.index("--bgeft_eval")
    cfg = json.loads(plan.argv[i + 1])
    assert cfg == {"data": str(DEV), "split": "test", "mode": "hybrid", "batch_size": 8,
                   "early_stopping_patience": 2, "max_corpus": 40, "ks": [1, 5, 10, 20, 100]}
    assert plan.argv[i - 1] == "embedder.m3"  # right after the task: the worker pops it before FlagEmbedding
    popped, rest = eval_section.pop_worker_args(plan.argv[i - 1:])
    assert popped == cfg and "--bgeft_eval" not in rest
    notes = "\n".join(plan.notes)
    assert "eval: evaluations every 2 steps" in notes or "evaluation(s) planned every 2 steps" in notes
    assert "24 judged queries, 40 passages (max_corpus 40, judged passages kept)" in notes
    assert "estimated cost of one evaluation" in notes


def test_relative_eval_data_resolves_against_the_recipe(tmp_path):
    (tmp_path / "sub").mkdir()
    import shutil
    shutil.copytree(DEV, tmp_path / "dev")
    path = write(tmp_path / "sub", eval_="{data: ../dev}")
    assert recipes.validate(recipes.load(path)).section("eval")["data"] == str((tmp_path / "dev").resolve())


def test_eval_strategy_without_eval_data(tmp_path):
    msg = problems(write(tmp_path, eval_=None))
    assert re.search(r"r\.yaml:\d+: training\.eval_strategy: is steps but the recipe has no eval: section", msg)
    assert "add eval: {data: DEV_SET_DIR}" in msg


def test_eval_section_without_eval_strategy(tmp_path):
    msg = problems(write(tmp_path, training="save_steps: 2"))
    assert "training.eval_strategy: the recipe has an eval: section but training.eval_strategy is not set" in msg


def test_eval_save_misalignment_with_load_best(tmp_path):
    msg = problems(write(tmp_path, training=GOOD_TRAINING.replace("save_steps: 2", "save_steps: 3")))
    assert re.search(r"r\.yaml:\d+: training\.save_steps: 3 is not a multiple of eval_steps 2", msg)
    msg = problems(write(tmp_path), ["training.save_strategy=epoch"])
    assert "training.save_strategy: is epoch but eval_strategy is steps" in msg
    assert "override 'training.save_strategy=epoch'" in msg


def test_unknown_metric_and_missing_metric(tmp_path):
    msg = problems(write(tmp_path), ["training.metric_for_best_model=nDCG10"])
    assert "training.metric_for_best_model: 'nDCG10' is not a metric bgeft's evaluator reports" in msg
    msg = problems(write(tmp_path), ["~training.metric_for_best_model"])
    assert "training.metric_for_best_model: missing; name the dev metric" in msg
    # eval_ prefix (the Trainer's own spelling) is accepted
    recipes.validate(recipes.apply_overrides(recipes.load(write(tmp_path)),
                                             ["training.metric_for_best_model=eval_recall@100"]))


def test_bad_eval_keys_and_values(tmp_path):
    msg = problems(write(tmp_path, eval_=f"{{data: {DEV}, mod: dense, batch_size: 0, max_corpus: -1}}"))
    assert "eval.mod: unknown key (did you mean mode?)" in msg
    assert "eval.batch_size: expected a positive int, got 0" in msg
    assert "eval.max_corpus: expected a positive int, got -1" in msg
    msg = problems(write(tmp_path, eval_=f"{{data: {tmp_path / 'nope'}}}"))
    assert f"eval.data: {tmp_path / 'nope'} is not a directory" in msg
    msg = problems(write(tmp_path, task="embedder.base", eval_=f"{{data: {DEV}, mode: sparse}}"))
    assert "eval.mode: sparse scoring needs BGE-M3's sparse and ColBERT heads" in msg
    msg = problems(write(tmp_path, eval_=f"{{data: {DEV}, mode: colbert}}"), ["training.unified_finetuning=false"])
    assert "eval.mode: colbert scoring needs the sparse and ColBERT heads" in msg


def test_early_stopping_needs_load_best(tmp_path):
    msg = problems(write(tmp_path, eval_=f"{{data: {DEV}, early_stopping_patience: 2}}"),
                   ["training.load_best_model_at_end=false"])
    assert "eval.early_stopping_patience: needs training.load_best_model_at_end: true" in msg


def test_zero3_is_refused(tmp_path):
    ds = tmp_path / "z3.json"
    ds.write_text('{"zero_optimization": {"stage": 3}}', encoding="utf-8")
    msg = problems(write(tmp_path, launch=f"{{deepspeed: {ds}}}"))
    assert "launch.deepspeed: ZeRO-3 shards the weights" in msg


def test_unsupported_task(tmp_path):
    msg = problems(write(tmp_path, task="embedder.decoder"))
    assert "eval: evaluating during training is available for embedder.m3, embedder.base, reranker.base" in msg


def test_max_corpus_keeps_every_judged_passage():
    data = eval_section.load_dev_set({"data": str(DEV), "max_corpus": 50})
    judged = {d for docs in data.qrels.values() for d in docs}
    assert len(data.corpus) == 50 and judged <= set(data.corpus)
    assert eval_section.load_dev_set({"data": str(DEV), "max_corpus": 50}).doc_ids == data.doc_ids  # seeded
    with pytest.raises(UserError, match=r"eval.data: eval.max_corpus 3 is below the \d+ judged passages"):
        eval_section.load_dev_set({"data": str(DEV), "max_corpus": 3})
