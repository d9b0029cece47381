"""eval compare takes what every model-taking command takes (one resolver, models/resolve.py): a local
directory, a hub id (as in the README: --baseline BAAI/bge-m3), the demo model, or an evaluation output."""
from __future__ import annotations

import shutil

import pytest

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch, m3_tiny):
    """A Hugging Face cache holding ``BAAI/tiny-m3`` (a copy of the tiny M3 model), as after one download:
    with HF_HUB_OFFLINE=1 the hub id resolves from the cache, nothing is fetched."""
    import huggingface_hub.constants as hf

    cache = tmp_path / "hf-cache"
    repo = cache / "models--BAAI--tiny-m3"
    shutil.copytree(m3_tiny, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    return cache


def test_compare_with_a_hub_id_baseline(run_cli, hub_cache, m3_tiny, beir_dir, tmp_path):
    code, out, err = run_cli("eval", "compare", "--baseline", "BAAI/tiny-m3", "--candidate", m3_tiny,
                             "--data", beir_dir, "--device", "cpu", "--no-progress", "--resamples", "200",
                             "--k", "1,3,10", "--metrics", "ndcg@10", "--cache-dir", tmp_path / "c",
                             "--out", tmp_path / "cmp")
    assert code == 0, err
    assert (tmp_path / "cmp" / "baseline" / "metrics.json").is_file()
    assert "| dense | ndcg@10 |" in out and "| 0/3/0 |" in out  # the same weights on both sides: all ties


def test_a_hub_id_that_cannot_be_fetched_is_one_message(run_cli, hub_cache, beir_dir, tmp_path):
    code, _, err = run_cli("eval", "compare", "--baseline", "BAAI/not-downloaded", "--candidate",
                           tmp_path / "nothing", "--data", beir_dir, "--device", "cpu", "--no-progress")
    assert code == 2
    assert err.startswith("bgeft: error: BAAI/not-downloaded: not a local model directory and it could not be "
                          "fetched from the Hugging Face Hub (")
    assert err.endswith("download it first and give its directory (or an evaluation output: a directory holding "
                        "metrics.json)\n")


def test_neither_model_nor_evaluation_output(run_cli, beir_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli("eval", "compare", "--baseline", tmp_path / "empty", "--candidate", tmp_path / "empty",
                           "--data", beir_dir)
    assert code == 2
    assert err == (f"bgeft: error: --baseline {tmp_path / 'empty'}: no config.json there; give a model directory "
                   "saved by save_pretrained / FlagEmbedding, a hub id, or bgeft:demo-model (or an evaluation "
                   "output: a directory holding metrics.json)\n")
