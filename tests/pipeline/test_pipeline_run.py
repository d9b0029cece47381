"""The real pipeline on the tiny XLM-RoBERTa: every stage, 2 rounds; skip, partial re-run, kill + resume."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from .helpers import tiny_pipeline

STAGES = ["corpus", "queries", "split", "eval-base", "mine-r1", "score-r1", "train_embedder-r1",
          "train_reranker-r1", "eval-r1", "mine-r2", "score-r2", "train_embedder-r2", "train_reranker-r2",
          "eval-r2", "report"]


def pipeline(*args, check=True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "bgeft.cli.main", "pipeline", *map(str, args)], capture_output=True,
                          text=True, timeout=900, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def actions(stdout: str) -> dict[str, str]:
    """{stage: run | skip | resume} from the '[i/N] stage: action (reason)' lines."""
    return dict(re.findall(r"^\[\d+/\d+\] (\S+): (run|skip|resume) \(", stdout, re.M))


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_xlmr):
    root = tmp_path_factory.mktemp("pipeline")
    path = tiny_pipeline(root, tiny_xlmr)
    proc = pipeline("run", path)
    return root, path, proc


def _copy(finished, tmp_path) -> Path:
    root, _, _ = finished
    dest = tmp_path / "copy"
    shutil.copytree(root, dest)
    return dest / "pipeline.yaml"


def test_every_stage_runs_with_two_rounds(finished):
    root, path, proc = finished
    assert list(actions(proc.stdout)) == STAGES and set(actions(proc.stdout).values()) == {"run"}
    work = root / "work"
    for i, name in enumerate(STAGES, 1):
        manifest = json.loads((work / f"{i:02d}-{name}" / "stage.json").read_text())
        assert manifest["status"] == "done" and len(manifest["output_sha256"]) == 64
    # round 2 re-mined with round 1's retriever and trained from round 1's weights
    r2 = yaml.safe_load((work / "12-train_embedder-r2" / "model" / "bgeft_run.yaml").read_text())
    assert r2["model"]["model_name_or_path"] == str(work / "07-train_embedder-r1" / "model")
    rr2 = yaml.safe_load((work / "13-train_reranker-r2" / "model" / "bgeft_run.yaml").read_text())
    assert rr2["model"]["model_name_or_path"] == str(work / "08-train_reranker-r1" / "model")
    mine2 = json.loads((work / "10-mine-r2" / "stage.json").read_text())
    assert mine2["refs"]["retriever"] == ["stage", "train_embedder-r1"]
    rows = [json.loads(x) for x in (work / "11-score-r2" / "train.jsonl").read_text().splitlines()]
    assert all(len(r["neg_scores"]) == len(r["neg"]) and r["neg"] for r in rows)
    for model in ("07-train_embedder-r1", "12-train_embedder-r2"):
        assert (work / model / "model" / "colbert_linear.pt").is_file()
        assert not list((work / model / "model").glob("checkpoint-*"))
    assert (work / "14-eval-r2" / "test" / "retriever" / "metrics.json").is_file()


def test_report_holds_baseline_every_round_and_significance(finished):
    root, _, proc = finished
    report = (root / "work" / "15-report" / "report.md").read_text()
    summary = report.split("## Summary")[1].split("##")[0]
    for label in ("| baseline |", "| round 1 |", "| round 2 |"):
        assert label in summary
    sig = report.split("## Significance against the baseline")[1].split("##")[0]
    assert ("| round | scored | metric | baseline | round value | delta | 95% CI | p (t-test) | p (randomisation) "
            "| Cohen's d | wins/ties/losses |") in sig
    for label in ("round 1", "round 2"):
        assert f"| {label} | retriever dense | ndcg@10 |" in sig
        assert f"| {label} | pipeline reranked | ndcg@10 |" in sig
    assert (root / "work" / "15-report" / "rounds.png").stat().st_size > 1000
    best = json.loads((root / "work" / "15-report" / "best.json").read_text())
    assert best["select"] == "retriever.dense.ndcg@10" and best["label"] in ("baseline", "round 1", "round 2")
    assert re.search(r"^model\s+dev retriever\.dense\.ndcg@10", proc.stdout, re.M)   # the printed summary table
    assert f"best on dev: {best['label']}" in proc.stdout


def test_train_stages_keep_their_best_checkpoint_by_dev_ndcg(finished):
    root, _, proc = finished
    work = root / "work"
    report = (work / "15-report" / "report.md").read_text()
    assert "| stage | steps | last loss | kept (best on dev) | seconds |" in report
    for i, name in ((7, "train_embedder-r1"), (8, "train_reranker-r1"), (12, "train_embedder-r2")):
        summary = json.loads((work / f"{i:02d}-{name}" / "stage.json").read_text())["summary"]
        history = [json.loads(x) for x in (work / f"{i:02d}-{name}" / "model" / "eval_history.jsonl")
                   .read_text().splitlines()]
        assert [h["step"] for h in history] == [1, 2]  # evaluated on the split's dev set at each checkpoint
        best = max(history, key=lambda h: (h["eval_ndcg@10"], -h["step"]))
        assert summary["dev_metric"] == "ndcg@10" and summary["kept_step"] == best["step"]
        assert summary["dev_best"] == best["eval_ndcg@10"]
        assert f"{name}: kept step {best['step']} of 2 (dev ndcg@10 {best['eval_ndcg@10']:.4f})" in proc.stdout
        assert f"| {name} | 2 |" in report
    bgeft_run = yaml.safe_load((work / "07-train_embedder-r1" / "model" / "bgeft_run.yaml").read_text())
    assert bgeft_run["eval"]["data"] == str(work / "03-split" / "dev")
    assert bgeft_run["training"]["load_best_model_at_end"] is True


def test_the_console_holds_bgeft_lines_and_each_stage_log_the_rest(finished):
    """stdout/stderr captured (not a terminal): no bar frames, no ANSI codes, no third-party lines, a bounded
    number of lines; the stage logs (and train.log) hold what the libraries said."""
    root, _, proc = finished
    console = proc.stdout + proc.stderr
    assert "\r" not in console and "\x1b[" not in console
    for marker in ("LOAD REPORT", "Setting accelerator", "UserWarning", "Loading weights", "{'loss'", "it/s]",
                   "PAD/BOS/EOS", "Traceback", "WARNING", "INFO"):
        assert marker not in console, marker
    assert len(console.splitlines()) <= 110, console
    assert console.count("has no trained classification head") == 1      # the base reranker, said once
    work = root / "work"
    assert "LOAD REPORT" in (work / "04-eval-base" / "stage.log").read_text()
    train_log = (work / "07-train_embedder-r1" / "model" / "train.log").read_text()
    assert "{'loss'" in train_log and "\r" not in train_log   # the Trainer's dicts as lines, no bar frames
    assert "bgeft.train: step 2/2 loss=" in train_log
    assert re.search(r"^train 2/2 steps, loss [\d.]+, lr [\d.e-]+, [\d.,]+/s, took \d+ s$", proc.stderr, re.M)


def test_second_run_skips_everything(finished):
    _, path, _ = finished
    proc = pipeline("run", path)
    assert actions(proc.stdout) == {name: "skip" for name in STAGES}


def _kill_after_first_checkpoint(args: list, stage: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "bgeft.cli.main", "pipeline", *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not list(stage.glob("model/checkpoint-*/trainer_state.json")):
        assert proc.poll() is None, "the pipeline ended before the first checkpoint of " + stage.name
        assert time.time() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the pipeline and its training process, no chance to clean up
    proc.wait()
    assert json.loads((stage / "stage.json").read_text())["status"] == "running"


def test_a_training_change_reruns_only_what_it_reaches_and_a_killed_training_resumes(finished, tmp_path):
    """One changed training parameter; the run is killed during that training, then run again."""
    path = _copy(finished, tmp_path)
    change = ["train_embedder.training.learning_rate=1e-4", "train_embedder.training.max_steps=6"]
    plan = pipeline("run", path, *change, "--dry-run").stdout
    assert re.search(r"07-train_embedder-r1\s+run\s+parameter training.learning_rate changed", plan)
    stage = path.parent / "work" / "07-train_embedder-r1"
    _kill_after_first_checkpoint(["run", path, *change], stage)

    out = pipeline("run", path, *change).stdout
    acts = actions(out)
    assert "train_embedder-r1: resume (interrupted or failed, resuming from its last checkpoint)" in out
    # the training's own plan lines go to the stage's log, not the pipeline's console
    assert re.search(r"resuming from .*07-train_embedder-r1/model/checkpoint-\d", (stage / "stage.log").read_text())
    manifest = json.loads((stage / "stage.json").read_text())
    assert manifest["status"] == "done" and manifest["attempts"] == 2 and manifest["summary"]["global_step"] == 6
    ran = {k for k, v in acts.items() if v != "skip"}
    assert {"train_embedder-r1", "train_embedder-r2", "eval-r1", "eval-r2", "report"} <= ran
    assert ran <= {"train_embedder-r1", "eval-r1", "mine-r2", "score-r2", "train_embedder-r2", "train_reranker-r2",
                   "eval-r2", "report"}
    assert all(acts[name] == "skip" for name in ("corpus", "queries", "split", "eval-base", "mine-r1", "score-r1",
                                                 "train_reranker-r1"))
