"""In-training evaluation through `bgeft train`, on CPU with the tiny / embedded models.

The Trainer's own machinery must do the keeping: best_model_checkpoint in trainer_state.json,
save_total_limit keeping the best, load_best_model_at_end, EarlyStoppingCallback.
"""
from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import pytest

from tests.test_train_integration import RERANKER, RETRIEVAL, bgeft

REPO = Path(__file__).resolve().parent.parent
DEV = REPO / "example_data" / "eval"


def small_dev_set(dest: Path, n_queries: int = 8, n_other: int = 8) -> Path:
    """The first queries of example_data/eval with their judged passages plus a few others."""
    queries = [json.loads(x) for x in (DEV / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
    corpus = [json.loads(x) for x in (DEV / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = [r.split("\t") for r in (DEV / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    keep_q = {q["_id"] for q in queries[:n_queries]}
    rows = [r for r in rows if r[0] in keep_q]
    judged = {r[1] for r in rows}
    docs = [d for d in corpus if d["_id"] in judged] + [d for d in corpus if d["_id"] not in judged][:n_other]
    (dest / "qrels").mkdir(parents=True)
    (dest / "corpus.jsonl").write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), "utf-8")
    (dest / "queries.jsonl").write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in queries
                                                if q["_id"] in keep_q), "utf-8")
    (dest / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join("\t".join(r) + "\n" for r in rows), "utf-8"
    )
    return dest


def write_recipe(tmp_path: Path, model: Path, task: str = "embedder.base", launch: str = "{}", steps: int = 3,
                 training: str = "", eval_extra: str = "") -> Path:
    small_dev_set(tmp_path / "dev")
    data = (f"{{train_data: [{RERANKER}], train_group_size: 4, query_max_len: 16, passage_max_len: 48, max_len: 64}}"
            if task.startswith("reranker") else
            f"{{train_data: [{RETRIEVAL}], train_group_size: 2, query_max_len: 16, passage_max_len: 48}}")
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(f"""\
        task: {task}
        launch: {launch}
        model: {{model_name_or_path: {model}}}
        data: {data}
        training:
          output_dir: out
          max_steps: {steps}
          per_device_train_batch_size: 2
          logging_steps: 1
          report_to: none
          seed: 7
          dataloader_drop_last: true
          eval_strategy: steps
          eval_steps: 1
          save_steps: 1
          save_total_limit: 2
          metric_for_best_model: ndcg@10
          load_best_model_at_end: true
        """) + textwrap.indent(training, "  ") + f"eval: {{data: dev, batch_size: 8{eval_extra}}}\n", encoding="utf-8")
    return path


def trainer_state(out: Path) -> dict:
    last = max(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return json.loads((last / "trainer_state.json").read_text())


def same_weights(a: Path, b: Path) -> bool:
    from safetensors.torch import load_file
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return wa.keys() == wb.keys() and all(bool((wa[k] == wb[k]).all()) for k in wa)


def test_too_high_lr_after_a_good_start_keeps_the_best_checkpoint(tmp_path, demo_model):
    # warmup: step 1 runs at lr 0 (the pretrained model, a good start), steps 2-3 at a destructive lr
    recipe = write_recipe(tmp_path, demo_model, training=textwrap.dedent("""\
        learning_rate: 0.3
        lr_scheduler_type: constant_with_warmup
        warmup_steps: 3
        sentence_pooling_method: mean
        normalize_embeddings: true
        """))
    result = bgeft("train", recipe)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "out"
    state = trainer_state(out)
    assert state["best_model_checkpoint"].endswith("checkpoint-1"), state["best_model_checkpoint"]
    assert state["best_global_step"] == 1 and state["global_step"] == 3
    history = [json.loads(x) for x in (out / "eval_history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [1, 2, 3]
    assert history[0]["eval_ndcg@10"] == state["best_metric"] > history[-1]["eval_ndcg@10"]
    assert all(math.isfinite(h["eval_seconds"]) and h["eval_runtime"] > 0 for h in history)
    assert [e["eval_ndcg@10"] for e in state["log_history"] if "eval_ndcg@10" in e] == \
        [h["eval_ndcg@10"] for h in history]  # logged through trainer.log
    # save_total_limit 2 keeps the best and the last; the final model is the best checkpoint's weights
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-3"]
    assert same_weights(out, out / "checkpoint-1") and not same_weights(out, out / "checkpoint-3")
    # the in-memory evaluation agrees with `bgeft eval retriever` on the saved (best) model
    from bgeft.eval.retrieval import evaluate_retriever
    saved = evaluate_retriever(out, tmp_path / "dev", modes=["dense"], pooling="mean", cache_dir=False,
                               device="cpu", fp16=False, query_max_len=16, passage_max_len=48, progress=False)
    assert saved["results"]["dense"]["metrics"]["ndcg@10"] == pytest.approx(history[0]["eval_ndcg@10"], abs=1e-4)
    # curves, summary, model card, eval time in the log
    assert (out / "eval_curves.png").stat().st_size > 1000
    summary = json.loads((out / "eval_summary.json").read_text())
    assert summary["best_model_checkpoint"] == "checkpoint-1" and summary["evaluations"] == 3
    card = (out / "README.md").read_text()
    assert "These weights are **checkpoint-1** (step 1 of 3): the best dev ndcg@10" in card
    assert "![dev ndcg@10 by step](eval_curves.png)" in card
    assert "bgeft.eval: step 2: evaluation took" in (out / "train.log").read_text()


@pytest.mark.slow
def test_early_stopping_and_m3_hybrid_mode(tmp_path, tiny_xlmr):
    recipe = write_recipe(tmp_path, tiny_xlmr, task="embedder.m3", steps=8, eval_extra=", mode: hybrid, "
                          "early_stopping_patience: 1", training="learning_rate: 1.0e-3\nunified_finetuning: true\n")
    result = bgeft("train", recipe)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "out"
    history = [json.loads(x) for x in (out / "eval_history.jsonl").read_text().splitlines()]
    state = trainer_state(out)
    # patience 1: training stops at the first evaluation that does not beat the best
    first_miss = next((h["step"] for i, h in enumerate(history) if i and h["eval_ndcg@10"] <= max(
        x["eval_ndcg@10"] for x in history[:i])), None)
    if first_miss is not None:
        assert state["global_step"] == first_miss < 8
    assert same_weights(out, Path(state["best_model_checkpoint"]))
    assert (out / "colbert_linear.pt").is_file()


@pytest.mark.slow
def test_reranker_is_evaluated_by_reranking_bm25_candidates(tmp_path, tiny_xlmr):
    recipe = write_recipe(tmp_path, tiny_xlmr, task="reranker.base", steps=2, training="learning_rate: 1.0e-3\n")
    result = bgeft("train", recipe)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    history = [json.loads(x) for x in (tmp_path / "out" / "eval_history.jsonl").read_text().splitlines()]
    assert len(history) == 2 and "eval_acc@1" in history[0] and "eval_err@10" in history[0]


@pytest.mark.slow
def test_two_processes_gloo_evaluate_together(tmp_path, tiny_xlmr):
    recipe = write_recipe(tmp_path, tiny_xlmr, task="embedder.m3", launch="{nproc_per_node: 2}", steps=2,
                          eval_extra=", mode: hybrid", training="learning_rate: 1.0e-3\nunified_finetuning: true\n")
    result = bgeft("train", recipe)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "out"
    history = [json.loads(x) for x in (out / "eval_history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [1, 2]  # written once (rank 0), not once per rank
    state = trainer_state(out)
    assert state["best_metric"] == max(h["eval_ndcg@10"] for h in history)
    assert same_weights(out, Path(state["best_model_checkpoint"]))


@pytest.mark.slow
def test_deepspeed_zero0_evaluates(tmp_path, tiny_xlmr):
    recipe = write_recipe(tmp_path, tiny_xlmr, launch=f"{{deepspeed: {REPO / 'ds_configs' / 'zero0.json'}}}",
                          steps=2, training="learning_rate: 1.0e-3\n")
    result = bgeft("train", recipe)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "out"
    history = [json.loads(x) for x in (out / "eval_history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [1, 2]
    assert trainer_state(out)["best_metric"] == max(h["eval_ndcg@10"] for h in history)
