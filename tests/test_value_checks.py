"""Recipe values, not only types: out-of-range settings are refused before launch with key, value and fix."""
from __future__ import annotations

import json
import re
import textwrap

import pytest

from bgeft.config import recipe as recipes
from bgeft.errors import UserError

EMBEDDER = """\
    task: embedder.m3
    model:
      model_name_or_path: {model}
    data:
      train_data: [{data}]
    training:
      output_dir: out
      learning_rate: 1e-5
"""
RERANKER = EMBEDDER.replace("embedder.m3", "reranker.base").replace(
    "learning_rate: 1e-5", "learning_rate: 1e-5\n      dataloader_drop_last: true")


@pytest.fixture
def recipe_file(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"query": "q", "pos": ["p"], "neg": ["n"]}\n', encoding="utf-8")

    def make(template=EMBEDDER, model="BAAI/bge-m3"):
        path = tmp_path / "r.yaml"
        path.write_text(textwrap.dedent(template).format(model=model, data=data), encoding="utf-8")
        return path
    return make


def problems(path, *overrides):
    with pytest.raises(UserError) as info:
        recipes.validate(recipes.apply_overrides(recipes.load(path), list(overrides)))
    return [line.strip() for line in str(info.value).splitlines()[1:]]


@pytest.mark.parametrize("override,message", [
    ("training.learning_rate=0", "training.learning_rate: 0 is out of range: must be > 0; e.g. 1e-5 (embedders) "
                                 "or 6e-5 (rerankers)"),
    ("training.per_device_train_batch_size=0", "training.per_device_train_batch_size: 0 is out of range: must be "
                                               ">= 1; e.g. 4"),
    ("training.max_steps=0", "training.max_steps: 0 trains nothing: give a positive number of optimizer steps, or -1 "
                             "(the default) to let num_train_epochs decide"),
    ("training.num_train_epochs=0", "training.num_train_epochs: 0 is out of range: must be > 0; e.g. 1 (or set "
                                    "max_steps)"),
    ("training.temperature=0", "training.temperature: 0 is out of range: must be > 0; e.g. 0.02"),
    ("training.save_steps=0", "training.save_steps: 0 is out of range: must be > 0; a number of steps, e.g. 500 "
                              "(or a fraction < 1 of all steps)"),
    ("training.logging_steps=-1", "training.logging_steps: -1 is out of range: must be > 0; a number of steps, "
                                  "e.g. 10 (or a fraction < 1 of all steps)"),
    ("data.query_max_len=0", "data.query_max_len: 0 is out of range: must be >= 1; e.g. 64"),
])
def test_out_of_range_value_names_key_value_and_fix(recipe_file, override, message):
    assert problems(recipe_file(), override) == [f"override {override!r}: {message}"]


def test_reranker_group_needs_negatives(recipe_file):
    (line,) = problems(recipe_file(RERANKER), "data.train_group_size=1")
    assert line == ("override 'data.train_group_size=1': data.train_group_size: 1 is out of range: must be >= 2 (a "
                    "reranker scores each query's positive against its negatives: with fewer than 2 there is nothing "
                    "to rank); e.g. 8 (1 positive + 7 negatives)")


def test_every_problem_reported_together_with_its_line(recipe_file):
    path = recipe_file()
    path.write_text(path.read_text().replace("learning_rate: 1e-5", "learning_rate: -1\n  temperature: 0"))
    lines = problems(path)
    assert lines == [f"{path.resolve()}:8: training.learning_rate: -1 is out of range: must be > 0; e.g. 1e-5 "
                     "(embedders) or 6e-5 (rerankers)",
                     f"{path.resolve()}:9: training.temperature: 0 is out of range: must be > 0; e.g. 0.02"]


def test_max_length_beyond_the_local_models_positions(recipe_file, demo_model, tiny_xlmr):
    positions = json.loads((demo_model / "config.json").read_text())["max_position_embeddings"]
    (line,) = problems(recipe_file(model=demo_model), f"data.passage_max_len={positions + 1}")
    assert line == (f"override 'data.passage_max_len={positions + 1}': data.passage_max_len: {positions + 1} is longer "
                    f"than the model can read: {demo_model}/config.json allows {positions} tokens "
                    f"(max_position_embeddings); set data.passage_max_len: {positions} or less")
    recipes.validate(recipes.apply_overrides(recipes.load(recipe_file(model=demo_model)),
                                             [f"data.passage_max_len={positions}"]))
    # XLM-R style models keep two positions for the padding offset
    xlmr_positions = json.loads((tiny_xlmr / "config.json").read_text())["max_position_embeddings"]
    (line,) = problems(recipe_file(model=tiny_xlmr), f"data.query_max_len={xlmr_positions - 1}")
    assert re.search(rf"allows {xlmr_positions - 2} tokens", line)


def test_a_hub_id_is_not_looked_up(recipe_file):
    recipes.validate(recipes.apply_overrides(recipes.load(recipe_file()), ["data.passage_max_len=8192"]))


def test_train_refuses_before_writing_anything(recipe_file, tmp_path, run_cli):
    path = recipe_file()
    code, _, err = run_cli("train", path, "training.learning_rate=0", "--dry-run")
    assert code == 2 and "training.learning_rate: 0 is out of range" in err
    code, _, err = run_cli("train", path, "training.learning_rate=0")
    assert code == 2 and "training.learning_rate: 0 is out of range" in err
    assert not (tmp_path / "out").exists()
