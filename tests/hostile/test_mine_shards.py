"""bgeft data mine --shard / --from-shards with hostile shard directories: parts from another model or
other settings, a truncated or missing part, mixed splits, a FIFO or a file as the directory, outputs
that would replace an input or a shard. Each case: one exact message, nothing written."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from bgeft.data.mine import mine_negatives
from bgeft.models.embedder import Encoder
from tests.helpers.tiny_models import example_texts
from tests.hostile.conftest import assert_no_temp


@pytest.fixture(scope="module")
def made(tmp_path_factory, example_data, demo_model):
    """Training rows, a corpus and a good 2-part shard directory, built once."""
    root = tmp_path_factory.mktemp("mine-shards")
    passages = list(dict.fromkeys(t[:150] for t in example_texts(example_data)))[:12]
    train = root / "train.jsonl"
    train.write_text("".join(json.dumps({"query": f"q{i}", "pos": [passages[i]]}, ensure_ascii=False) + "\n"
                             for i in range(4)), encoding="utf-8")
    corpus = root / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in passages), encoding="utf-8")
    good = root / "good"
    for i in range(2):
        mine_negatives(train, None, model=demo_model, corpus=corpus, device="cpu", shard=(i, 2), shard_dir=good)
    return train, corpus, good


@pytest.fixture
def shards(made, tmp_path):
    """A private copy of the good shard directory."""
    return shutil.copytree(made[2], tmp_path / "shards")


def _mine(run_cli, made, shard_dir, out, *extra, model):
    train, corpus, _ = made
    return run_cli("data", "mine", train, "-o", out, "--model", model, "--corpus", corpus, "--device", "cpu",
                   "--range", "0-5", "--negatives", "2", "--from-shards", shard_dir, *extra)


def _part(made, model, shard_dir, index, **kwargs):
    train, corpus, _ = made
    mine_negatives(train, None, model=model, corpus=corpus, device="cpu", shard=(index, 2), shard_dir=shard_dir,
                   **kwargs)


def test_part_from_another_model(run_cli, made, shards, demo_model, tmp_path, capsys):
    other = shutil.copytree(demo_model, tmp_path / "other-model")
    weights = other / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-4] ^= 1  # the lowest mantissa byte of the last float32 weight: another (still working) model
    weights.write_bytes(bytes(data))
    _part(made, other, shards, 1)
    capsys.readouterr()  # the part's own output
    code, _, err = _mine(run_cli, made, shards, tmp_path / "o.jsonl", model=demo_model)
    assert (code, err) == (2, f"bgeft: error: {shards / 'pool-1-of-2.json'}: differs from pool-0-of-2.json: another "
                              f"model ({other} vs {demo_model}: the model files differ); encode every part with the "
                              "same model, pool and settings\n")
    assert not (tmp_path / "o.jsonl").exists()


def test_part_with_other_settings(run_cli, made, shards, demo_model, tmp_path, capsys):
    _part(made, demo_model, shards, 0, passage_max_length=256, pooling="cls")
    capsys.readouterr()
    code, _, err = _mine(run_cli, made, shards, tmp_path / "o.jsonl", model=demo_model)
    assert (code, err) == (2, f"bgeft: error: {shards / 'pool-1-of-2.json'}: differs from pool-0-of-2.json: "
                              "passage_max_len 512 vs 256; pooling 'mean' vs 'cls'; encode every part with the same "
                              "model, pool and settings\n")


def test_run_with_other_settings_or_pool(run_cli, made, shards, demo_model, tmp_path):
    code, _, err = _mine(run_cli, made, shards, tmp_path / "o.jsonl", "--passage-max-length", "128",
                         model=demo_model)
    assert (code, err) == (2, f"bgeft: error: {shards}: the shards do not match this run (shard vs this run: "
                              "passage_max_len 512 vs 128); mine with the same --model, --corpus/input, "
                              "--passage-max-length, --pooling, --model-class and device precision as the --shard "
                              "runs (fp32 everywhere: --fp32), or encode the shards again\n")
    train, _, _ = made
    code, _, err = run_cli("data", "mine", train, "-o", tmp_path / "o.jsonl", "--model", demo_model, "--device",
                           "cpu", "--range", "0-3", "--from-shards", shards)  # no --corpus: the file's own pool
    assert code == 2 and err.startswith(f"bgeft: error: {shards}: the shards do not match this run (shard vs this "
                                        "run: another pool (12 passages, sha256 ")
    assert "vs 4, " in err and "another --corpus, input file or --skip-invalid result)" in err
    assert not (tmp_path / "o.jsonl").exists()


def test_truncated_part(run_cli, made, shards, demo_model, tmp_path):
    npy = shards / "pool-1-of-2.npy"
    npy.write_bytes(npy.read_bytes()[:-100])
    code, _, err = _mine(run_cli, made, shards, tmp_path / "o.jsonl", model=demo_model)
    assert code == 2 and err.startswith(f"bgeft: error: {npy}: truncated or not a .npy file (")
    assert err.endswith("); encode this part again with --shard 1/2\n")
    npy.write_bytes(b"not numpy")
    code, _, err = _mine(run_cli, made, shards, tmp_path / "o.jsonl", model=demo_model)
    assert code == 2 and err.startswith(f"bgeft: error: {npy}: truncated or not a .npy file (")


def test_missing_and_unfinished_parts(run_cli, made, shards, demo_model, tmp_path):
    (shards / "pool-1-of-2.json").unlink()   # an interrupted node: the .npy without its .json
    (shards / "pool-0-of-2.npy").unlink()
    code, _, err = _mine(run_cli, made, shards, tmp_path / "o.jsonl", model=demo_model)
    assert (code, err) == (2, f"bgeft: error: --from-shards {shards}: missing pool-0-of-2.npy, pool-1-of-2.json; run "
                              f"each missing part with --shard I/2 --shard-dir {shards} (a .npy without its .json is "
                              "unfinished)\n")


def test_mixed_splits_and_foreign_json(run_cli, made, shards, demo_model, tmp_path):
    shutil.copy(shards / "pool-0-of-2.npy", shards / "pool-0-of-3.npy")
    code, _, err = _mine(run_cli, made, shards, tmp_path / "o.jsonl", model=demo_model)
    assert (code, err) == (2, f"bgeft: error: --from-shards {shards}: holds shards of 2 different splits (of 2, "
                              "of 3); keep only one split's pool-I-of-N files there\n")
    (shards / "pool-0-of-3.npy").unlink()
    (shards / "pool-1-of-2.json").write_text('{"format": "something else"}')
    code, _, err = _mine(run_cli, made, shards, tmp_path / "o.jsonl", model=demo_model)
    assert (code, err) == (2, f"bgeft: error: {shards / 'pool-1-of-2.json'}: not a bgeft pool shard description (no "
                              '"format": "bgeft-pool-shard/1"); write this part again with --shard\n')


def test_shard_dir_is_not_a_directory(run_cli, made, demo_model, tmp_path, tree):
    train, corpus, _ = made
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    tree.snapshot()
    base = ("data", "mine", train, "--model", demo_model, "--corpus", corpus, "--device", "cpu", "--shard", "0/2")
    for target, message in (
        (fifo, f"--shard-dir {fifo}: is a FIFO (named pipe); bgeft writes only regular files and directories: "
               "choose another path"),
        (train, f"--shard-dir {train}: is a file; give a directory path"),
        (train.parent, f"--shard-dir {train.parent}: contains the input {train}; writing there could destroy it: "
                       "choose an output outside the inputs"),
        (demo_model, f"--shard-dir {demo_model}: is also an input ({demo_model}); write to a new path"),
    ):
        code, _, err = run_cli(*base, "--shard-dir", target)
        assert (code, err) == (2, f"bgeft: error: {message}\n"), target
    tree.assert_untouched()
    for target, message in ((fifo, f"--from-shards {fifo}: is a FIFO (named pipe), not a regular file; bgeft reads "
                                   "only regular files (copy the data into a file first)"),
                            (train, f"--from-shards {train}: is a file; give the directory the --shard runs wrote "
                                    "(their --shard-dir)")):
        code, _, err = _mine(run_cli, made, target, tmp_path / "o.jsonl", model=demo_model)
        assert (code, err) == (2, f"bgeft: error: {message}\n"), target
    tree.assert_untouched()


def test_output_is_a_shard(run_cli, made, shards, demo_model, tmp_path):
    before = {p.name: p.read_bytes() for p in shards.iterdir()}
    for out in (shards / "pool-0-of-2.npy", shards / "pool-1-of-2.json", shards):
        code, _, err = _mine(run_cli, made, shards, out, model=demo_model)
        assert code == 2 and err.startswith(f"bgeft: error: -o {out}: "), out
        assert "is also an input" in err or "is a directory" in err
    assert {p.name: p.read_bytes() for p in shards.iterdir()} == before


def test_interrupted_part_leaves_no_half_file(made, demo_model, tmp_path, monkeypatch):
    """Ctrl-C while the .npy is being written: no pool-0-of-2.npy, no .json, no temp file."""
    import bgeft.data.shards as shards_module

    class Interrupting:
        def __init__(self, vectors):
            self.vectors, self.shape = vectors, vectors.shape

        def __getitem__(self, key):
            if key.start:
                raise KeyboardInterrupt
            return self.vectors[key]

    original = Encoder.dense
    monkeypatch.setattr(Encoder, "dense", lambda self, texts, kind="passage": Interrupting(original(self, texts, kind)))
    monkeypatch.setattr(shards_module, "WRITE_CHUNK", 2)
    target = tmp_path / "shards"
    with pytest.raises(KeyboardInterrupt):
        _part(made, demo_model, target, 0)
    assert list(target.iterdir()) == []
    assert_no_temp(tmp_path)
