"""Throughput / latency / memory benchmark on the tiny models."""
import json

from bgeft.eval.bench import bench


def test_embedder_bench_writes_report(m3_tiny, tmp_path):
    res = bench(m3_tiny, batch_sizes=(4, 1), n_items=8, max_length=64, device="cpu", out_dir=tmp_path)
    assert [r["batch_size"] for r in res["rows"]] == [1, 4]
    assert [r["calls"] for r in res["rows"]] == [8, 2]
    for r in res["rows"]:
        assert r["items_per_s"] > 0 and r["tokens_per_s"] > r["items_per_s"]
        assert r["p50_ms"] <= r["p90_ms"] <= r["p95_ms"] <= r["p99_ms"]
    assert res["peak_rss_mb"] > 50 and res["device_name"] and res["peak_accelerator_mem_mb"] is None
    assert "dense + sparse + colbert" in res["model"]["api"]
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["rows"][0]["p99_ms"] == res["rows"][0]["p99_ms"]
    assert "## Memory" in (tmp_path / "report.md").read_text() and (tmp_path / "throughput.png").is_file()


def test_reranker_bench_on_eval_data(run_cli, tiny_reranker, beir_dir, tmp_path):
    code, out, err = run_cli("eval", "bench", "--model", tiny_reranker, "--reranker", "--batch-sizes", "2",
                             "--items", "4", "--data", beir_dir, "--max-length", "64", "--device", "cpu")
    assert code == 0, err
    assert "FlagReranker.compute_score" in out and "| 2 |" in out
