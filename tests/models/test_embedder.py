"""The one encoder: each text once per run, the same vector for mining and evaluation, FlagEmbedding's values."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bgeft.data.mine import mine_negatives
from bgeft.errors import UserError
from bgeft.eval.retrieval import evaluate_model, evaluate_retriever
from bgeft.models.embedder import Encoder, detect_pooling, is_m3_model
from tests.helpers.tiny_models import example_texts

QUESTIONS = ["Where is the ferry?", "Who built the clock?", "When does the market open?"]


@pytest.fixture
def mining_files(tmp_path, example_data):
    passages = list(dict.fromkeys(t[:150] for t in example_texts(example_data)))[:40]
    rows = [{"query": QUESTIONS[i % 3], "pos": [passages[i], passages[i + 1]]} for i in range(12)]
    rows.append({"query": passages[5], "pos": ["a positive that is not in the corpus"]})  # query == a passage
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": f"d{i}", "text": t}, ensure_ascii=False) + "\n"
                              for i, t in enumerate(passages + passages[:7])), encoding="utf-8")  # duplicates too
    return train, corpus, passages, rows


def test_each_text_is_encoded_once_per_run(demo_model, mining_files, tmp_path, counted):
    train, corpus, passages, rows = mining_files
    summary = mine_negatives(train, tmp_path / "o.jsonl", model=demo_model, corpus=corpus, range_=(0, 20),
                             negatives=3, device="cpu")
    assert summary.rows == len(rows) and summary.negatives > 0
    distinct = set(passages) | {p for r in rows for p in r["pos"]} | {r["query"] for r in rows}
    assert len(counted) == len(set(counted))      # no text went through the model twice
    assert set(counted) == distinct               # and passages[5], also a query, once (short: not truncated)
    assert len(counted) == len(passages) + 1 + len(QUESTIONS)


def test_within_one_encoder_repeats_cost_nothing(demo_model, counted):
    enc = Encoder(demo_model, device="cpu", progress=False)
    first = enc.encode(["b", "a", "b", "c"]).dense
    again = enc.encode(["c", "a"], kind="query").dense  # no instruction, short: same model input
    assert counted == ["b", "a", "c"] and enc.texts_encoded == 3
    assert np.array_equal(again, first[[3, 1]]) and np.array_equal(first[0], first[2])
    long = "word " * 100  # over the 64-token query limit: a query is cut, a passage is not -> two encodes
    enc.encode([long])
    enc.encode([long], kind="query")
    assert counted.count(long) == 2


def test_mining_and_evaluation_encode_a_text_to_the_same_vector(demo_model, mining_files, tmp_path, monkeypatch):
    train, corpus, passages, _ = mining_files
    vectors: dict[str, list[np.ndarray]] = {}
    original = Encoder.encode

    def recording(self, texts, kind="passage", outputs=("dense",)):
        out = original(self, texts, kind, outputs)
        for t, v in zip(texts, np.asarray(out.dense, np.float32)):
            vectors.setdefault(t, []).append(v.copy())
        return out

    monkeypatch.setattr(Encoder, "encode", recording)
    mine_negatives(train, tmp_path / "o.jsonl", model=demo_model, corpus=corpus, range_=(0, 10), negatives=2)
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text(corpus.read_text(encoding="utf-8"), encoding="utf-8")
    (beir / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": QUESTIONS[0]}) + "\n", encoding="utf-8")
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td0\t1\n", encoding="utf-8")
    evaluate_retriever(demo_model, beir, cache_dir=False, progress=False)  # the eval verb's own defaults
    both = [t for t in passages + [QUESTIONS[0]] if len(vectors.get(t, [])) >= 2]
    assert len(both) == len(passages) + 1
    for t in both:  # equal up to float rounding of a different batch (padding width changes the sums' order)
        np.testing.assert_allclose(vectors[t][0], vectors[t][-1], atol=1e-5, err_msg=t)


def test_one_rule_for_m3_and_pooling(demo_model, tiny_xlmr, tmp_path):
    assert detect_pooling(demo_model) == "mean" and detect_pooling(tiny_xlmr) == "cls"
    assert Encoder(demo_model, device="cpu").pooling == "mean"
    (tmp_path / "colbert_linear.pt").write_bytes(b"")
    assert not is_m3_model(tmp_path)
    (tmp_path / "sparse_linear.pt").write_bytes(b"")
    assert is_m3_model(tmp_path)
    assert Encoder(demo_model, device="cpu", fp16=True).fp16 is False  # never half precision on a CPU
    with pytest.raises(UserError, match=r"minilm-m3: colbert, sparse scoring needs BGE-M3's sparse and ColBERT heads"):
        Encoder(demo_model, device="cpu").encode(["x"], outputs={"sparse", "colbert"})


def test_large_encodings_spill_to_a_float16_memmap(demo_model, example_data):
    texts = list(dict.fromkeys(example_texts(example_data)))[:30]
    ram = Encoder(demo_model, device="cpu", progress=False).encode(texts).dense
    enc = Encoder(demo_model, device="cpu", progress=False, spill_bytes=0)
    disk = enc.encode(texts).dense
    assert isinstance(disk, np.memmap) and disk.dtype == np.float16
    assert np.abs(disk.astype(np.float32) - ram).max() < 2e-3
    spill = enc._spill
    enc.close()
    assert spill and not __import__("os").path.exists(spill)


def test_a_model_object_in_memory(demo_model, tmp_path):
    """In-training evaluation: FlagEmbedding's training model, as the Trainer holds it, gives the same vectors."""
    from FlagEmbedding.finetune.embedder.encoder_only.base.modeling import BiEncoderOnlyEmbedderModel
    from transformers import AutoModel, AutoTokenizer

    train_model = BiEncoderOnlyEmbedderModel(AutoModel.from_pretrained(demo_model),
                                             AutoTokenizer.from_pretrained(demo_model),
                                             sentence_pooling_method="mean", normalize_embeddings=True)
    train_model.train()
    texts = ["the old ferry", "a clock on the tower"]
    from_obj = Encoder(train_model, progress=False).encode(texts).dense
    from_dir = Encoder(demo_model, device="cpu", progress=False).encode(texts).dense
    assert np.abs(from_obj - from_dir).max() < 1e-5 and train_model.training
    from tests.eval.helpers import write_beir

    res = evaluate_model(train_model, write_beir(tmp_path / "beir"), ks=(1, 10), progress=False)
    assert res["model"]["path"].startswith("<in-memory") and 0 <= res["results"]["dense"]["metrics"]["ndcg@10"] <= 1


