"""The pipeline file: every mistake is reported with file:line before any stage runs."""
from __future__ import annotations

import pytest

from bgeft.errors import UserError
from bgeft.pipeline.graph import build_stages
from bgeft.pipeline.spec import load_spec

from .helpers import tiny_pipeline


@pytest.fixture
def model_dir(tmp_path):
    d = tmp_path / "model"
    d.mkdir()
    return d


def _line_of(path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_valid_pipeline_expands_into_numbered_stages_with_rounds(tmp_path, model_dir):
    spec = load_spec(tiny_pipeline(tmp_path, model_dir))
    names = [st.dir.name for st in build_stages(spec)]
    assert names == ["01-corpus", "02-queries", "03-split", "04-eval-base",
                     "05-mine-r1", "06-score-r1", "07-train_embedder-r1", "08-train_reranker-r1", "09-eval-r1",
                     "10-mine-r2", "11-score-r2", "12-train_embedder-r2", "13-train_reranker-r2", "14-eval-r2",
                     "15-report"]
    assert spec.work_dir == (tmp_path / "work").resolve()
    stages = {st.name: st for st in build_stages(spec)}
    # round 2 re-mines with round 1's retriever, scores with round 1's reranker, trains from round 1's weights
    assert stages["mine-r2"].refs["retriever"] == ("stage", "train_embedder-r1")
    assert stages["score-r2"].refs["reranker"] == ("stage", "train_reranker-r1")
    assert stages["train_embedder-r2"].refs["init"] == ("stage", "train_embedder-r1")
    assert stages["train_reranker-r2"].refs["init"] == ("stage", "train_reranker-r1")
    assert stages["mine-r1"].refs["retriever"] == ("ext", str(model_dir))


def test_bad_stage_name_fails_naming_the_line(tmp_path, model_dir, run_cli):
    path = tiny_pipeline(tmp_path, model_dir, extra="minee:\n  negatives: 3\n")
    code, out, err = run_cli("pipeline", "run", path)
    assert code == 2
    line = _line_of(path, "minee:")
    assert f"{path}:{line}: unknown stage 'minee' (did you mean mine?)" in err
    assert not (tmp_path / "work").exists()  # nothing ran


def test_missing_recipe_fails_naming_the_line(tmp_path, model_dir, run_cli):
    path = tiny_pipeline(tmp_path, model_dir)
    path.write_text(path.read_text().replace("recipe: demo_cpu_m3", "recipe: demo_cpu_m4"))
    code, out, err = run_cli("pipeline", "run", path)
    assert code == 2
    line = _line_of(path, "recipe: demo_cpu_m4")
    assert (f"{path}:{line}: train_embedder.recipe: no shipped recipe named 'demo_cpu_m4' (did you mean demo_cpu_m3, "
            "demo_cpu_embedder, demo_cpu_reranker?); `bgeft ls` lists them, or give a path to a .yaml") in err
    assert not (tmp_path / "work").exists()


def test_recipe_settings_are_validated_by_the_recipe_layer(tmp_path, model_dir):
    path = tiny_pipeline(tmp_path, model_dir)
    with pytest.raises(UserError, match=r"training.learnig_rate: unknown key \(did you mean learning_rate\?\)"):
        load_spec(path, ["train_embedder.training.learnig_rate=1e-5"])


def test_every_problem_is_reported_together(tmp_path, model_dir):
    path = tiny_pipeline(tmp_path, model_dir)
    text = path.read_text().replace("negatives: 2", "negatives: two").replace("by: paragraph", "by: chapter")
    path.write_text(text)
    with pytest.raises(UserError) as info:
        load_spec(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: 2 problem(s):")
    assert f"{path}:{_line_of(path, 'negatives: two')}: mine.negatives: must be an integer, got 'two'" in msg
    assert (
        f"{path}:{_line_of(path, 'by: chapter')}: corpus.by: one of sentence, paragraph, window; got 'chapter'" in msg
    )


def test_unknown_key_and_missing_files(tmp_path, model_dir):
    path = tiny_pipeline(tmp_path, model_dir)
    path.write_text(path.read_text().replace("  negatives: 2", "  negative: 2"))
    with pytest.raises(UserError, match=r"mine.negative: unknown key \(did you mean negatives\?\)"):
        load_spec(path)
    with pytest.raises(
        UserError, match=r"override .queries.file=nowhere.jsonl.: queries.file: .*nowhere.jsonl: no such file"
    ):
        load_spec(tiny_pipeline(tmp_path, model_dir), ["queries.file=nowhere.jsonl"])
    with pytest.raises(UserError, match=r"base.retriever: missing-model: no such model directory"):
        load_spec(tiny_pipeline(tmp_path, model_dir), ["base.retriever=missing-model"])


def test_overrides_set_and_delete(tmp_path, model_dir):
    path = tiny_pipeline(tmp_path, model_dir)
    spec = load_spec(path, ["rounds=3", "mine.negatives=4", "train_embedder.training.learning_rate=3e-5",
                            "~score", "~train_reranker"])
    assert spec.rounds == 3 and spec.data["mine"]["negatives"] == 4
    assert spec.data["train_embedder"]["training"]["learning_rate"] == 3e-5
    kinds = [st.kind for st in build_stages(spec)]
    assert "score" not in kinds and "train_reranker" not in kinds and kinds.count("train_embedder") == 3
    with pytest.raises(UserError, match=r"override 'rounds': expected section.key=value"):
        load_spec(path, ["rounds"])
    with pytest.raises(UserError, match=r"override 'rounds.x=1': rounds is not a section, so it has no keys"):
        load_spec(path, ["rounds.x=1"])
    with pytest.raises(UserError, match=r"rounds: must be an integer from 1 to 50"):
        load_spec(path, ["rounds=0"])


def test_invalid_yaml_and_duplicate_keys_name_the_line(tmp_path, model_dir):
    path = tiny_pipeline(tmp_path, model_dir)
    path.write_text(path.read_text() + "rounds: 3\n")
    with pytest.raises(UserError, match=rf"{path}:\d+: rounds: duplicate key"):
        load_spec(path)
    path.write_text("work_dir: [unclosed\n")
    with pytest.raises(UserError, match=rf"{path}:2: not valid YAML"):
        load_spec(path)


def test_from_names_an_unknown_stage(tmp_path, model_dir, run_cli):
    code, out, err = run_cli("pipeline", "run", tiny_pipeline(tmp_path, model_dir), "--from", "train")
    assert code == 2
    assert "--from train: no such stage in this pipeline; its stages are: corpus, queries, split" in err


def test_shipped_pipelines_validate_and_open_with_their_command(repo_root):
    files = sorted((repo_root / "pipelines").glob("*.yaml"))
    assert {p.stem for p in files} >= {"demo_cpu", "book_retrieval"}
    for path in files:
        lines = path.read_text().splitlines()
        assert lines[0].startswith("# ") and any(f"bgeft pipeline run pipelines/{path.name}" in ln for ln in lines[:4])
        spec = load_spec(path)  # validates, recipes included, without touching a model
        assert spec.rounds >= 2
        kinds = [st.kind for st in build_stages(spec)]
        assert kinds.count("train_embedder") == kinds.count("train_reranker") == spec.rounds


def test_dry_run_prints_the_plan_and_touches_nothing(tmp_path, model_dir, run_cli):
    code, out, err = run_cli("pipeline", "run", tiny_pipeline(tmp_path, model_dir), "rounds=1", "--dry-run")
    assert code == 0, err
    assert f"-> {tmp_path / 'work'} (1 round(s), 10 stages)" in out
    assert "  01-corpus             run     not run yet\n" in out
    assert "  10-report             run     after eval-r1 re-runs\n" in out
    assert not (tmp_path / "work").exists()


def test_ls_lists_the_shipped_pipelines(run_cli):
    code, out, _ = run_cli("pipeline", "ls")
    assert code == 0
    assert out.startswith("book_retrieval ") and "\ndemo_cpu " in out


def test_a_packaged_pipeline_writes_under_the_working_directory(tmp_path, monkeypatch, repo_root):
    import bgeft.assets

    monkeypatch.setattr(bgeft.assets, "PACKAGE_DIR", repo_root)  # as if pipelines/ were inside site-packages
    monkeypatch.chdir(tmp_path)
    spec = load_spec(repo_root / "pipelines" / "demo_cpu.yaml")
    assert spec.work_dir == tmp_path / "outputs" / "pipeline_demo_cpu"
    assert spec.data["corpus"]["books"] == [str(repo_root / "example_data" / "book" / "river_town.txt")]


def test_report_select_must_name_a_measured_metric(tmp_path, model_dir):
    path = tiny_pipeline(tmp_path, model_dir)
    assert load_spec(path, ["report.select=pipeline.reranked.ndcg@5"]).data["report"]["select"]
    with pytest.raises(UserError, match=r"override 'report.select=retriever.hybrid.ndcg@20': report.select: "
                                        r"'retriever.hybrid.ndcg@20' is not measured"):
        load_spec(path, ["report.select=retriever.hybrid.ndcg@20"])
    with pytest.raises(UserError, match=r"report.select: 'pipeline.reranked.ndcg@10' is not measured"):
        load_spec(path, ["~train_reranker", "~base.reranker", "~score", "report.select=pipeline.reranked.ndcg@10"])


def test_paths_in_overrides_resolve_against_the_working_directory(tmp_path, model_dir, monkeypatch):
    path = tiny_pipeline(tmp_path / "pipe", model_dir)
    (tmp_path / "cwd").mkdir()
    (tmp_path / "cwd" / "q.jsonl").write_text('{"query": "a", "answer_hint": "b"}\n')
    monkeypatch.chdir(tmp_path / "cwd")
    spec = load_spec(path, ["queries.file=q.jsonl", "work_dir=out"])
    assert spec.data["queries"]["file"] == str(tmp_path / "cwd" / "q.jsonl")
    assert spec.work_dir == tmp_path / "cwd" / "out"
    assert load_spec(path).work_dir == tmp_path / "pipe" / "work"  # in the file: against the file


def test_a_hub_model_that_cannot_be_fetched_is_a_clear_error(monkeypatch):
    from bgeft.models.resolve import materialise as materialise_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match=r"no-such-org/no-such-model: not a local model directory and it could not be "
                                        r"fetched from the Hugging Face Hub \(\w+\); download it first"):
        materialise_model("no-such-org/no-such-model")


def test_skip_invalid_is_a_stage_option(tmp_path, model_dir):
    path = tiny_pipeline(tmp_path, model_dir)
    spec = load_spec(path, ["mine.skip_invalid=true", "mine.max_rejects=5%", "score.skip_invalid=true"])
    assert (spec.data["mine"]["skip_invalid"], spec.data["mine"]["max_rejects"]) == (True, "5%")
    assert spec.data["score"]["skip_invalid"] and spec.data["score"]["max_rejects"] is None
    with pytest.raises(UserError, match=r"mine.max_rejects: a percentage is at most 100%"):
        load_spec(path, ["mine.skip_invalid=true", "mine.max_rejects=300%"])
    with pytest.raises(UserError, match=r"score.max_rejects: needs score.skip_invalid: true \(without it the first "
                                        r"bad row stops the stage\)"):
        load_spec(path, ["score.max_rejects=3"])


def test_mine_stage_keeps_its_rejects_in_the_stage_dir(tmp_path):
    from bgeft.pipeline.stages.model_stages import _rejects

    rejects = _rejects({"skip_invalid": True, "max_rejects": 3}, tmp_path / "05-mine-r1" / "train.jsonl")
    assert rejects.skip and rejects.limit == (3.0, False)
    assert rejects.path == tmp_path / "05-mine-r1" / "train.jsonl.rejects"


def test_a_work_dir_off_the_launchers_outputs_mount_moves_onto_it(tmp_path, model_dir, monkeypatch, run_cli):
    """run_docker_training.sh passes --outputs-root (the writable outputs mount) instead of reading the
    pipeline file: a work_dir written in the file outside it becomes ROOT/<file name>, with a note."""
    path = tiny_pipeline(tmp_path / "pipe", model_dir)
    outputs = tmp_path / "outputs"
    monkeypatch.chdir(tmp_path)
    note = (f"work_dir {tmp_path / 'pipe' / 'work'} is not under {outputs} (the outputs mount): the pipeline "
            f"writes to {outputs / 'pipeline'}; pass work_dir={outputs}/NAME to choose")
    spec = load_spec(path, outputs_root=outputs)
    assert (spec.work_dir, spec.notes) == (outputs / "pipeline", [note])
    assert load_spec(path).work_dir == tmp_path / "pipe" / "work"  # without the flag: as the file says
    code, out, err = run_cli("pipeline", "run", "--outputs-root", outputs, path, "--dry-run")
    assert code == 0 and err == f"bgeft: note: {note}\n" and f"-> {outputs / 'pipeline'} " in out
    typed = load_spec(path, ["work_dir=runs/x"], outputs_root=outputs)  # typed on the command line: kept
    assert (typed.work_dir, typed.notes) == (tmp_path / "runs" / "x", [])
    path.write_text(path.read_text().replace("work_dir: work", "work_dir: ../outputs/book"))
    on_mount = load_spec(path, outputs_root=outputs)  # already on the mount: kept
    assert (on_mount.work_dir, on_mount.notes) == (outputs / "book", [])
    assert not outputs.exists()
