"""Real CPU training through the `bgeft train` entry point, 2-4 optimizer steps on tiny models.

Each run checks real effects: exit code, finite logged losses, weights that moved, and that the
output loads with FlagEmbedding's own inference classes and with sentence-transformers.
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RETRIEVAL = REPO / "example_data" / "retrieval" / "train.jsonl"
RERANKER = REPO / "example_data" / "reranker" / "train.jsonl"

TASK_SETTINGS = {
    "embedder.m3": ("retrieval", "train_group_size: 2, query_max_len: 16, passage_max_len: 48",
                    "unified_finetuning: true, use_self_distill: true, self_distill_start_step: 0"),
    "embedder.base": ("retrieval", "train_group_size: 2, query_max_len: 16, passage_max_len: 48",
                      "sentence_pooling_method: mean"),
    "reranker.base": ("reranker", "train_group_size: 4, query_max_len: 16, passage_max_len: 48, max_len: 64",
                      "dataloader_drop_last: true"),
}


def write_recipe(tmp_path: Path, task: str, model: Path, *, steps: int = 2, save_steps: int = 2,
                 launch: str = "", extra_training: str = "") -> Path:
    data_kind, data_opts, training_opts = TASK_SETTINGS[task]
    data = RETRIEVAL if data_kind == "retrieval" else RERANKER
    extra = f", {extra_training}" if extra_training else ""
    path = tmp_path / f"{task}.yaml"
    path.write_text(textwrap.dedent(f"""\
        # test recipe
        task: {task}
        launch: {{{launch}}}
        model: {{model_name_or_path: {model}}}
        data: {{train_data: [{data}], {data_opts}}}
        training: {{output_dir: out, max_steps: {steps}, save_steps: {save_steps}, per_device_train_batch_size: 2,
                   learning_rate: 1.0e-4, logging_steps: 1, report_to: none, seed: 7, {training_opts}{extra}}}
    """), encoding="utf-8")
    return path


def bgeft(*args, timeout=600, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, "-m", "bgeft.cli.main", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, **kwargs)


def start_training(recipe: Path, until, **popen) -> subprocess.Popen:
    """Start `bgeft train` in the background and return once ``until()`` holds (or the run ended)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "bgeft.cli.main", "train", str(recipe)], env=env, **popen)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not until():
        time.sleep(0.1)
    return proc


def logged_losses(out: Path) -> list[float]:
    ckpts = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    state = json.loads((ckpts[-1] / "trainer_state.json").read_text())
    return [h["loss"] for h in state["log_history"] if "loss" in h]


def max_weight_change(base: Path, out: Path) -> float:
    from safetensors.torch import load_file
    a, b = load_file(str(base / "model.safetensors")), load_file(str(out / "model.safetensors"))
    # a sequence-classification head model prefixes the encoder's keys (roberta., bert.)
    pairs = [(k if k in a else k.split(".", 1)[-1], k) for k in b]
    shared = [(ka, kb) for ka, kb in pairs if ka in a and a[ka].shape == b[kb].shape]
    assert len(shared) >= len(b) - 4, "the trained model's tensors do not line up with the base model's"
    return max((a[ka].float() - b[kb].float()).abs().max().item() for ka, kb in shared)


def check_loads(task: str, out: Path) -> None:
    if task == "embedder.m3":
        from FlagEmbedding import BGEM3FlagModel
        model = BGEM3FlagModel(str(out), devices="cpu", use_fp16=False)
        enc = model.encode(["青石镇一共住着多少户人家？", "Who repaired the clock?"], return_dense=True,
                           return_sparse=True, return_colbert_vecs=True)
        assert enc["dense_vecs"].shape[0] == 2 and len(enc["lexical_weights"]) == 2 and len(enc["colbert_vecs"]) == 2
        assert (out / "colbert_linear.pt").is_file() and (out / "sparse_linear.pt").is_file()
    elif task == "embedder.base":
        from FlagEmbedding import FlagModel
        vecs = FlagModel(str(out), devices="cpu", use_fp16=False).encode(["一个问题", "a question"])
        assert vecs.shape[0] == 2 and all(math.isfinite(float(x)) for x in vecs.ravel())
    else:
        from FlagEmbedding import FlagReranker
        scores = FlagReranker(str(out), devices="cpu", use_fp16=False).compute_score([["问题", "段落"], ["q", "p"]])
        assert len(scores) == 2 and all(math.isfinite(s) for s in scores)
    if task.startswith("embedder"):
        from sentence_transformers import SentenceTransformer
        emb = SentenceTransformer(str(out), device="cpu").encode(["a question"])
        assert emb.shape[0] == 1
    else:
        from sentence_transformers import CrossEncoder
        assert len(CrossEncoder(str(out), device="cpu").predict([("q", "p")])) == 1