def test_spill_limit_is_an_argument_not_an_environment_switch(demo_model):
    assert Encoder(demo_model, device="cpu", spill_mb=0.5).spill_bytes == 2**19
    with pytest.raises(UserError, match=r"^--spill-mb -1: expected megabytes \(a number >= 0, e\.g\. 256\); "
                                        r"leave it out for 256$"):
        Encoder(demo_model, device="cpu", spill_mb=-1)
    assert Encoder(demo_model, device="cpu").spill_bytes == 256 * 2**20


def test_windows_give_the_vectors_of_one_pass(demo_model, example_data, monkeypatch):
    """Texts are tokenized and length-sorted in windows (bounded memory); the vectors do not depend on them."""
    import bgeft.models.embedder as embedder

    texts = list(dict.fromkeys(example_texts(example_data)))[:13]
    whole = Encoder(demo_model, device="cpu", progress=False).dense(texts)
    monkeypatch.setattr(embedder, "WINDOW", 4)
    windowed = Encoder(demo_model, device="cpu", progress=False, batch_size=3)
    np.testing.assert_allclose(windowed.dense(texts), whole, atol=1e-5)
    assert windowed.texts_encoded == 13


def test_tokenizing_ahead_gives_the_same_vectors_and_lengths(demo_model, example_data, monkeypatch):
    """On GPUs/NPUs the next window is tokenized in a background thread while this one is encoded; the
    vectors, the token counts (the cache's key) and the order do not change. Forced on here, on the CPU."""
    import threading

    import bgeft.models.embedder as embedder
    from bgeft.models import forward

    texts = list(dict.fromkeys(example_texts(example_data)))[:13]
    monkeypatch.setattr(embedder, "WINDOW", 4)
    plain = Encoder(demo_model, device="cpu", progress=False, batch_size=3)
    assert plain.tokenize_ahead is None               # auto: off, since the device is the CPU
    expected = plain.dense(texts)
    events: list[tuple[str, int, str]] = []
    second_window_started = threading.Event()
    original = forward.token_windows

    def traced(tokenizer, texts_, max_len, window, ahead):
        assert ahead is True

        class Traced:
            def __init__(self, inner):
                self.inner = inner

            def __call__(self, batch, **kwargs):
                events.append(("tokenize", len(batch), threading.current_thread().name))
                if len(events) == 2:
                    second_window_started.set()
                return self.inner(batch, **kwargs)

        for start, ids in original(Traced(tokenizer), texts_, max_len, window, ahead):
            if start == 0:   # window 1 is tokenized while window 0 is still to be encoded
                assert second_window_started.wait(timeout=30)
            events.append(("encode", start, threading.current_thread().name))
            yield start, ids

    monkeypatch.setattr(forward, "token_windows", traced)
    ahead = Encoder(demo_model, device="cpu", progress=False, batch_size=3, tokenize_ahead=True)
    np.testing.assert_allclose(ahead.dense(texts), expected, atol=1e-6)
    assert [ahead._rows[t][2] for t in texts] == [plain._rows[t][2] for t in texts]
    tokenized = [e for e in events if e[0] == "tokenize"]
    assert [n for _, n, _ in tokenized] == [4, 4, 4, 1]
    assert all(name.startswith("bgeft-tokenize") for *_, name in tokenized)
    # window k + 1 is being tokenized while window k is encoded, and never more than one window ahead:
    # the tokenizing of window k + 2 starts only after window k went to the model
    kinds = [kind for kind, *_ in events]
    tokenize_at = [i for i, k in enumerate(kinds) if k == "tokenize"]
    encode_at = [i for i, k in enumerate(kinds) if k == "encode"]
    assert len(encode_at) == 4 and tokenize_at[1] < encode_at[0]
    assert all(encode_at[k] < tokenize_at[k + 2] for k in range(2))
