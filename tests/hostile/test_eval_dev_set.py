"""Hostile dev sets named by a recipe's eval: section: refused at plan time (before any output is
written), with the recipe line and the fix."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TRAIN = REPO / "example_data" / "retrieval" / "train.jsonl"


def _recipe(tmp_path: Path, dev: Path) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(f"""\
        task: embedder.base
        model: {{model_name_or_path: bgeft:demo-model}}
        data: {{train_data: [{TRAIN}]}}
        training: {{output_dir: {tmp_path / 'out'}, max_steps: 2, eval_strategy: steps, eval_steps: 1,
                   metric_for_best_model: ndcg@10}}
        eval:
          data: {dev}
        """), encoding="utf-8")
    return path


def _bgeft(*args):
    return subprocess.run([sys.executable, "-m", "bgeft.cli.main", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})


def test_dev_set_with_no_judged_query_is_refused_before_launch(tmp_path, tree):
    dev = tmp_path / "dev"
    (dev / "qrels").mkdir(parents=True)
    (dev / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "text": "a passage"}) + "\n", encoding="utf-8")
    (dev / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "a question"}) + "\n", encoding="utf-8")
    (dev / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t0\n", encoding="utf-8")
    recipe = _recipe(tmp_path, dev)
    tree.snapshot()
    result = _bgeft("train", recipe)
    assert result.returncode != 0
    assert f"{tmp_path / 'r.yaml'}:7: eval.data: {dev / 'qrels' / 'test.tsv'}: no query has a relevant " \
           "document (score > 0); nothing can be evaluated" in result.stderr
    assert "Traceback" not in result.stderr
    tree.assert_untouched()


def test_dev_set_without_qrels_is_refused(tmp_path, tree):
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "text": "a passage"}) + "\n", encoding="utf-8")
    recipe = _recipe(tmp_path, dev)
    tree.snapshot()
    result = _bgeft("train", recipe, "--dry-run")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"{tmp_path / 'r.yaml'}:7: eval.data: {dev}: missing qrels/test.tsv" in result.stderr
    tree.assert_untouched()
