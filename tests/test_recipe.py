"""Recipe loading, overrides, path resolution and validation (no torch involved)."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from bgeft.config import recipe as recipes
from bgeft.config.fe_fields import live_schema, load_schema
from bgeft.errors import UserError

REPO = Path(__file__).resolve().parent.parent
SHIPPED = sorted((REPO / "recipes").glob("*.yaml"))


def write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


GOOD = textwrap.dedent("""\
    task: embedder.m3
    model:
      model_name_or_path: BAAI/bge-m3
    data:
      train_data: [{data}]
    training:
      output_dir: out
      learning_rate: 1e-5
""")


@pytest.fixture
def data_file(tmp_path):
    p = tmp_path / "train.jsonl"
    p.write_text('{"query": "q", "pos": ["p"], "neg": ["n"]}\n', encoding="utf-8")
    return p


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_recipe_validates_and_opens_with_its_command(path):
    checked = recipes.validate(recipes.load(path))
    assert checked.data["task"]
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# ") and any("bgeft " in line for line in lines[:4]), (
        "recipe must open with its command"
    )


def test_shipped_recipe_list_is_not_empty():
    assert len(SHIPPED) >= 11


def test_schema_snapshot_matches_live_dataclasses():
    snap, from_snapshot = load_schema()
    assert from_snapshot, "schema_snapshot.json is stale: run `python -m bgeft.config.fe_fields`"
    assert snap == live_schema()


def test_relative_paths_resolve_against_the_recipe_file(tmp_path, data_file, monkeypatch):
    sub = tmp_path / "recipes"
    sub.mkdir()
    path = write(sub, GOOD.format(data="../train.jsonl"))
    monkeypatch.chdir("/")
    checked = recipes.validate(recipes.load(path))
    assert checked.section("data")["train_data"] == [str(data_file)]
    assert checked.section("training")["output_dir"] == str(sub / "out")
    assert checked.section("model")["model_name_or_path"] == "BAAI/bge-m3"  # a hub id stays as it is
    assert checked.section("training")["learning_rate"] == 1e-5  # YAML reads 1e-5 as a string


def test_overrides_set_delete_and_resolve_against_cwd(tmp_path, data_file, monkeypatch):
    path = write(tmp_path, GOOD.format(data=data_file))
    monkeypatch.chdir(tmp_path)
    r = recipes.apply_overrides(recipes.load(path), [
        "training.learning_rate=2e-5", "data.train_group_size=4", "~training.output_dir",
        "training.output_dir=./elsewhere", "data.train_data=[train.jsonl]", "training.unified_finetuning=true"])
    checked = recipes.validate(r)
    t = checked.section("training")
    assert t["learning_rate"] == 2e-5 and t["unified_finetuning"] is True
    assert t["output_dir"] == str(tmp_path / "elsewhere")
    assert checked.section("data") == {"train_data": [str(data_file)], "train_group_size": 4}


@pytest.mark.parametrize("override", ["learning_rate=1", "training.=1", "training.lr", "a.b.c=1", "~training.x=1"])
def test_bad_override_syntax(tmp_path, data_file, override):
    path = write(tmp_path, GOOD.format(data=data_file))
    with pytest.raises(
        UserError, match=rf"override '{override}': expected section.key=value \(or ~section.key to delete\)"
    ):
        recipes.apply_overrides(recipes.load(path), [override])


def test_typo_key_is_reported_with_file_line_and_suggestion(tmp_path, data_file):
    path = write(tmp_path, GOOD.format(data=data_file) + "  learnig_rate: 1e-5\n")
    with pytest.raises(UserError) as exc:
        recipes.validate(recipes.load(path))
    assert f"{path}:9: training.learnig_rate: unknown key (did you mean learning_rate?); it is not a field of " \
           "EncoderOnlyEmbedderM3TrainingArguments" in str(exc.value)


def test_all_problems_are_reported_together(tmp_path):
    path = write(tmp_path, """\
        task: embedder.m3
        lanuch: {}
        model:
          model_name_or_path: BAAI/bge-m3
          colbert_dim: many
        data:
          train_data: [missing.jsonl]
          train_group_size: 2.5
        training:
          output_dir: out
          unified_finetuning: maybe
          use_self_distill: true
          use_cpu: true
    """)
    with pytest.raises(UserError) as exc:
        recipes.validate(recipes.load(path))
    msg = str(exc.value)
    assert msg.startswith(f"6 problem(s) in {path}:")
    for expected in [
        f"{path}:2: lanuch: unknown section (did you mean launch?); a recipe has task, launch, model, data, training",
        f"{path}:5: model.colbert_dim: expected an integer, got 'many'",
        f"{path}:8: data.train_group_size: expected an integer, got 2.5",
        f"{path}:11: training.unified_finetuning: expected true or false, got 'maybe'",
        f"{path}:13: training.use_cpu: managed by bgeft: set launch.device: cpu instead",
        f"{path}:7: data.train_data: {tmp_path / 'missing.jsonl'} does not exist; fix the path (relative paths resolve "
        "against the recipe file)",
    ]:
        assert expected in msg


def test_self_distill_needs_unified_finetuning(tmp_path, data_file):
    path = write(tmp_path, GOOD.format(data=data_file) + "  use_self_distill: true\n")
    with pytest.raises(
        UserError, match=r"r.yaml:9: training.use_self_distill: needs training.unified_finetuning: true"
    ):
        recipes.validate(recipes.load(path))


def test_unknown_task(tmp_path, data_file):
    path = write(tmp_path, GOOD.format(data=data_file).replace("embedder.m3", "embedder.m4"))
    with pytest.raises(UserError, match=r"r.yaml:1: task: unknown task 'embedder.m4' \(did you mean embedder.m3\?\); "
                                        r"tasks: embedder.m3, embedder.base"):
        recipes.validate(recipes.load(path))


def test_reranker_without_drop_last(tmp_path, data_file):
    path = write(tmp_path, GOOD.format(data=data_file).replace("embedder.m3", "reranker.base")
                 .replace("  learning_rate", "  learning_rate"))
    with pytest.raises(UserError, match=r"training.dataloader_drop_last: must be true for rerankers"):
        recipes.validate(recipes.load(path))


def test_missing_deepspeed_config_and_bad_launch_values(tmp_path, data_file):
    path = write(tmp_path, GOOD.format(data=data_file) + "launch:\n  deepspeed: nope.json\n  nproc_per_node: 0\n"
                 "  device: tpu\n  precison: bf16\n")
    with pytest.raises(UserError) as exc:
        recipes.validate(recipes.load(path))
    msg = str(exc.value)
    assert (
        f"{path}:10: launch.deepspeed: {tmp_path / 'nope.json'} does not exist; use one of ds_configs/zero*.json" in msg
    )
    assert "launch.nproc_per_node: expected int or 'auto' (all visible GPUs/NPUs; 1 on CPU), got 0" in msg
    assert "launch.device: expected auto | cuda | npu | cpu, got 'tpu'" in msg
    assert "launch.precison: unknown key (did you mean precision?)" in msg


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "task: embedder.m3\nmodel: [unclosed\n")
    with pytest.raises(UserError, match=rf"{path}:3: not valid YAML"):
        recipes.load(path)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(UserError, match=r"nope.yaml: recipe not found \(list the shipped ones with `bgeft ls`"):
        recipes.load(tmp_path / "nope.yaml")


def test_yaml_no_for_a_strategy_is_the_string_no(tmp_path, data_file):
    path = write(tmp_path, GOOD.format(data=data_file) + "  save_strategy: no\n  eval_strategy: off\n")
    checked = recipes.validate(recipes.load(path))
    assert checked.section("training")["save_strategy"] == "no"
    path = write(tmp_path, GOOD.format(data=data_file) + "  save_strategy: sometimes\n")
    with pytest.raises(
        UserError, match=r"r.yaml:9: training.save_strategy: 'sometimes' is not one of no, steps, epoch, best"
    ):
        recipes.validate(recipes.load(path))


def test_to_argv_lists_bools_and_skips_none():
    assert recipes.to_argv({"train_data": ["a", "b"], "fp16": False, "x": None, "mrl_dims": [], "lr": 1e-5}) == \
        ["--train_data", "a", "b", "--fp16", "False", "--lr", "1e-05"]


def test_validate_does_not_import_torch(tmp_path):
    import subprocess
    recipe = str(REPO / "recipes" / "bge-m3_unified.yaml")
    code = (f"import sys; from bgeft.cli.main import main; rc = main(['validate', {recipe!r}]); "
            "print('torch' in sys.modules, rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False 0")
