"""The console contract on real commands, stdout/stderr captured (not a terminal): `bgeft data mine`.

(The pipeline's share is asserted on the tiny pipeline run in tests/pipeline/test_pipeline_run.py.)"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BGEFT = str(Path(sys.executable).parent / "bgeft")
ANSI = re.compile(r"\x1b\[")
THIRD_PARTY = ("Loading weights", "LOAD REPORT", "Setting accelerator", "UserWarning", "it/s]", "Traceback")


def bgeft(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([BGEFT, *map(str, args)], capture_output=True, text=True, timeout=600, **kw)


@pytest.fixture(scope="module")
def mine_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("mine")
    rows = [{"query": f"question {i} about the river", "pos": [f"passage {i} about the river town"]} for i in range(4)]
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    texts = [r["pos"][0] for r in rows] + [f"other passage number {i}" for i in range(8)]
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": str(i), "text": t}) + "\n"
                                               for i, t in enumerate(texts)), encoding="utf-8")
    return root


def mine(root: Path, model, out: Path, *extra, verbose: bool = False) -> subprocess.CompletedProcess:
    return bgeft(*(["-v"] if verbose else []), "data", "mine", root / "train.jsonl", "-o", out, "--model", model,
                 "--corpus", root / "corpus.jsonl", "--range", "0-12", "--negatives", "3", *extra)


def clean(text: str) -> None:
    assert "\r" not in text and not ANSI.search(text), text
    for marker in THIRD_PARTY:
        assert marker not in text, (marker, text)


def test_data_mine_prints_only_its_own_lines_and_logs_the_rest(demo_model, mine_inputs, tmp_path):
    log = tmp_path / "mine.log"
    res = mine(mine_inputs, demo_model, tmp_path / "out.jsonl", "--log", log)
    assert res.returncode == 0, res.stderr
    clean(res.stdout + res.stderr)
    assert res.stdout.startswith("mined ") and len(res.stdout.splitlines()) <= 6
    assert res.stderr == ""
    assert "Loading weights" in log.read_text()        # transformers' own bar went to the log


def test_verbose_shows_third_party_output_on_the_console(demo_model, mine_inputs, tmp_path):
    res = mine(mine_inputs, demo_model, tmp_path / "out.jsonl", verbose=True)
    assert res.returncode == 0, res.stderr
    assert "Loading weights" in res.stderr
    assert not list(tmp_path.glob("*.log"))


def test_an_unexpected_failure_prints_the_log_tail_not_a_traceback(demo_model, mine_inputs, tmp_path):
    broken = tmp_path / "broken-model"
    shutil.copytree(demo_model, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4096])
    log = tmp_path / "mine.log"
    res = mine(mine_inputs, broken, tmp_path / "out.jsonl", "--log", log)
    assert res.returncode == 1
    assert f"bgeft: failed; the last 20 lines of {log}:" in res.stderr
    assert res.stderr.rstrip().splitlines()[-1].startswith("bgeft: error: SafetensorError: ")
    assert f"(the full traceback is in {log})" in res.stderr
    own = [line for line in res.stderr.splitlines() if not line.startswith("  | ")]
    assert len(own) == 2 and not ANSI.search(res.stderr) and "\r" not in res.stderr
    assert "Traceback (most recent call last)" in log.read_text()
    assert not (tmp_path / "out.jsonl").exists()
