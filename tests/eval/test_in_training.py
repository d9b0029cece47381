"""Pieces of in-training evaluation that need no training run: gathering slices, history, model card."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
from scipy import sparse as sp

from bgeft.eval.encoding import Encoded
from bgeft.eval.history import CURVES, EvalHistory, card_section, read_history
from bgeft.eval.in_training import merge_encoded


def _encoded(rng, n: int, start: int) -> Encoded:
    lens = rng.integers(1, 4, size=n)
    return Encoded(n, dense=rng.normal(size=(n, 3)).astype(np.float32),
                   sparse=sp.random(n, 7, density=0.3, format="csr", dtype=np.float32, random_state=start),
                   colbert=rng.normal(size=(int(lens.sum()), 2)).astype(np.float32),
                   colbert_offsets=np.concatenate([[0], np.cumsum(lens)]).astype(np.int64))


def test_merged_slices_equal_the_whole():
    rng = np.random.default_rng(0)
    parts = [_encoded(rng, 3, 0), None, _encoded(rng, 2, 1), Encoded(0)]  # a rank may get no text
    whole = merge_encoded(parts)
    assert whole.n == 5 and whole.dense.shape == (5, 3) and whole.sparse.shape == (5, 7)
    np.testing.assert_array_equal(whole.dense[3:], parts[2].dense)
    np.testing.assert_array_equal(whole.sparse[3:].toarray(), parts[2].sparse.toarray())
    for i in range(2):
        np.testing.assert_array_equal(whole.colbert_of(3 + i), parts[2].colbert_of(i))
    np.testing.assert_array_equal(whole.colbert_of(1), parts[0].colbert_of(1))


def _state(best_step, best, last, ckpt):
    return SimpleNamespace(best_model_checkpoint=ckpt, best_metric=best, best_global_step=best_step, global_step=last)


def test_history_summary_curves_and_card(tmp_path):
    h = EvalHistory(tmp_path, "eval_ndcg@10")
    for step, v in ((2, 0.5), (4, 0.7), (6, 0.6)):
        h.add(step, step / 10, {"eval_ndcg@10": v, "eval_recall@10": v + 0.1}, 1.5)
    args = SimpleNamespace(max_steps=10, greater_is_better=True, load_best_model_at_end=True)
    h.finish(args, _state(4, 0.7, 6, str(tmp_path / "checkpoint-4")))
    summary = json.loads((tmp_path / "eval_summary.json").read_text())
    assert summary["best_model_checkpoint"] == "checkpoint-4" and summary["stopped_early"] is True
    assert summary["evaluations"] == 3 and summary["eval_seconds_total"] == 4.5
    assert (tmp_path / CURVES).stat().st_size > 1000
    card = "\n".join(card_section(tmp_path))
    assert "These weights are **checkpoint-4** (step 4 of 6): the best dev ndcg@10 (0.7000) of 3 evaluations" in card
    assert "Training stopped early at step 6" in card and f"![dev ndcg@10 by step]({CURVES})" in card
    args.load_best_model_at_end = False
    h.finish(args, _state(4, 0.7, 6, None))
    assert "These weights are the last step (6); the best dev ndcg@10 was 0.7000 at step 4" in "\n".join(
        card_section(tmp_path))


def test_a_resumed_run_measures_a_step_anew_instead_of_twice(tmp_path):
    h = EvalHistory(tmp_path, "ndcg@10")
    h.add(2, 0.1, {"eval_ndcg@10": 0.5}, 1.0)
    h.add(4, 0.2, {"eval_ndcg@10": 0.6}, 1.0)  # killed before checkpoint-4 was saved; resumed from checkpoint-2
    h.add(4, 0.2, {"eval_ndcg@10": 0.65}, 1.0)
    assert [(r["step"], r["eval_ndcg@10"]) for r in read_history(tmp_path)] == [(2, 0.5), (4, 0.65)]


def test_disabled_history_writes_nothing(tmp_path):
    h = EvalHistory(tmp_path / "out", "ndcg@10", enabled=False)  # ranks other than 0
    h.add(1, 0.1, {"eval_ndcg@10": 0.5}, 1.0)
    assert not (tmp_path / "out").exists() and card_section(tmp_path / "out") == []
