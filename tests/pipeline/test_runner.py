"""Stage bookkeeping with stand-in stage bodies (no models): skip, re-run what a change reaches,
resume an interrupted stage, --from, --dry-run."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from bgeft.errors import UserError
from bgeft.pipeline.graph import build_stages, select_from
from bgeft.pipeline.runner import Runner
from bgeft.pipeline.spec import load_spec

from .helpers import tiny_pipeline


class Interrupted(KeyboardInterrupt):
    """A stage killed mid-way (Ctrl-C): the stage log's capture lets it through, as it does a real one."""


class FakeBodies(dict):
    """Each body writes an output derived from its parameters and inputs, like the real ones."""

    def __init__(self, fail_once: str | None = None):
        super().__init__()
        self.calls: list[tuple[str, bool]] = []
        self.fail_once = fail_once
        for kind in ("corpus", "queries", "split", "mine", "score", "train_embedder", "train_reranker", "eval",
                     "report"):
            self[kind] = self.body

    def body(self, ctx, stage, resume):
        self.calls.append((stage.name, resume))
        parts = [stage.name, json.dumps(stage.params, sort_keys=True)]
        for role, (kind, value) in sorted(stage.refs.items()):
            if kind == "stage":
                p = Path(ctx.path(stage, role))
                parts.append((p / "out.txt" if p.is_dir() else p).read_text())
            else:
                parts.append(Path(value).read_text() if Path(value).is_file() else value)
        out = stage.output if stage.output.suffix else stage.output / "out.txt"
        if stage.output.name == "model":
            stage.output.mkdir(parents=True, exist_ok=True)
            out = stage.output / "out.txt"
            (stage.output / "checkpoint-1").mkdir(exist_ok=True)
            if self.fail_once == stage.name:
                self.fail_once = None
                raise Interrupted(stage.name)
        out.write_text(hashlib.sha256("|".join(parts).encode()).hexdigest())
        return {}


def _run(path, overrides=(), bodies=None, from_stage=None):
    spec = load_spec(path, list(overrides))
    stages = build_stages(spec)
    bodies = bodies if bodies is not None else FakeBodies()
    runner = Runner(spec, stages, select_from(stages, from_stage) if from_stage else None, out=open("/dev/null", "w"))
    runner.run(bodies)
    return bodies, runner


@pytest.fixture
def pipeline(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    return tiny_pipeline(tmp_path, model)


def ran(bodies) -> set[str]:
    return {name for name, _ in bodies.calls}


def test_second_run_skips_everything(pipeline):
    first, _ = _run(pipeline)
    assert len(first.calls) == 15
    second, runner = _run(pipeline)
    assert second.calls == []
    assert all(d.action == "skip" and d.reason == "up to date" for _, d in runner.plan())


def test_a_training_change_reruns_only_training_later_rounds_and_eval(pipeline):
    _run(pipeline)
    bodies, _ = _run(pipeline, ["train_embedder.training.learning_rate=3e-5"])
    assert ran(bodies) == {"train_embedder-r1", "eval-r1", "mine-r2", "score-r2", "train_embedder-r2",
                           "train_reranker-r2", "eval-r2", "report"}
    bodies, _ = _run(pipeline, ["train_embedder.training.learning_rate=3e-5"])
    assert bodies.calls == []


def test_an_eval_change_reruns_only_eval_and_report(pipeline):
    _run(pipeline)
    bodies, runner = _run(pipeline, ["eval.rerank_top=3"])
    assert ran(bodies) == {"eval-base", "eval-r1", "eval-r2", "report"}


def test_dry_run_plan_names_the_reason(pipeline):
    _run(pipeline)
    spec = load_spec(pipeline, ["mine.negatives=3"])
    plan = {st.name: d for st, d in Runner(spec, build_stages(spec)).plan()}
    assert plan["corpus"].action == "skip"
    assert (plan["mine-r1"].action, plan["mine-r1"].reason) == ("run", "parameter negatives changed")
    assert (plan["score-r1"].action, plan["score-r1"].reason) == ("run", "after mine-r1 re-runs")
    assert plan["eval-base"].action == "skip"


def test_interrupted_training_resumes_and_others_skip(pipeline):
    bodies = FakeBodies(fail_once="train_embedder-r1")
    with pytest.raises(Interrupted):
        _run(pipeline, bodies=bodies)
    manifest = json.loads((pipeline.parent / "work" / "07-train_embedder-r1" / "stage.json").read_text())
    assert manifest["status"] == "running"
    assert (pipeline.parent / "work" / "07-train_embedder-r1" / "model" / "checkpoint-1").is_dir()  # kept
    again, _ = _run(pipeline)
    assert again.calls[0] == ("train_embedder-r1", True)
    assert "corpus" not in ran(again) and "mine-r1" not in ran(again)
    manifest = json.loads((pipeline.parent / "work" / "07-train_embedder-r1" / "stage.json").read_text())
    assert manifest["status"] == "done" and manifest["attempts"] == 2 and manifest["reason"].startswith("interrupted")


def test_from_forces_a_stage_and_everything_after_it(pipeline):
    _run(pipeline)
    bodies, _ = _run(pipeline, from_stage="mine-r2")
    assert [n for n, _ in bodies.calls] == ["mine-r2", "score-r2", "train_embedder-r2", "train_reranker-r2",
                                            "eval-r2", "report"]
    with pytest.raises(UserError, match="--from nope: no such stage"):
        _run(pipeline, from_stage="nope")


def test_a_changed_book_reruns_everything_downstream(pipeline, tmp_path):
    book = tmp_path / "book.txt"
    book.write_text("第一章 开始\n\n这是第一段。\n", encoding="utf-8")
    _run(pipeline, [f"corpus.books=[{book}]"])
    book.write_text("第一章 开始\n\n这是改过的第一段。\n", encoding="utf-8")
    bodies, _ = _run(pipeline, [f"corpus.books=[{book}]"])
    assert len(bodies.calls) == 15


def test_status_shows_each_stage_and_what_the_next_run_does(pipeline, run_cli):
    _run(pipeline)
    code, out, _ = run_cli("pipeline", "status", pipeline, "eval.k=[1,5,10,20]")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"pipeline {pipeline} -> {pipeline.parent / 'work'}"
    assert len(lines) == 16
    assert lines[1].split()[:2] == ["01-corpus", "done"] and lines[1].endswith("next run: skip (up to date)")
    assert lines[4].endswith("next run: run (parameter k changed)") and "04-eval-base" in lines[4]


def test_stages_dropped_from_the_pipeline_are_named(pipeline, run_cli):
    _run(pipeline)
    code, out, _ = run_cli("pipeline", "run", pipeline, "rounds=1", "--dry-run")
    assert code == 0
    assert "  10-report             run     not run yet\n" in out and "09-eval-r1            skip" in out
    assert ("not part of this pipeline any more (left as they are): 10-mine-r2, 11-score-r2, 12-train_embedder-r2, "
            "13-train_reranker-r2, 14-eval-r2, 15-report") in out


def test_a_checkpoint_killed_while_saving_is_dropped_before_resuming(tmp_path):
    from types import SimpleNamespace

    from bgeft.pipeline.stages.model_stages import _drop_incomplete_checkpoints

    for name, complete in (("checkpoint-1", True), ("checkpoint-2", False)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_text("w")
        if complete:
            (tmp_path / name / "trainer_state.json").write_text("{}")
    logged = []
    _drop_incomplete_checkpoints(SimpleNamespace(log=logged.append), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-1"]
    assert logged == ["removed checkpoint-2: interrupted while it was being saved"]
