"""bgeft data mine: negatives found, positives/query excluded, margin filter, BM25 mix, stale scores."""
from __future__ import annotations

import json

import pytest

from bgeft.data.mine import mine_negatives, parse_range
from bgeft.errors import UserError
from bgeft.models.embedder import Encoder, detect_pooling, is_m3_model
from bgeft.models.index import bm25_tokens

QUERY = "How tall is the old lighthouse on the northern cliff?"
POS = "The old lighthouse on the northern cliff is forty meters tall and was built in 1890."
NEAR_DUP = "The old lighthouse on the northern cliff is forty metres tall and was built in 1890."
OTHERS = [
    "The bakery on Main Street sells fresh bread every morning.",
    "Rain is expected in the valley for the rest of the week.",
    "The football team won the regional championship last year.",
    "She planted tomatoes and basil in the garden behind the house.",
    "The museum opens at nine and closes at five on weekdays.",
    "A new bridge across the river was finished in the spring.",
    "The library lends books, films and board games for free.",
    "Fishermen leave the harbour before sunrise to catch sardines.",
    "The train to the capital departs every hour from platform two.",
    "Lighthouse keepers once climbed the stairs twice a night to trim the lamp.",
]


def read(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def encoder(demo_model):
    enc = Encoder(demo_model, device="cpu", batch_size=16, progress=False)
    yield enc
    enc.close()


@pytest.fixture
def files(tmp_path):
    train = tmp_path / "train.jsonl"
    rows = [
        {"query": QUERY, "pos": [POS], "neg": ["stale"], "pos_scores": [9.0], "neg_scores": [1.0],
         "prompt": "", "type": "normal"},
        {"query": "When does the museum open?", "pos": [OTHERS[4]]},
    ]
    train.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    corpus = tmp_path / "corpus.jsonl"
    texts = [POS, NEAR_DUP, QUERY] + OTHERS
    corpus.write_text("".join(json.dumps({"_id": f"d{i}", "title": "", "text": t}) + "\n" for i, t in enumerate(texts)),
                      encoding="utf-8")
    return train, corpus


def test_margin_filter_drops_near_duplicate(encoder, files, tmp_path):
    train, corpus = files
    out = tmp_path / "mined.jsonl"
    summary = mine_negatives(train, out, encoder=encoder, corpus=corpus, range_=(0, 13), negatives=20, fill=False)
    first, second = read(out)
    assert NEAR_DUP not in first["neg"] and POS not in first["neg"] and QUERY not in first["neg"]
    assert first["neg"] and set(first["neg"]) <= set(OTHERS)
    assert OTHERS[4] not in second["neg"]
    assert "pos_scores" not in first and "neg_scores" not in first and "stale" not in first["neg"]
    assert (first["prompt"], first["type"]) == ("", "normal")
    assert summary.removed_positive == 2 and summary.removed_query == 1 and summary.removed_margin >= 1
    assert summary.stale_scores == 1 and summary.candidates == 26
    assert "by the margin filter" in "\n".join(summary.lines())

    unfiltered = tmp_path / "unfiltered.jsonl"
    summary = mine_negatives(train, unfiltered, encoder=encoder, corpus=corpus, range_=(0, 13), negatives=20,
                             margin=None, fill=False)
    assert NEAR_DUP in read(unfiltered)[0]["neg"] and summary.removed_margin == 0


def test_positive_outside_the_corpus(encoder, files, tmp_path):
    _, corpus = files
    train = tmp_path / "held_out.jsonl"
    outside = "The lighthouse keeper's cottage has a red roof and two chimneys."
    train.write_text(json.dumps({"query": "What colour is the keeper's cottage roof?", "pos": [outside]}) + "\n",
                     encoding="utf-8")
    summary = mine_negatives(train, tmp_path / "o.jsonl", encoder=encoder, corpus=corpus, range_=(0, 13), negatives=4)
    row = read(tmp_path / "o.jsonl")[0]
    assert len(row["neg"]) == 4 and outside not in row["neg"] and summary.pool == 13


def test_own_pool_bm25_and_fill(encoder, tmp_path):
    train = tmp_path / "t.jsonl"
    rows = [{"query": f"what about the {t.split()[1]}", "pos": [t]} for t in OTHERS]
    train.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "o.jsonl"
    summary = mine_negatives(train, out, encoder=encoder, range_=(2, 6), negatives=5, margin=None)
    mined = read(out)
    assert all(len(r["neg"]) == 5 and r["pos"][0] not in r["neg"] and len(set(r["neg"])) == 5 for r in mined)
    # 4 ranks (2..5) < 5 negatives: each row is topped up by one, plus one per positive found in those ranks
    assert summary.from_random == len(rows) + summary.removed_positive and summary.from_bm25 == 0
    assert summary.short_rows == 0 and summary.pool == len(OTHERS)

    summary = mine_negatives(train, out, encoder=encoder, range_=(2, 6), negatives=5, bm25=1, margin=None)
    assert summary.from_bm25 >= len(rows) and summary.negatives == 5 * len(rows)
    assert all(len(set(r["neg"])) == 5 and r["pos"][0] not in r["neg"] for r in read(out))


def test_m3_class_and_detection(tiny_xlmr, tmp_path):
    assert not is_m3_model(tiny_xlmr) and detect_pooling(tiny_xlmr) == "cls"
    (tmp_path / "sparse_linear.pt").write_bytes(b"")
    assert not is_m3_model(tmp_path)  # FlagEmbedding loads the heads only when both exist
    (tmp_path / "colbert_linear.pt").write_bytes(b"")
    assert is_m3_model(tmp_path)
    train = tmp_path / "t.jsonl"
    train.write_text("".join(json.dumps({"query": f"q{i}", "pos": [t]}) + "\n" for i, t in enumerate(OTHERS[:6])),
                     encoding="utf-8")
    enc = Encoder(tiny_xlmr, model_class="m3", device="cpu", progress=False)
    assert enc.is_m3 and type(enc.backend.fe).__name__ == "M3Embedder"  # BGEM3FlagModel is its alias
    summary = mine_negatives(train, tmp_path / "o.jsonl", encoder=enc, range_=(0, 6), negatives=2, index="hnsw",
                             margin=None)
    assert summary.negatives == 12


def test_index_kinds():
    import numpy as np

    from bgeft.models.index import build_index, gpu_available, search

    vecs = np.random.default_rng(0).standard_normal((400, 16)).astype("float32")
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    for kind in ("flat", "ivf", "hnsw"):
        scores, ids = search(build_index(vecs, kind, gpu="no"), vecs[:20], 5)
        assert ids[:, 0].tolist() == list(range(20)) and scores.shape == (20, 5)
    if not gpu_available():
        with pytest.raises(UserError, match="--faiss-gpu yes: this faiss has no GPU support or sees no GPU"):
            build_index(vecs, "flat", gpu="yes")


def test_a_spilled_pool_is_searched_in_blocks(demo_model, files, tmp_path, monkeypatch):
    """Pool vectors in a memmap (--spill-mb 0): exact search block by block, no faiss copy, and the very
    negatives that an in-RAM IndexFlatIP over the same vectors gives."""
    from bgeft.models import index

    train, corpus = files
    searched = []
    block_search = index.BlockFlatIP.search
    monkeypatch.setattr(index.BlockFlatIP, "search",
                        lambda self, *a, **kw: searched.append(self.ntotal) or block_search(self, *a, **kw))
    mined = []
    for blocks in (True, False):
        if not blocks:
            monkeypatch.setattr(index, "searched_in_blocks", lambda vectors, kind: False)
        enc = Encoder(demo_model, device="cpu", batch_size=16, progress=False, spill_mb=0)
        out = tmp_path / f"mined-{blocks}.jsonl"
        summary = mine_negatives(train, out, encoder=enc, corpus=corpus, range_=(1, 13), negatives=4, margin=None)
        enc.close()
        assert summary.negatives == 8 and summary.pool == 13
        mined.append(read(out))
    assert searched == [13] and mined[0] == mined[1]


def test_bm25_tokens_chinese_and_english():
    assert bm25_tokens("白鹭河的渡口, Old Ferry!") == ["白鹭", "河", "的", "渡口", "old", "ferry"]


@pytest.mark.parametrize("kwargs,message", [
    (dict(range_=(20, 40)), r"--range 20-40: the pool has only 13 passages; lower START \(e.g. --range 0-13\)"),
    (dict(range_=(5, 5)), r"--range 5-5: need 0 <= START < END"),
    (dict(margin=1.5), r"--margin 1.5: must be in \[0, 1\)"),
    (dict(bm25=30), "--bm25 30: must be between 0 and --negatives 15"),
])
def test_option_errors(files, demo_model, tmp_path, kwargs, message):
    train, corpus = files
    with pytest.raises(UserError, match=message):
        mine_negatives(train, tmp_path / "o.jsonl", model=demo_model, corpus=corpus, **kwargs)
    assert not (tmp_path / "o.jsonl").exists()


def test_parse_range_and_bad_rows(demo_model, tmp_path):
    assert parse_range("10-100") == (10, 100)
    with pytest.raises(UserError, match="--range ten: expected START-END ranks"):
        parse_range("ten")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q", "pos": ["p"]}\n{"query": "q2", "pos": []}\n', encoding="utf-8")
    with pytest.raises(UserError, match=f"{bad}:2: pos: empty list"):
        mine_negatives(bad, tmp_path / "o.jsonl", model=demo_model)


def test_cli(files, demo_model, tmp_path, run_cli):
    train, corpus = files
    out = tmp_path / "cli.jsonl"
    code, stdout, _ = run_cli("data", "mine", train, "-o", out, "--model", demo_model, "--corpus", corpus,
                              "--range", "0-8", "--negatives", "3", "--fp32", "--bm25", "1")
    assert code == 0, stdout
    assert "mined 6 negatives for 2 rows from a pool of 13 passages" in stdout
    assert all(len(r["neg"]) == 3 for r in read(out))
    code, _, err = run_cli("data", "mine", train, "-o", out, "--model", tmp_path / "nope")
    assert code == 2 and f"--model {tmp_path / 'nope'}: no such model directory; give a local model directory" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli("data", "mine", train, "-o", out, "--model", tmp_path / "empty")
    assert code == 2 and f"--model {tmp_path / 'empty'}: no config.json there" in err
