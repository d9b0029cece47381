"""What evaluating during training costs: `bgeft train` on the demo recipe with and without `eval:`.

    python benchmarks/train_eval_overhead.py [--recipe recipes/demo_cpu_m3.yaml] [--steps 8]
        [--every 2,4] [--mode dense] [--repeats 1]

One run of each variant, alternated (no eval, eval every N steps, ...) so machine load affects them alike.
The dev set is example_data/eval (BEIR layout). Prints wall seconds, the ratio to the run without
evaluation, and the evaluation's share of the wall time (the sum of `eval_seconds` in eval_history.jsonl).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(recipe: str, overrides: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "bgeft.cli.main", "train", recipe, *overrides, "--no-data-check"],
                            capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if result.returncode != 0:
        raise SystemExit(f"bgeft train failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default=str(REPO / "recipes" / "demo_cpu_m3.yaml"))
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--every", default="2,4", help="evaluation intervals in steps, comma-separated")
    ap.add_argument("--mode", default="dense")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bgeft-bench-eval-"))
    dev = REPO / "example_data" / "eval"
    variants: dict[str, list[str]] = {"no eval": []}
    for n in (int(x) for x in args.every.split(",")):
        variants[f"eval every {n} steps"] = [
            "training.eval_strategy=steps", f"training.eval_steps={n}", f"training.save_steps={n}",
            "training.metric_for_best_model=ndcg@10", "training.load_best_model_at_end=true",
            f"eval.data={dev}", f"eval.mode={args.mode}"]
    walls: dict[str, list[float]] = {k: [] for k in variants}
    shares: dict[str, list[float]] = {k: [] for k in variants}
    evals: dict[str, int] = {}
    for rep in range(args.repeats):
        for i, (name, extra) in enumerate(variants.items()):
            out = tmp / f"r{rep}-{i}"
            base = [f"training.output_dir={out}", f"training.max_steps={args.steps}",
                    f"training.save_steps={args.steps}"]
            wall = run(args.recipe, base + extra)
            walls[name].append(wall)
            hist = out / "eval_history.jsonl"
            rows = [json.loads(x) for x in hist.read_text().splitlines()] if hist.is_file() else []
            evals[name] = len(rows)
            shares[name].append(sum(r["eval_seconds"] for r in rows) / wall)
    base_wall = min(walls["no eval"])
    print(f"recipe {args.recipe}, {args.steps} steps, dev set {dev} ({args.mode}), {args.repeats} run(s) each, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"{'variant':<22} {'evals':>5} {'wall s':>8} {'ratio':>6} {'eval share':>10}")
    for name in variants:
        wall = min(walls[name])
        print(f"{name:<22} {evals.get(name, 0):>5} {wall:>8.1f} {wall / base_wall:>6.2f} "
              f"{min(shares[name]) * 100:>9.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
