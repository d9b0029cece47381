"""bgeft data buckets: every row assigned once, per-file batch sizes FlagEmbedding reads, errors."""
from __future__ import annotations

import json
import re
from collections import Counter

import pytest
import yaml

from bgeft.data.books import TokenCounter
from bgeft.data.buckets import make_buckets
from bgeft.errors import UserError


def write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def read(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def inputs(tmp_path):
    retrieval = [{"query": f"问题{i}", "pos": ["河" * (3 * i + 1)], "neg": ["镇"], "prompt": "找段落："}
                 for i in range(12)]
    labels = [{"query": f"text {i}", "pos": ["好" * i or "a"], "neg": ["坏"],
               "type": "symmetric_class" if i % 2 else "only_1neg"} for i in range(6)]
    a, b = tmp_path / "book.jsonl", tmp_path / "labels-no_in_batch_neg.jsonl"
    write(a, retrieval)
    write(b, labels)
    return a, b, retrieval + labels


def test_every_row_once_with_batch_sizes(inputs, tmp_path, tiny_xlmr):
    a, b, rows = inputs
    out = tmp_path / "buckets"
    summary = make_buckets([a, b], out, tokenizer=tiny_xlmr, bounds=(0, 10, 20, 30), batch_sizes=(4, 2, 1))
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*.jsonl"))
    assert names == [
        "book.len0-10.jsonl", "book.len10-20.jsonl", "book.len20-30.jsonl",
        "no_in_batch_neg/labels.only_1neg.len0-10-no_in_batch_neg.jsonl",
        "no_in_batch_neg/labels.symmetric_class.len0-10-no_in_batch_neg.jsonl",
    ]
    counter = TokenCounter(tiny_xlmr)
    seen = []
    for name in names:
        file_rows = read(out / name)
        lo, hi = (int(x) for x in re.search(r"\.len(\d+)-(\d+)", name).groups())
        assert len({r["batch_size"] for r in file_rows}) == 1 and len({r.get("type") for r in file_rows}) == 1
        for r in file_rows:
            length = max(counter.count(t) for t in [r["query"], *r["pos"], *r["neg"]])
            assert lo <= length < hi or (hi == 30 and length >= 30)
            seen.append(json.dumps({k: v for k, v in r.items() if k != "batch_size"}, sort_keys=True))
    assert Counter(seen) == Counter(json.dumps(r, sort_keys=True) for r in rows)
    assert summary.rows == len(rows) and summary.train_data == [str(out), str(out / "no_in_batch_neg")]
    manifest = yaml.safe_load((out / "buckets.yaml").read_text(encoding="utf-8"))
    assert manifest["batch_sizes"] == [4, 2, 1] and sum(f["rows"] for f in manifest["files"]) == len(rows)


def test_flagembedding_reads_the_batch_sizes(inputs, tmp_path, tiny_xlmr):
    from FlagEmbedding.abc.finetune.embedder import AbsEmbedderDataArguments
    from FlagEmbedding.abc.finetune.embedder.AbsDataset import AbsEmbedderSameDatasetTrainDataset

    a, b, _ = inputs
    out = tmp_path / "buckets"
    summary = make_buckets([a, b], out, tokenizer=tiny_xlmr, bounds=(0, 10, 20, 30), batch_sizes=(4, 2, 1))
    args = AbsEmbedderDataArguments(train_data=summary.train_data, same_dataset_within_batch=True,
                                    cache_path=str(tmp_path / "cache"))
    dataset = AbsEmbedderSameDatasetTrainDataset(args, default_batch_size=99, seed=0, tokenizer=None)
    # every bucket file became one dataset with its own batch size (and nothing else was loaded)
    assert sorted(dataset.batch_size_idxs) == sorted(f["batch_size"] for f in summary.files) == [1, 2, 4, 4, 4]
    assert sum(dataset.no_in_batch_neg_flags) == 2 and len(dataset.dataset) == summary.rows


def test_errors_leave_nothing(inputs, tmp_path, tiny_xlmr, run_cli):
    a, b, _ = inputs
    with pytest.raises(UserError, match="--batch-sizes: 2 buckets need 2 batch sizes, got 3"):
        make_buckets([a], tmp_path / "o", tokenizer=tiny_xlmr, bounds=(0, 5, 10), batch_sizes=(1, 2, 3))
    with pytest.raises(UserError, match="--bounds 0,10,5: need at least two increasing token counts"):
        make_buckets([a], tmp_path / "o", tokenizer=tiny_xlmr, bounds=(0, 10, 5), batch_sizes=(1, 2))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q", "pos": ["p"]}\n{"query": 3, "pos": ["p"]}\n', encoding="utf-8")
    code, _, err = run_cli("data", "buckets", a, bad, "-o", tmp_path / "o", "--tokenizer", tiny_xlmr)
    assert code == 2 and f"{bad}:2: query: expected a string, found a number" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "book.jsonl", "labels-no_in_batch_neg.jsonl"]
    code, out, _ = run_cli("data", "buckets", a, "-o", tmp_path / "o", "--tokenizer", tiny_xlmr,
                           "--bounds", "0,8,100", "--batch-sizes", "8,2")
    assert code == 0 and "bucketed 12 rows into 2 files" in out and "fewer rows than its batch size" in out
    code, _, err = run_cli("data", "buckets", a, "-o", tmp_path / "o", "--tokenizer", tiny_xlmr)
    assert code == 2 and "exists and is not an empty directory" in err
    code, _, err = run_cli("data", "buckets", a, "-o", tmp_path / "o", "--tokenizer", tiny_xlmr, "--overwrite",
                           "--bounds", "0,x")
    assert code == 2 and "--bounds 0,x: expected comma-separated whole numbers" in err


