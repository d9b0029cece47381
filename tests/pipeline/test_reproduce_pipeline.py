"""A pipeline run records pipeline_run.yaml + environment.json (and the environment in every
stage.json); `bgeft pipeline run --reproduce DIR` re-runs it from that record into a new work_dir,
after refusing a changed input. Stand-in stage bodies (tests/pipeline/test_runner.py), no models."""
from __future__ import annotations

import json
import shutil

import pytest

from bgeft.errors import UserError
from bgeft.pipeline.graph import build_stages
from bgeft.pipeline.runner import Runner
from bgeft.pipeline.stages.reproduce import reproduce_spec
from bgeft.train.rundir import sha256_file

from .helpers import QUESTIONS, tiny_pipeline
from .test_runner import FakeBodies, _run, ran


@pytest.fixture
def finished(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    questions = tmp_path / "questions.jsonl"
    shutil.copy(QUESTIONS, questions)
    path = tiny_pipeline(tmp_path, model, rounds=1)
    path.write_text(path.read_text().replace(str(QUESTIONS), str(questions)))
    bodies, runner = _run(path)
    return runner.spec.work_dir, questions


def _outputs(work) -> dict[str, str]:
    manifests = [json.loads(p.read_text()) for p in sorted(work.glob("[0-9][0-9]-*/stage.json"))]
    return {m["stage"]: m["output_sha256"] for m in manifests}


def test_a_run_records_the_pipeline_and_the_environment(finished):
    work, _ = finished
    recorded = json.loads((work / "environment.json").read_text())
    assert {"packages", "device", "git_sha", "torch_build", "image"} <= set(recorded)
    assert (work / "pipeline_run.yaml").read_text().startswith("# resolved from ")
    for manifest in work.glob("[0-9][0-9]-*/stage.json"):
        assert json.loads(manifest.read_text())["environment"]["packages"] == recorded["packages"]


def test_reproduce_reruns_every_stage_into_a_new_work_dir(finished, capsys):
    work, _ = finished
    spec = reproduce_spec(str(work), [], allow_drift=False)
    assert "environment: no drift" in capsys.readouterr().out
    assert spec.work_dir == work.with_name(work.name + "-reproduce")
    bodies = FakeBodies()
    Runner(spec, build_stages(spec), out=open("/dev/null", "w")).run(bodies)
    assert ran(bodies) == set(_outputs(work))            # every stage ran again
    assert _outputs(spec.work_dir) == _outputs(work)     # and produced the same outputs


def test_a_changed_input_refuses_naming_it_and_both_fingerprints(finished):
    work, questions = finished
    before = sha256_file(questions)
    questions.write_text(questions.read_text() + json.dumps({"query": "new?", "answer_hint": "x", "lang": "en"}) + "\n")
    with pytest.raises(UserError, match=rf"refuses {work}: 1 change\(s\) since the run:\n  input {questions} changed "
                                        rf"since the run: recorded {before}, now {sha256_file(questions)}\n"
                                        "Restore them, or pass --allow-drift"):
        reproduce_spec(str(work), [], allow_drift=False)
    assert reproduce_spec(str(work), [], allow_drift=True).work_dir.name == "work-reproduce"


def test_reproduce_cli_errors(tmp_path, finished, run_cli):
    work, _ = finished
    code, _, err = run_cli("pipeline", "run", "--reproduce", tmp_path / "nowhere")
    assert code == 2 and "--reproduce" in err and "not a directory; give the work_dir of a pipeline" in err
    code, _, err = run_cli("pipeline", "run")
    assert code == 2 and "bgeft pipeline run: give a pipeline file (or, for run, --reproduce DIR)" in err
    code, _, err = run_cli("pipeline", "run", "--reproduce", work, f"work_dir={work / 'inside'}", "--dry-run")
    assert code == 2 and f"the reproduction cannot go into the recorded pipeline {work}" in err
    code, out, err = run_cli("pipeline", "run", "--reproduce", work, f"work_dir={tmp_path / 'again'}", "--dry-run")
    assert code == 0, err
    assert f"-> {tmp_path / 'again'}" in out and not (tmp_path / "again").exists()
