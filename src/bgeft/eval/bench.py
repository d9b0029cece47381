"""``bgeft eval bench``: encode / rerank speed and memory of a model at several batch sizes.

For each batch size B the texts are cut into batches of B and each batch is one call of
FlagEmbedding's own API - ``encode_corpus`` (``BGEM3FlagModel`` returning dense + sparse + ColBERT,
as ``bgeft eval retriever`` uses it, or ``FlagModel``) or ``FlagReranker.compute_score`` - timed
end to end (tokenisation, the model's batch-size probe pass, forward, conversion to numpy).
One warm-up call precedes the timed ones.

Reported per batch size: items/s and tokens/s (tokens after truncation to ``max_length``), per-call
latency p50/p90/p95/p99 in ms; overall: peak RSS of the process (psutil, sampled every 5 ms),
peak GPU/NPU memory allocated by torch, the device name.

Python API::

    from bgeft.eval.bench import bench
    res = bench("BAAI/bge-m3", batch_sizes=(1, 8, 32), reranker=False, n_items=256, out_dir="out/bench")
    res["rows"][0]["items_per_s"], res["peak_rss_mb"], res["device_name"]
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import psutil

from bgeft.errors import UserError
from bgeft.models.devices import device_name, parse_devices

EN = ("the river town ferry crosses morning boat teacher school letter mountain story village old "
      "young family market rain autumn night city book chapter road bridge harbour lantern").split()
ZH = "青石镇坐落在白鹭河的东岸镇上一共住着三百户人家最老的建筑是河边龙王庙每年秋天银杏叶落满石阶孩子们捡起叶子"


def synthetic_texts(n: int, seed: int = 0) -> list[str]:
    """Deterministic mixed English / Chinese passages of 10-200 words or characters."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        length = int(rng.integers(10, 200))
        if i % 2:
            out.append("".join(rng.choice(list(ZH), length)))
        else:
            out.append(" ".join(rng.choice(EN, length)))
    return out


class _PeakRSS:
    """Samples this process's resident memory in a background thread."""

    def __init__(self, every: float = 0.005):
        self.proc, self.every, self.peak = psutil.Process(), every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self._stop.wait(self.every)

    def __enter__(self):
        self.peak = self.proc.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _accel(devices):
    import torch

    kind = devices[0].split(":")[0]
    if kind == "cuda":
        return torch.cuda
    if kind == "npu":
        return torch.npu
    return None


def percentiles(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, float) * 1000.0
    return {f"p{p}_ms": float(np.percentile(arr, p)) for p in (50, 90, 95, 99)}