@pytest.mark.parametrize("model_name", ["tiny_xlmr", "demo_model"])
@pytest.mark.parametrize("task", list(TASK_SETTINGS))
def test_train_loads_and_changes_weights(task, model_name, request, tmp_path):
    model = request.getfixturevalue(model_name)
    result = bgeft("train", write_recipe(tmp_path, task, model))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "out"
    losses = logged_losses(out)
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert max_weight_change(model, out) > 0
    check_loads(task, out)


def test_manifest_and_model_card(tmp_path, tiny_xlmr):
    from bgeft.train.rundir import sha256_file
    result = bgeft("train", write_recipe(tmp_path, "embedder.m3", tiny_xlmr),
                   "model.token=hf_secret_value", "training.run_name=demo")
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "out"
    run = (out / "bgeft_run.yaml").read_text()
    assert "task: embedder.m3" in run and "token: '***'" in run and "hf_secret_value" not in run
    command = (out / "command.txt").read_text()
    assert (
        "-m bgeft.train.worker embedder.m3" in command and "--token" not in command and "hf_secret_value" not in command
    )
    env = json.loads((out / "environment.json").read_text())
    assert env["train_data_sha256"] == {str(RETRIEVAL): sha256_file(RETRIEVAL)}
    assert env["packages"]["FlagEmbedding"] == "1.4.2" and env["device"]["kind"] == "cpu"
    card = (out / "README.md").read_text()
    assert f"`{tiny_xlmr}`" in card and "BGEM3FlagModel" in card and "SentenceTransformer" in card
    assert "hf_secret_value" not in (out / "train.log").read_text()


