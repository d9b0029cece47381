"""Wall time of `bgeft eval retriever` vs `python -m FlagEmbedding.evaluation.custom` on the same data/model.

Ours scores dense + sparse + ColBERT + hybrid from one corpus encoding; FlagEmbedding's evaluator
scores dense only. Both run as fresh subprocesses (imports and model loading included), on the same
FlagEmbedding custom-layout directory, with the same batch size, max lengths, device and precision,
k values and search depth; ours runs with --no-cache (a cold encode) and then once more with a
warm cache. The dense nDCG@10 / Recall@10 of both are printed as a check that they agree.

    python benchmarks/eval_vs_flagembedding.py   # demo MiniLM (M3 heads added), example_data/eval x10
    python benchmarks/eval_vs_flagembedding.py --model BAAI/bge-m3 --data my_beir_dir --repeat-corpus 1 --device cuda:0
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def demo_m3(dest: Path) -> Path:
    """The embedded demo model with seeded colbert/sparse heads saved, so every M3 mode is exercised."""
    import torch
    from transformers import AutoConfig

    from bgeft.models.demo import build_demo_model

    path = build_demo_model(dest)
    hidden = AutoConfig.from_pretrained(path).hidden_size
    torch.manual_seed(0)
    torch.save(torch.nn.Linear(hidden, hidden).state_dict(), path / "colbert_linear.pt")
    torch.save(torch.nn.Linear(hidden, 1).state_dict(), path / "sparse_linear.pt")
    return path


def scaled_data(src: Path, dest: Path, repeat: int) -> Path:
    """``src`` (any bgeft layout) in FlagEmbedding's custom layout, the corpus repeated ``repeat`` times."""
    from bgeft.eval.datasets import load_eval_data, write_custom_layout

    data = load_eval_data(src)
    corpus = dict(data.corpus)
    for r in range(1, repeat):
        for did, doc in data.corpus.items():
            corpus[f"{did}#{r}"] = {"title": doc["title"], "text": f"{doc['text']} ({r})"}
    data.corpus = corpus
    return write_custom_layout(data, dest)


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds user+sys) of one subprocess run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return took, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="embedder directory (default: the demo MiniLM with M3 heads)")
    ap.add_argument("--data", default=str(REPO / "example_data" / "eval"))
    ap.add_argument("--repeat-corpus", type=int, default=10, help="repeat the corpus N times (distinct ids/texts)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per command; the median is reported")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bgeft-evalbench-"))
    model = Path(args.model) if args.model else demo_m3(work / "model")
    data = scaled_data(Path(args.data), work / "data", args.repeat_corpus)
    fp16 = args.device != "cpu"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    ks = ["1", "5", "10", "100"]
    theirs = [sys.executable, "-m", "FlagEmbedding.evaluation.custom", "--eval_name", "bench",
              "--dataset_dir", str(data), "--splits", "test", "--output_dir", str(work / "fe"),
              "--eval_output_path", str(work / "fe" / "eval.md"), "--embedder_name_or_path", str(model),
              "--embedder_model_class", "encoder-only-m3", "--devices", args.device, "--use_fp16", str(fp16),
              "--k_values", *ks, "--search_top_k", "100", "--embedder_batch_size", str(args.batch_size),
              "--embedder_query_max_length", "64", "--embedder_passage_max_length", "512",
              "--cache_path", str(work / "hf"), "--overwrite", "True"]
    ours = [sys.executable, "-m", "bgeft.cli.main", "eval", "retriever", "--model", str(model), "--data", str(data),
            "--modes", "dense,sparse,colbert,hybrid", "--k", ",".join(ks), "--device", args.device,
            "--precision", "fp16" if fp16 else "fp32", "--batch-size", str(args.batch_size),
            "--query-max-len", "64", "--passage-max-len", "512", "--no-progress", "--out", str(work / "ours")]
    cold = ours + ["--no-cache"]
    warm = ours + ["--cache-dir", str(work / "cache")]
    n_docs = sum(1 for _ in (data / "corpus.jsonl").open())
    n_q = sum(1 for _ in (data / "test_queries.jsonl").open())
    print(
        f"model {model}\ndata {n_docs} passages, {n_q} queries ({args.data} x{args.repeat_corpus}), "
        f"device {args.device}"
    )

    timed(warm, env)  # fills the cache
    times = {"theirs": [], "cold": [], "warm": []}
    for _ in range(args.runs):  # interleaved, so load from other processes hits all three alike
        times["theirs"].append(timed(theirs, env))
        times["cold"].append(timed(cold, env))
        times["warm"].append(timed(warm, env))
    ours_m = json.loads((work / "ours" / "metrics.json").read_text())
    fe = json.loads(next((work / "fe").rglob("eval_results.json")).read_text())
    fe = next(iter(fe.values())) if "ndcg_at_10" not in fe else fe
    med = statistics.median
    names = {"theirs": "FlagEmbedding.evaluation.custom (dense only)",
             "cold": "bgeft eval retriever, 4 modes, cold (--no-cache)",
             "warm": "bgeft eval retriever, 4 modes, warm cache"}
    base_wall, base_cpu = med(w for w, _ in times["theirs"]), med(c for _, c in times["theirs"])
    print("\n| command | median wall s | wall ratio | median CPU s | CPU ratio |\n|---|---|---|---|---|")
    for key, name in names.items():
        wall, cpu = med(w for w, _ in times[key]), med(c for _, c in times[key])
        print(f"| {name} | {wall:.2f} | {wall / base_wall:.2f} | {cpu:.2f} | {cpu / base_cpu:.2f} |")
    t = ours_m["timing"]
    print(
        f"\nours, in process (last warm run): load model {t['load_model_s']:.2f}s, "
        f"encode corpus {t['encode_corpus_s']:.2f}s (cache hit: "
        f"{ours_m['cache']['hit']}), encode queries {t['encode_queries_s']:.2f}s, search "
        + ", ".join(f"{k} {v:.3f}s" for k, v in t["search_s"].items())
    )
    d = ours_m["results"]["dense"]["metrics"]
    print(f"dense agreement: nDCG@10 ours {d['ndcg@10']:.4f} vs FlagEmbedding {fe['ndcg_at_10']:.4f}; "
          f"Recall@10 ours {d['recall@10']:.4f} vs {fe['recall_at_10']:.4f}")
    for mode, r in ours_m["results"].items():
        print(f"  {mode:8s} nDCG@10 {r['metrics']['ndcg@10']:.4f}  Recall@100 {r['metrics']['recall@100']:.4f}")


if __name__ == "__main__":
    main()