def bench(model_path, batch_sizes=(1, 8, 32, 128), reranker: bool = False, data_dir=None, n_items: int = 256,
          max_length: int = 512, device=None, fp16=None, out_dir=None) -> dict:
    """Time encoding (or reranking) of ``n_items`` texts at each batch size (see the module docstring)."""
    batch_sizes = sorted({int(b) for b in batch_sizes})
    if not batch_sizes or batch_sizes[0] < 1:
        raise UserError(f"--batch-sizes {batch_sizes}: expected positive integers such as 1,8,32,128")
    if n_items < 1:
        raise UserError(f"--items {n_items}: must be positive")
    devices = parse_devices(device)[:1]
    if data_dir is not None:
        from bgeft.eval.datasets import load_eval_data

        data = load_eval_data(data_dir)
        passages = data.doc_texts()
        queries = [data.queries[q] for q in data.eval_qids]
        texts = [passages[i % len(passages)] for i in range(n_items)]
    else:
        texts = synthetic_texts(n_items)
        queries = synthetic_texts(16, seed=1)
    if reranker:
        from bgeft.models.reranker import Reranker

        model = Reranker(model_path, device=devices[0], batch_size=max(batch_sizes), max_length=max_length, fp16=fp16,
                         flag="--model")
        items = [(queries[i % len(queries)][:64], t) for i, t in enumerate(texts)]
        tok = model.model.tokenizer
        n_tokens = [len(x) for x in tok([a for a, _ in items], [b for _, b in items], truncation=True,
                                        max_length=max_length)["input_ids"]]

        def call(batch, b):
            return model.model.compute_score([list(p) for p in batch], batch_size=b, max_length=max_length)
        what = "FlagReranker.compute_score"
    else:
        from bgeft.models.embedder import Encoder

        model = Encoder(model_path, device=devices[0], passage_max_length=max_length, fp16=fp16, progress=False)
        items = texts
        tok = model.tokenizer
        n_tokens = [len(x) for x in tok(items, truncation=True, max_length=max_length)["input_ids"]]
        outputs = {"dense", "sparse", "colbert"} if model.is_m3 else {"dense"}

        def call(batch, b):
            model.batch_size = b
            model.clear_cache()  # every timed call encodes for real
            return model.encode(batch, "passage", outputs)
        what = f"bgeft Encoder ({model.class_name})" + (" (dense + sparse + colbert)" if model.is_m3 else " (dense)")
    accel = _accel(devices)
    rows = []
    with _PeakRSS() as rss:
        if accel is not None:
            accel.reset_peak_memory_stats()
        for b in batch_sizes:
            call(items[:b], b)  # warm-up
            latencies, done_tokens = [], 0
            for start in range(0, len(items), b):
                batch = items[start:start + b]
                if accel is not None:
                    accel.synchronize()
                t = time.perf_counter()
                call(batch, b)
                if accel is not None:
                    accel.synchronize()
                latencies.append(time.perf_counter() - t)
                done_tokens += sum(n_tokens[start:start + b])
            total = sum(latencies)
            rows.append({"batch_size": b, "calls": len(latencies), "items": len(items),
                         "items_per_s": len(items) / total, "tokens_per_s": done_tokens / total,
                         "mean_tokens_per_item": done_tokens / len(items), "total_s": total, **percentiles(latencies)})
    result = {
        "kind": "bench",
        "model": {"path": str(model.path), "api": what},
        "device": devices[0],
        "device_name": device_name(devices[0]),
        "fp16": model.fp16,
        "settings": {"batch_sizes": batch_sizes, "n_items": len(items), "max_length": max_length,
                     "texts": str(data_dir) if data_dir else "synthetic mixed English/Chinese passages"},
        "rows": rows,
        "peak_rss_mb": rss.peak / 2**20,
        "peak_accelerator_mem_mb": (accel.max_memory_allocated() / 2**20) if accel is not None else None,
    }
    if out_dir is not None:
        from bgeft.eval import plots
        from bgeft.eval.report import write_outputs

        def images(res, out):
            plots.throughput_plot(res["rows"], out / "throughput.png", res["model"]["api"])
            return ["throughput.png"]

        write_outputs(Path(out_dir), result, render=render_bench, images=images)
    return result


def render_bench(result: dict, images: list[str]) -> str:
    from bgeft.eval.report import table

    s = result["settings"]
    out = ["# Throughput and latency\n",
           f"- Model: `{result['model']['path']}`, timed call: `{result['model']['api']}`",
           f"- Device: {result['device']} ({result['device_name']}), fp16: {result['fp16']}",
           f"- {s['n_items']} items ({s['texts']}), truncated to {s['max_length']} tokens\n", "## Results\n"]
    out.append(table(["batch", "items/s", "tokens/s", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "calls"],
                     [[r["batch_size"], r["items_per_s"], r["tokens_per_s"], r["p50_ms"], r["p90_ms"], r["p95_ms"],
                       r["p99_ms"], r["calls"]] for r in result["rows"]]))
    out.append("## Memory\n")
    acc = result["peak_accelerator_mem_mb"]
    out.append(f"- Peak RSS: {result['peak_rss_mb']:.1f} MiB")
    out.append(f"- Peak accelerator memory allocated: {acc:.1f} MiB" if acc is not None else
               "- Peak accelerator memory: n/a (CPU run)")
    out.append("\n## Plots\n")
    out += [f"![{i}]({i})\n" for i in images]
    out.append("## Notes\n")
    out.append("- Latency is one FlagEmbedding call per batch, end to end: tokenisation, its batch-size probe "
               "forward pass, the forward pass, conversion to numpy. Throughput = items / sum of call times.")
    return "\n".join(out) + "\n"