def test_refuses_a_non_empty_output_dir_and_overwrite_clears_it(tmp_path, tiny_xlmr):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("x")
    recipe = write_recipe(tmp_path, "embedder.base", tiny_xlmr)
    result = bgeft("train", recipe)
    assert result.returncode == 2
    assert (f"bgeft: error: training.output_dir {tmp_path / 'out'} is not empty (1 entries: old.txt); pass --resume "
            "to continue from its newest checkpoint, --overwrite to delete it first (only a run directory bgeft "
            "made), or set training.output_dir=NEW_DIR") in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["old.txt"]  # nothing half-written
    result = bgeft("train", recipe, "--overwrite")  # not a run directory bgeft made: kept
    assert (
        result.returncode == 2 and "was not made by bgeft (no bgeft_run.yaml in it; it holds old.txt)" in result.stderr
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["old.txt"]


def test_bad_rows_stop_the_launch_before_anything_is_written(tmp_path, tiny_xlmr):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q", "pos": ["p"], "neg": ["n"]}\n{"query": "q2", "pos": [], "neg": ["n"]}\n')
    recipe = write_recipe(tmp_path, "embedder.base", tiny_xlmr)
    result = bgeft("train", recipe, f"data.train_data=[{bad}]")
    assert result.returncode == 2
    assert f"{bad}:2: pos" in result.stderr and "--no-data-check" in result.stderr
    assert not (tmp_path / "out").exists()


def test_resume_after_kill_reaches_the_planned_step(tmp_path, tiny_xlmr):
    recipe = write_recipe(tmp_path, "embedder.m3", tiny_xlmr, steps=6, save_steps=2)
    out = tmp_path / "out"
    proc = start_training(recipe, lambda: list(out.glob("checkpoint-*/trainer_state.json")),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: bgeft and its training process
    proc.wait()
    assert list(out.glob("checkpoint-*")), "no checkpoint appeared before the kill"
    result = bgeft("train", recipe, "--resume")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "resuming from" in result.stdout
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    assert all(math.isfinite(x) for x in logged_losses(out))
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()


def test_resume_restores_the_checkpoint_weights_exactly(tmp_path, tiny_xlmr):
    """Resuming at the final step trains nothing more, so the saved model must equal the checkpoint."""
    from safetensors.torch import load_file
    recipe = write_recipe(tmp_path, "embedder.m3", tiny_xlmr, steps=2, save_steps=2)
    assert bgeft("train", recipe).returncode == 0
    out = tmp_path / "out"
    (out / "model.safetensors").unlink()
    result = bgeft("train", recipe, "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    a, b = load_file(str(out / "checkpoint-2" / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert all((a[k] == b[k]).all() for k in a)
    assert max_weight_change(tiny_xlmr, out) > 0


def test_resume_without_checkpoint_starts_fresh(tmp_path, tiny_xlmr):
    result = bgeft("train", write_recipe(tmp_path, "embedder.base", tiny_xlmr), "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--resume: no checkpoint in output_dir yet, starting fresh" in result.stdout


def test_sigterm_saves_a_checkpoint_and_exits_non_zero(tmp_path, tiny_xlmr):
    recipe = write_recipe(tmp_path, "embedder.m3", tiny_xlmr, steps=500, save_steps=1000)
    out = tmp_path / "out"
    log = out / "train.log"
    with open(tmp_path / "stdout.txt", "w") as stdout, open(tmp_path / "stderr.txt", "w") as stderr:
        proc = start_training(recipe, lambda: log.is_file() and "'loss'" in log.read_text(errors="replace"),
                              stdout=stdout, stderr=stderr)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=300)
    err = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == 143, err[-3000:]
    assert "continue with --resume" in err
    ckpts = list(out.glob("checkpoint-*"))
    assert len(ckpts) == 1 and int(ckpts[0].name.split("-")[1]) < 500
    assert "pre-empted; checkpoint saved" in log.read_text()
    assert not (out / "README.md").exists()  # the run is not finished: no model card


@pytest.mark.slow
def test_two_process_torchrun_with_cross_device_negatives(tmp_path, tiny_xlmr):
    recipe = write_recipe(tmp_path, "embedder.m3", tiny_xlmr, launch="nproc_per_node: 2",
                          extra_training="negatives_cross_device: true")
    result = bgeft("train", recipe)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    command = (tmp_path / "out" / "command.txt").read_text()
    assert "-m torch.distributed.run --nproc_per_node 2 --standalone -m bgeft.train.worker" in command
    assert "--negatives_cross_device True" in command and "--ddp_backend gloo" in command
    assert all(math.isfinite(x) for x in logged_losses(tmp_path / "out"))
    check_loads("embedder.m3", tmp_path / "out")


@pytest.mark.slow
def test_deepspeed_zero0(tmp_path, tiny_xlmr):
    recipe = write_recipe(
        tmp_path, "embedder.base", tiny_xlmr, launch=f"deepspeed: {REPO / 'ds_configs' / 'zero0.json'}"
    )
    # DeepSpeed's first use in an environment JIT-compiles its CPU communication op: minutes on 2 cores that
    # `make test` shares with the fresh install and the container suite (600 s ran out once in CI)
    result = bgeft("train", recipe, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    command = (tmp_path / "out" / "command.txt").read_text()
    assert "-m torch.distributed.run --nproc_per_node 1 --standalone -m bgeft.train.worker embedder.base" in command
    assert f"--deepspeed {REPO / 'ds_configs' / 'zero0.json'}" in command
    assert all(math.isfinite(x) for x in logged_losses(tmp_path / "out"))
    check_loads("embedder.base", tmp_path / "out")
