"""Hostile pipeline files and edits (issue 9 items 9, 12, 14, 16): the stage cache sees a same-size edit
with its mtime restored, absurd rounds and bad eval.k stop at --dry-run, aliases are bounded, and a
training stage's token never reaches stage.json or the console."""
from __future__ import annotations

import json
import os

import pytest

from bgeft.pipeline.graph import build_stages
from bgeft.pipeline.runner import Runner
from bgeft.pipeline.spec import load_spec
from tests.hostile.conftest import PLANTED_SECRET, TreeGuard, assert_no_secret
from tests.pipeline.helpers import tiny_pipeline
from tests.pipeline.test_runner import _run, ran


@pytest.fixture
def pipeline(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    return tiny_pipeline(tmp_path, model)


def test_same_size_edit_with_restored_mtime_reruns(pipeline, tmp_path):
    book = tmp_path / "book.txt"
    book.write_text("Chapter 1\n\nThe river runs east.\n", encoding="utf-8")
    _run(pipeline, [f"corpus.books=[{book}]"])
    st = book.stat()
    book.write_text("Chapter 1\n\nThe river runs west.\n", encoding="utf-8")  # same size
    os.utime(book, ns=(st.st_atime_ns, st.st_mtime_ns))                      # mtime put back
    assert book.stat().st_size == st.st_size and book.stat().st_mtime_ns == st.st_mtime_ns
    bodies, _ = _run(pipeline, [f"corpus.books=[{book}]"])
    assert "corpus" in ran(bodies) and len(bodies.calls) == 15


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "rounds=200000",
            r"override 'rounds=200000': rounds: must be an integer from 1 to 50 \(training rounds; round 2\+ "
            r"re-mines with the previous round's retriever\), got 200000",
        ),
        (
            "eval.k=[0, 5]",
            r"override 'eval.k=\[0, 5\]': eval.k: a list of cut-offs, each an integer from 1 to 10000 "
            r"\(e.g. \[1, 5, 10\]\), got \[0, 5\]",
        ),
        (
            "eval.k=[ten]",
            r"eval.k: a list of cut-offs, each an integer from 1 to 10000 \(e.g. \[1, 5, 10\]\), got \['ten'\]",
        ),
        ("eval.k=[]", r"eval.k: a list of cut-offs, each an integer from 1 to 10000"),
        ("eval.retrieve_top=0", r"eval.retrieve_top: must be at least 1, got 0"),
    ],
)
def test_bad_rounds_and_eval_k_stop_at_dry_run(run_cli, pipeline, tmp_path, override, message):
    import re
    guard = TreeGuard(tmp_path)
    code, out, err = run_cli("pipeline", "run", pipeline, override, "--dry-run")
    guard.assert_only()
    assert code == 2 and "Traceback" not in err and re.search(message, err), err


def test_pipeline_alias_bomb_and_duplicates_use_the_one_loader(run_cli, tmp_path):
    bomb = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    bomb += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 12)]
    path = tmp_path / "p.yaml"
    path.write_text("\n".join(bomb) + "\nrounds: *a11\n")
    code, _, err = run_cli("pipeline", "run", path, "--dry-run")
    assert code == 2 and "YAML aliases (*name) expand to more than 100000 values" in err and len(err) < 2000
    path.write_text("rounds: 1\nrounds: 2\n")
    code, _, err = run_cli("pipeline", "run", path, "--dry-run")
    assert code == 2 and f"{path}:2: rounds: duplicate key" in err
    path.write_bytes("rounds: 1\n".encode("utf-16"))
    code, _, err = run_cli("pipeline", "run", path, "--dry-run")
    assert code == 2 and f"{path}: pipeline file is UTF-16 text; save it as UTF-8" in err


def test_a_stage_token_stays_out_of_stage_json_and_the_console(pipeline, tmp_path, capsys):
    secret = [f"train_embedder.model.token={PLANTED_SECRET}"]
    spec = load_spec(pipeline, secret)
    runner = Runner(spec, build_stages(spec))
    runner.print_plan(runner.plan())
    bodies, _ = _run(pipeline, secret)
    out, err = capsys.readouterr()
    work = tmp_path / "work"
    manifest = json.loads((work / "07-train_embedder-r1" / "stage.json").read_text())
    assert manifest["params"]["model"]["token"] == "***"
    assert_no_secret(out, err, dirs=[work])
    # the token is not part of the stage key: changing it re-runs nothing
    again, _ = _run(pipeline, ["train_embedder.model.token=hf_another_value_123"])
    assert again.calls == []


@pytest.mark.parametrize("work_dir, why", [(".", "is the working directory"), ("/", "is a filesystem root")])
def test_work_dir_on_a_protected_place_is_refused(run_cli, pipeline, tmp_path, monkeypatch, work_dir, why):
    monkeypatch.chdir(tmp_path)
    guard = TreeGuard(tmp_path)
    code, _, err = run_cli("pipeline", "run", pipeline, f"work_dir={work_dir}", "--dry-run")
    guard.assert_only()
    shown = tmp_path if work_dir == "." else work_dir
    assert (
        code == 2 and f"override 'work_dir={work_dir}': work_dir {shown}: {why}; bgeft never writes over it" in err
    ), err


def test_work_dir_holding_the_book_is_refused(run_cli, pipeline, tmp_path):
    book = tmp_path / "books" / "b.txt"
    book.parent.mkdir()
    book.write_text("Chapter 1\n\nA river.\n")
    code, _, err = run_cli("pipeline", "run", pipeline, f"corpus.books=[{book}]", f"work_dir={book.parent}",
                           "--dry-run")
    assert code == 2 and f"work_dir {book.parent}: contains the input {book}" in err, err
