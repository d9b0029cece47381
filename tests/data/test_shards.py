"""bgeft data mine --shard I/N / --from-shards DIR: a pool encoded in parts mines what one run mines."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from bgeft.data.mine import mine_negatives
from bgeft.data.shards import ShardRows, parse_shard, shard_rows
from bgeft.errors import UserError
from tests.helpers.tiny_models import example_texts

QUESTIONS = ["Where is the ferry?", "Who built the clock?", "When does the market open?", "How old is the bridge?"]


@pytest.fixture
def pool_files(tmp_path, example_data):
    passages = list(dict.fromkeys(t[:150] for t in example_texts(example_data)))[:40]
    rows = [{"query": QUESTIONS[i % 4], "pos": [passages[i], passages[i + 1]]} for i in range(12)]
    rows.append({"query": "Which lamp is lit?", "pos": ["a positive that is not in the corpus"]})
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": f"d{i}", "text": t}, ensure_ascii=False) + "\n"
                              for i, t in enumerate(passages + passages[:5])), encoding="utf-8")
    return train, corpus, passages, rows


def _shards(demo_model, train, corpus, shard_dir, n=3, **kwargs):
    for i in range(n):
        summary = mine_negatives(train, None, model=demo_model, corpus=corpus, device="cpu", shard=(i, n),
                                 shard_dir=shard_dir, **kwargs)
        assert f"(part {i}/{n})" in summary.lines()[0]


def test_sharded_pool_mines_what_one_run_mines(demo_model, pool_files, tmp_path):
    train, corpus, passages, _ = pool_files
    common = dict(model=demo_model, corpus=corpus, device="cpu", range_=(2, 30), negatives=5, seed=7, bm25=1)
    one = mine_negatives(train, tmp_path / "one.jsonl", **common)
    shard_dir = tmp_path / "shards"
    _shards(demo_model, train, corpus, shard_dir)
    assert sorted(p.name for p in shard_dir.iterdir()) == sorted(
        f"pool-{i}-of-3.{e}" for i in range(3) for e in ("json", "npy"))
    meta = json.loads((shard_dir / "pool-1-of-3.json").read_text())
    assert meta["rows"] == [13, 26] and meta["pool_size"] == 40 and meta["settings"]["passage_max_len"] == 512
    assert np.load(shard_dir / "pool-1-of-3.npy").dtype == np.float16
    sharded = mine_negatives(train, tmp_path / "sharded.jsonl", from_shards=shard_dir, **common)
    assert (tmp_path / "sharded.jsonl").read_text() == (tmp_path / "one.jsonl").read_text()
    assert (sharded.negatives, sharded.removed_margin) == (one.negatives, one.removed_margin)


def test_from_shards_never_encodes_a_pool_text(demo_model, pool_files, tmp_path, counted):
    train, corpus, passages, rows = pool_files
    shard_dir = tmp_path / "shards"
    seen = counted
    _shards(demo_model, train, corpus, shard_dir, n=2)
    assert sorted(seen) == sorted(passages)                   # the parts together: each pool text once
    seen.clear()
    mine_negatives(train, tmp_path / "o.jsonl", model=demo_model, corpus=corpus, device="cpu", range_=(0, 20),
                   negatives=3, from_shards=shard_dir)
    assert not set(seen) & set(passages)                     # no pool text, not even the positives in the pool
    assert sorted(seen) == sorted(QUESTIONS + ["Which lamp is lit?", "a positive that is not in the corpus"])


@pytest.mark.parametrize("text", ["3/2", "a/b", "0/0", "-1/4", "1", "1/4/2", ""])
def test_bad_shard_text(text):
    with pytest.raises(UserError) as err:
        parse_shard(text)
    assert str(err.value) == (f"--shard {text}: expected I/N with 0 <= I < N (part I of N, counted from 0), "
                              "e.g. --shard 0/4 on the first of four nodes")


def test_shard_rows_cover_the_pool_once():
    assert parse_shard(" 3/4 ") == (3, 4)
    for n, pool in ((1, 5), (3, 40), (4, 4), (7, 100)):
        ranges = [shard_rows(i, n, pool) for i in range(n)]
        assert ranges[0][0] == 0 and ranges[-1][1] == pool
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))


def test_shard_rows_view_reads_like_one_array():
    full = np.arange(30, dtype=np.float16).reshape(10, 3)
    rows = ShardRows([full[:3], full[3:7], full[7:]])
    assert rows.shape == (10, 3) and len(rows) == 10
    assert np.array_equal(rows[4], full[4]) and np.array_equal(rows[-1], full[9])
    assert np.array_equal(rows[2:8], full[2:8]) and np.array_equal(rows[::3], full[::3])
    with pytest.raises(IndexError):
        rows[10]


def test_cli_modes(run_cli, pool_files, tmp_path):
    train, corpus, _, _ = pool_files
    base = ("data", "mine", train, "--model", "bgeft:demo-model", "--corpus", corpus)
    cases = [
        ((), "-o/--output OUT.jsonl is required (unless --shard I/N --shard-dir DIR only encodes part of the pool)"),
        (("--shard", "1/4"), "--shard 1/4: needs --shard-dir DIR (the directory every node writes its part into, "
                             "e.g. --shard-dir outputs/shards on shared storage)"),
        (("--shard", "4/4", "--shard-dir", tmp_path / "s"),
         "--shard 4/4: expected I/N with 0 <= I < N (part I of N, counted from 0), e.g. --shard 0/4 on the first "
         "of four nodes"),
        (("--shard", "0/2", "--shard-dir", tmp_path / "s", "-o", tmp_path / "o.jsonl"),
         "--shard 0/2: only encodes part of the pool; leave out -o (mine afterwards with -o OUT.jsonl "
         "--from-shards DIR)"),
        (("-o", tmp_path / "o.jsonl", "--shard-dir", tmp_path / "s"),
         "--shard-dir goes with --shard I/N (to read shards when mining, use --from-shards DIR)"),
        (("-o", tmp_path / "o.jsonl", "--from-shards", tmp_path / "none"), f"--from-shards {tmp_path / 'none'}: "
                                                                            "no such file"),
    ]
    for extra, message in cases:
        code, out, err = run_cli(*base, *extra)
        assert (code, err) == (2, f"bgeft: error: {message}\n"), extra
    assert not (tmp_path / "s").exists() and not (tmp_path / "o.jsonl").exists()
    code, out, _ = run_cli("data", "mine", "--help")
    assert code == 0 and "--shard I/N" in out and "--from-shards DIR" in out and "--shard-dir DIR" in out


def test_cli_shards_then_mine(run_cli, demo_model, pool_files, tmp_path):
    train, corpus, _, _ = pool_files
    shard_dir = tmp_path / "shards"
    for i in range(2):
        code, out, err = run_cli("data", "mine", train, "--model", demo_model, "--corpus", corpus, "--device", "cpu",
                                 "--shard", f"{i}/2", "--shard-dir", shard_dir)
        assert code == 0, err
        assert out.startswith(f"encoded pool rows {20 * i}-{20 * (i + 1)} of 40 (part {i}/2) in ")
    code, out, err = run_cli("data", "mine", train, "-o", tmp_path / "o.jsonl", "--model", demo_model, "--corpus",
                             corpus, "--device", "cpu", "--range", "0-10", "--negatives", "2",
                             "--from-shards", shard_dir)
    assert code == 0, err
    assert re.match(rf"mined \d+ negatives for 13 rows from a pool of 40 passages -> {tmp_path / 'o.jsonl'}\n", out)
    assert len((tmp_path / "o.jsonl").read_text(encoding="utf-8").splitlines()) == 13
