"""Hostile run records for `bgeft reproduce` / `bgeft pipeline run --reproduce`: damaged or hand-made
environment.json, a FIFO in place of the manifest, a non-empty -o. One message each, exit 2, nothing
written."""
from __future__ import annotations

import json
import os

import pytest


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "bgeft_run.yaml").write_text("task: embedder.m3\n")
    (run / "environment.json").write_text(json.dumps({"packages": {}, "device": {"kind": "cpu", "count": 1}}))
    return run


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not an environment record written by bgeft (expected a JSON object)"),
    ('{"packages": ["torch"]}', "not an environment record written by bgeft (packages must be mappings)"),
    ('{"train_data_sha256": "x"}', "(train_data_sha256 must be mappings)"),
    (b"\xff\xfe", "not valid JSON"),
], ids=["not-json", "a-list", "packages-list", "hashes-string", "not-utf8"])
def test_a_damaged_environment_json_is_one_message(run_dir, run_cli, tree_guard, text, message):
    path = run_dir / "environment.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    guard = tree_guard(run_dir.parent)
    code, out, err = run_cli("reproduce", run_dir, "--dry-run")
    guard.assert_only()
    assert code == 2 and err.startswith(f"bgeft: error: {path}: ") and message in err
    assert "Traceback" not in err
    code, _, err = run_cli("pipeline", "run", "--reproduce", run_dir)
    assert code == 2 and "--reproduce" in err   # no pipeline_run.yaml there: one message too


def test_a_fifo_instead_of_the_manifest_is_refused(run_dir, run_cli):
    (run_dir / "bgeft_run.yaml").unlink()
    os.mkfifo(run_dir / "bgeft_run.yaml")
    code, _, err = run_cli("reproduce", run_dir, "--dry-run")   # would block forever if it were opened
    assert code == 2 and f"{run_dir}: no bgeft_run.yaml: not a run made by `bgeft train`" in err


def test_a_non_empty_output_is_refused(run_dir, tmp_path, run_cli, tree_guard):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    guard = tree_guard(tmp_path)
    code, _, err = run_cli("reproduce", run_dir, "-o", taken)
    guard.assert_only()
    assert code == 2 and f"-o {taken}: not empty; choose a new directory for the reproduction" in err


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_a_meaningless_tolerance_is_refused(run_dir, run_cli, value):
    code, _, err = run_cli("reproduce", run_dir, "--check", "--tolerance", value)
    assert code == 2 and f"--tolerance {float(value)}: give a difference >= 0 (0 = identical)" in err
