"""``bgeft train --overwrite`` (issue 9 item 1) and the output directory's other hostile values (item 17):
refused with one message, nothing deleted or created anywhere; only a run directory bgeft made is cleared."""
from __future__ import annotations

import shutil

import pytest

from tests.hostile.conftest import TreeGuard
from tests.test_train_integration import bgeft, write_recipe


@pytest.fixture
def setup(tmp_path, tiny_xlmr):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(write_recipe.__globals__["RETRIEVAL"], data / "train.jsonl")
    (data / "notes.md").write_text("the user's own document\n")
    recipe = write_recipe(tmp_path, "embedder.base", tiny_xlmr)
    recipe.write_text(recipe.read_text().replace(str(write_recipe.__globals__["RETRIEVAL"]), str(data / "train.jsonl")))
    return tmp_path, recipe, data


def refused(run_cli, recipe, guard_roots, *args):
    guard = TreeGuard(*guard_roots)
    code, out, err = run_cli("train", recipe, *args)
    guard.assert_only()
    assert code == 2 and "Traceback" not in err, err
    return err


def test_overwrite_of_the_data_folder_is_refused(run_cli, setup):
    tmp_path, recipe, data = setup
    err = refused(run_cli, recipe, [tmp_path], f"training.output_dir={data}", "--overwrite")
    assert (f"bgeft: error: training.output_dir {data}: contains the input {data / 'train.jsonl'}; writing there "
            "could destroy it: choose an output outside the inputs") in err


def test_overwrite_of_the_folder_holding_the_recipe_is_refused(run_cli, setup):
    tmp_path, recipe, _ = setup
    err = refused(run_cli, recipe, [tmp_path], f"training.output_dir={tmp_path}", "--overwrite")
    assert f"training.output_dir {tmp_path}: contains the input {recipe}" in err


@pytest.mark.parametrize("where, why", [("cwd", "the working directory"), ("home", "your home directory"),
                                        ("/", "a filesystem root")])
def test_overwrite_of_protected_places_is_refused(run_cli, setup, monkeypatch, where, why):
    tmp_path, recipe, _ = setup
    place = tmp_path / "place"
    place.mkdir()
    (place / "keep.txt").write_text("x")
    monkeypatch.chdir(place) if where == "cwd" else None
    monkeypatch.setenv("HOME", str(place)) if where == "home" else None
    target = "/" if where == "/" else str(place)
    err = refused(run_cli, recipe, [tmp_path], f"training.output_dir={target}", "--overwrite")
    assert f"bgeft: error: training.output_dir {target}: is {why}; bgeft never writes over it" in err


def test_overwrite_of_a_folder_bgeft_did_not_make_is_refused(run_cli, setup):
    tmp_path, recipe, _ = setup
    other = tmp_path / "docs"
    (other / ".git").mkdir(parents=True)
    (other / "thesis.tex").write_text("years of work")
    err = refused(run_cli, recipe, [tmp_path], f"training.output_dir={other}", "--overwrite")
    assert (
        f"bgeft: error: --overwrite: {other} was not made by bgeft (no bgeft_run.yaml in it; it holds .git, "
        "thesis.tex); bgeft deletes only its own run directories: choose a new directory or empty it yourself"
    ) in err


def test_overwrite_keeps_a_run_dir_holding_foreign_files(run_cli, setup):
    tmp_path, recipe, _ = setup
    out = tmp_path / "out"
    out.mkdir()
    (out / "bgeft_run.yaml").write_text("task: embedder.base\n")
    (out / "checkpoint-2").mkdir()
    (out / "my-notes.txt").write_text("mine")
    err = refused(run_cli, recipe, [tmp_path], "--overwrite")
    assert (f"bgeft: error: --overwrite: {out} holds 1 entry bgeft did not write (my-notes.txt); nothing was "
            "deleted: move them out or choose a new directory") in err


def test_output_dir_under_an_unwritable_parent(run_cli, setup):
    tmp_path, recipe, _ = setup
    err = refused(run_cli, recipe, [tmp_path], "training.output_dir=/sys/bgeft-out")
    assert ("bgeft: error: training.output_dir /sys/bgeft-out: cannot be created (Operation not permitted); "
            "choose a directory you can write to") in err
    (tmp_path / "afile").write_text("x")
    err = refused(run_cli, recipe, [tmp_path], f"training.output_dir={tmp_path / 'afile' / 'out'}")
    assert (f"training.output_dir {tmp_path / 'afile' / 'out'}: cannot be inspected (Not a directory); choose "
            "another path") in err


def test_overwrite_clears_a_finished_run_and_retrains(setup):
    tmp_path, recipe, data = setup
    out = tmp_path / "out"
    first = bgeft("train", recipe)
    assert first.returncode == 0, first.stderr[-3000:]
    assert (out / ".bgeft-owned.json").is_file()
    guard = TreeGuard(tmp_path)
    second = bgeft("train", recipe, "--overwrite")
    assert second.returncode == 0, second.stderr[-3000:]
    guard.assert_only("out")
    assert (out / "model.safetensors").is_file() and not list(out.glob(".bgeft-trash-*"))
