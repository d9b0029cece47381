"""bgeft data score: raw reranker scores of the right lengths replace old ones."""
from __future__ import annotations

import json
import math

import pytest

from bgeft.data.score import score_file
from bgeft.errors import UserError
from bgeft.models.reranker import Reranker


@pytest.fixture(scope="module")
def cross_encoder(tiny_xlmr, tmp_path_factory):
    """A random 1-label cross-encoder on the tiny XLM-R config (what FlagReranker loads)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    dest = tmp_path_factory.mktemp("models") / "tiny-reranker"
    config = AutoConfig.from_pretrained(tiny_xlmr, num_labels=1)
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(dest)
    AutoTokenizer.from_pretrained(tiny_xlmr).save_pretrained(dest)
    return dest


def read(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_scores_added_with_right_lengths(cross_encoder, tmp_path):
    src = tmp_path / "train.jsonl"
    rows = [
        {"query": "渡口在哪里？", "pos": ["渡口在镇子的南头。"], "neg": ["钟表铺在石板街。", "河水涨了。"],
         "pos_scores": [1.0], "neg_scores": [0.0, 0.0], "type": "normal"},
        {"query": "who made the clock", "pos": ["宋青山做了钟。", "the clock"], "neg": ["the river"]},
        {"query": "no negatives", "pos": ["镇上的人"]},
    ]
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "scored.jsonl"
    model = Reranker(cross_encoder, fp16=False, device="cpu")
    summary = score_file(src, out, model=model, chunk_rows=2)
    scored = read(out)
    assert [(len(r["pos_scores"]), len(r["neg_scores"])) for r in scored] == [(1, 2), (2, 1), (1, 0)]
    assert all(math.isfinite(s) for r in scored for s in r["pos_scores"] + r["neg_scores"])
    assert scored[0]["pos_scores"] != [1.0] and scored[0]["type"] == "normal"
    raw = model.model.compute_score([("who made the clock", "the river")], normalize=False)[0]
    assert scored[1]["neg_scores"][0] == pytest.approx(raw, abs=1e-5)  # un-normalised logits
    assert (summary.rows, summary.pairs, summary.replaced) == (3, 7, 1)


def test_errors(cross_encoder, tmp_path, run_cli):
    src = tmp_path / "t.jsonl"
    src.write_text('{"query": "q", "pos": ["p"], "neg": "not a list"}\n', encoding="utf-8")
    code, _, err = run_cli("data", "score", src, "-o", tmp_path / "o.jsonl", "--reranker", cross_encoder, "--fp32")
    assert code == 2 and f"{src}:1: neg: expected a list of strings" in err
    assert not (tmp_path / "o.jsonl").exists()
    with pytest.raises(UserError, match="--reranker .*missing: no such model directory"):
        score_file(src, tmp_path / "o.jsonl", reranker=tmp_path / "missing")


def test_cli(cross_encoder, tmp_path, run_cli):
    src = tmp_path / "t.jsonl"
    src.write_text('{"query": "q", "pos": ["p"], "neg": ["n1", "n2"]}\n', encoding="utf-8")
    code, out, _ = run_cli("data", "score", src, "-o", tmp_path / "o.jsonl", "--reranker", cross_encoder, "--fp32")
    assert code == 0 and "scored 3 pairs in 1 rows" in out
    assert len(read(tmp_path / "o.jsonl")[0]["neg_scores"]) == 2


def test_skip_invalid_scores_the_good_rows(cross_encoder, tmp_path, run_cli):
    src = tmp_path / "train.jsonl"
    src.write_text('{"query": "渡口在哪里？", "pos": ["渡口在镇子的南头。"], "neg": ["河水涨了。"]}\n'
                   '{"query": "bad", "pos": []}\n', encoding="utf-8")
    out = tmp_path / "scored.jsonl"
    code, _, err = run_cli("data", "score", src, "-o", out, "--reranker", cross_encoder, "--fp32")
    assert code == 2
    assert err.endswith(f"bgeft: error: {src}:2: pos: empty list; or pass --skip-invalid to leave bad rows out\n")
    code, stdout, _ = run_cli("data", "score", src, "-o", out, "--reranker", cross_encoder, "--fp32",
                              "--skip-invalid")
    assert code == 0 and f"kept 1, rejected 1: pos: empty list (1) (listed in {out}.rejects)" in stdout
    (row,) = read(out)
    assert len(row["pos_scores"]) == 1 and len(row["neg_scores"]) == 1
