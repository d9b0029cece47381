"""The train stage hands bgeft.train.api a merged recipe (no command line in between): its settings'
relative paths resolve against the pipeline file, those typed on the command line against the working
directory, and what the pipeline wires in (start weights, data, output) wins."""
from __future__ import annotations

import pytest

from bgeft.errors import UserError
from bgeft.pipeline.graph import build_stages
from bgeft.pipeline.runner import Runner
from bgeft.pipeline.spec import load_spec
from bgeft.pipeline.stages import model_stages

from .helpers import tiny_pipeline


@pytest.fixture
def pipeline(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    path = tiny_pipeline(tmp_path / "pipe", model, rounds=1)
    text = path.read_text().replace("data: {train_group_size: 2", "data: {cache_path: cache, train_group_size: 2", 1)
    path.write_text(text)
    (tmp_path / "cwd").mkdir()
    return path


def _recipe_handed_to_train(path, overrides, monkeypatch):
    from bgeft.train import api

    handed = []
    monkeypatch.setattr(api, "prepare", lambda recipe, *a, **kw: (handed.append(recipe), (recipe, "plan"))[1])
    monkeypatch.setattr(api, "run", lambda recipe, plan, **kw: handed.append(kw) or 0)
    spec = load_spec(path, overrides)
    stages = build_stages(spec)
    stage = next(st for st in stages if st.kind == "train_embedder")
    model_stages.run_train(Runner(spec, stages, out=open("/dev/null", "w")).ctx, stage, resume=False)
    return stage, handed


def test_relative_paths_resolve_against_the_pipeline_file(pipeline, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path / "cwd")
    stage, (recipe, run_kw) = _recipe_handed_to_train(pipeline, ["train_embedder.model.cache_dir=hf"], monkeypatch)
    assert recipe.section("data")["cache_path"] == str(tmp_path / "pipe" / "cache")      # in the file
    assert recipe.section("model")["cache_dir"] == str(tmp_path / "cwd" / "hf")           # typed in the shell
    assert recipe.section("training")["output_dir"] == str(stage.dir / "model")          # wired by the pipeline
    assert recipe.section("data")["train_data"] == [str(stage.dir.parent / "06-score-r1" / "train.jsonl")]
    assert recipe.section("training")["max_steps"] == 2
    assert run_kw == {"resume": True}
    assert recipe.where("data.cache_path") == f"{pipeline}:{_line_of(pipeline, 'cache_path: cache')}"


def test_a_bad_stage_setting_names_the_pipeline_line(pipeline):
    text = pipeline.read_text().replace("training: {max_steps: 2", "training: {learning_rate: fast, max_steps: 2", 1)
    pipeline.write_text(text)
    line = _line_of(pipeline, "learning_rate: fast")
    with pytest.raises(UserError, match=rf"{pipeline}:{line}: training.learning_rate: "):
        load_spec(pipeline)


def _line_of(path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)