def test_directories_and_same_file_names(tmp_path, tiny_xlmr):
    for folder in ("cls-no_in_batch_neg", "retrieval", "sts"):
        (tmp_path / folder).mkdir()
        write(tmp_path / folder / "train.jsonl", [{"query": "q", "pos": ["p"], "neg": ["n"]}])
    summary = make_buckets([tmp_path / "cls-no_in_batch_neg", tmp_path / "retrieval", tmp_path / "sts" / "train.jsonl"],
                           tmp_path / "out", tokenizer=tiny_xlmr, bounds=(0, 100), batch_sizes=(1,))
    assert sorted(f["path"] for f in summary.files) == [
        "no_in_batch_neg/cls_train.len0-100-no_in_batch_neg.jsonl", "retrieval_train.len0-100.jsonl",
        "sts_train.len0-100.jsonl"]


def test_skip_invalid_leaves_bad_rows_out(tmp_path, run_cli, tiny_xlmr):
    src = tmp_path / "in.jsonl"
    src.write_text('{"query": "q", "pos": ["p"], "neg": ["n"]}\n{"query": "", "pos": ["p"]}\n'
                   '{"query": "q2", "pos": ["p2"], "neg": ["n2"]}\n', encoding="utf-8")
    out = tmp_path / "buckets"
    code, _, err = run_cli("data", "buckets", src, "-o", out, "--tokenizer", tiny_xlmr)
    assert code == 2
    assert err.endswith(f"{src}:2: query: empty string; or pass --skip-invalid to leave bad rows out\n")
    code, stdout, err = run_cli("data", "buckets", src, "-o", out, "--tokenizer", tiny_xlmr, "--skip-invalid")
    assert code == 0, err
    assert f"kept 2, rejected 1: query: empty string (1) (listed in {out}.rejects)" in stdout
    rejected = [json.loads(line) for line in (tmp_path / "buckets.rejects").read_text(encoding="utf-8").splitlines()]
    assert [(r["line"], r["reason"]) for r in rejected] == [(2, "query: empty string")]
