"""Hostile recipe files and overrides (issue 9 items 7, 12, 13, 14, 17): one clear message each, bounded
output, nothing written. Everything goes through ``bgeft validate`` (the same loader and checks as train)."""
from __future__ import annotations

import os

import pytest

from tests.hostile.conftest import TreeGuard

MAX_ERROR = 2000  # a hostile file never produces more than this much error text


@pytest.fixture
def work(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"query": "q", "pos": ["p"], "neg": ["n"]}\n', encoding="utf-8")
    return tmp_path


GOOD = ("task: embedder.m3\nmodel: {model_name_or_path: BAAI/bge-m3}\ndata: {train_data: [train.jsonl]}\n"
        "training: {output_dir: out}\n")


def validate(run_cli, work, text: str | bytes, *overrides: str):
    path = work / "r.yaml"
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    guard = TreeGuard(work)
    code, out, err = run_cli("validate", path, *overrides)
    guard.assert_only()
    assert len(err) < MAX_ERROR, f"unbounded error output ({len(err)} characters)"
    return code, out, err, path


def bomb(levels: int = 12) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + f"\ntask: embedder.m3\ntraining: {{label_names: *a{levels - 1}}}\n"


CASES = {
    "alias bomb": (bomb(), r"r.yaml:\d+: YAML aliases \(\*name\) expand to more than 100000 values here \(an alias "
                           r"bomb\?\); write the values out or use fewer aliases"),
    "100k nested [": ("task: " + "[" * 100_000, r"r.yaml:1: nested more than 64 levels deep; a recipe or pipeline "
                                                r"file is a few levels of key: value"),
    "UTF-16": (GOOD.encode("utf-16"), r"r.yaml: recipe is UTF-16 text; save it as UTF-8"),
    "invalid UTF-8": (b"task: embedder.m3\nmodel: {model_name_or_path: caf\xe9}\n",
                      r"r.yaml:2: recipe is not UTF-8 text \(byte 0xe9 at offset 49\); save it as UTF-8"),
    "duplicate key": (GOOD + "task: embedder.base\n", r"r.yaml:5: task: duplicate key \(the earlier one would be "
                                                      r"silently ignored\): keep one"),
    "duplicate nested key": (GOOD.replace("{output_dir: out}", "{output_dir: out, output_dir: /other}"),
                             r"r.yaml:4: training.output_dir: duplicate key"),
    "integer key": (GOOD + "1: one\n", r"r.yaml:5: keys must be strings, got 1: quote it or rename it"),
    "task as list": (GOOD.replace("task: embedder.m3", "task: [embedder.m3]"),
                     r"r.yaml:1: task: unknown task \['embedder.m3'\]; tasks: embedder.m3, "),
    "task as dict": (GOOD.replace("task: embedder.m3", "task: {a: 1}"), r"r.yaml:1: task: unknown task \{'a': 1\}; "),
    "training as list": (GOOD.replace("training: {output_dir: out}", "training: [1]"),
                         r"r.yaml:4: training: must be a mapping of key: value"),
    "not a mapping": ("- task\n", r"r.yaml: a recipe is a YAML mapping with keys task, launch, model, data, training"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_hostile_recipe_file_is_one_message(run_cli, work, case):
    text, message = CASES[case]
    code, out, err, path = validate(run_cli, work, text)
    assert code == 2 and "Traceback" not in err
    assert err.startswith("bgeft: error: "), err
    import re
    assert re.search(message, err), err


def test_recipe_that_is_a_fifo_is_refused_not_read(run_cli, work):
    fifo = work / "r.yaml"
    os.mkfifo(fifo)
    guard = TreeGuard(work)
    code, _, err = run_cli("validate", fifo)
    guard.assert_only()
    assert code == 2 and f"recipe {fifo}: is a FIFO (named pipe), not a regular file" in err


def test_fifo_train_data_is_refused_before_anything_reads_it(run_cli, work):
    os.mkfifo(work / "pipe.jsonl")
    code, _, err, path = validate(run_cli, work, GOOD.replace("[train.jsonl]", "[pipe.jsonl]"))
    assert code == 2
    assert f"{path}:3: data.train_data: {work / 'pipe.jsonl'}: is a FIFO (named pipe), not a regular file" in err
    (work / "pipe.jsonl").unlink()
    (work / "dir").mkdir()
    os.mkfifo(work / "dir" / "part.jsonl")
    code, _, err, path = validate(run_cli, work, GOOD.replace("[train.jsonl]", "[dir]"))
    assert code == 2 and f"{work / 'dir' / 'part.jsonl'}: is a FIFO (named pipe)" in err


def test_list_item_cannot_inject_an_option(run_cli, work):
    code, _, err, path = validate(run_cli, work, GOOD, "training.label_names=[x, --output_dir, /other]")
    assert code == 2
    assert ("override 'training.label_names=[x, --output_dir, /other]': training.label_names: value '--output_dir' "
            "starts with '-', so the training command would read it as an option; a value cannot start with '-' "
            "(set each option under its own key)") in err
    code, _, err, path = validate(run_cli, work, GOOD.replace("{output_dir: out}", "{output_dir: out, run_name: --x}"))
    assert code == 2 and f"{path}:4: training.run_name: value '--x' starts with '-'" in err


def test_negative_numbers_are_values_not_options(run_cli, work):
    code, out, err, _ = validate(run_cli, work, GOOD, "training.max_steps=-1", "training.seed=-3")
    assert code == 0, err


def test_to_argv_refuses_option_words_on_its_own():
    from bgeft.config.recipe import to_argv
    from bgeft.errors import UserError

    assert to_argv({"label_names": ["a", "-1"], "max_steps": -1}) == ["--label_names", "a", "-1", "--max_steps", "-1"]
    with pytest.raises(UserError, match=r"^label_names: value '--output_dir' starts with '-'"):
        to_argv({"label_names": ["x", "--output_dir", "/other"]})


def test_deleting_a_missing_key_is_an_error_like_the_pipeline(run_cli, work):
    code, _, err, path = validate(run_cli, work, GOOD, "~training.learnig_rate")
    assert code == 2
    assert (f"bgeft: error: override '~training.learnig_rate': training.learnig_rate is not set in {path}, so "
            "there is nothing to delete") in err


def test_alias_bomb_in_an_override_is_bounded(run_cli, work):
    value = "[" + ", ".join(["&a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"] + ["*a"] * 20000) + "]"
    code, _, err, _ = validate(run_cli, work, GOOD, f"training.label_names={value}")
    assert code == 2 and "YAML aliases (*name) expand to more than 100000 values" in err


def test_long_values_are_cut_in_messages(run_cli, work):
    code, _, err, path = validate(run_cli, work, GOOD, "training.learning_rate=" + "x" * 100_000)
    assert code == 2 and "... (100002 characters)" in err
