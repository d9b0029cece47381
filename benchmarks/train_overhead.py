"""Wall time of `bgeft train` vs the raw FlagEmbedding command on the same demo recipe, in one run.

    python benchmarks/train_overhead.py [--recipe recipes/demo_cpu_m3.yaml] [--repeats 3] [--steps 8]

Both commands train the same steps with the same arguments: the raw one is the `python -m
FlagEmbedding.finetune…` command that bgeft's plan corresponds to. Runs alternate (raw, bgeft, raw, …)
so machine load affects both alike. Also prints the start-up time of `bgeft --help`, `bgeft ls` and
`bgeft validate` (targets: < 0.5 s, no torch import).
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], cpu: list[float] | None = None, env: dict | None = None) -> float:
    """Wall seconds of one command; its CPU seconds (user+sys, children included) go to ``cpu``."""
    cpu_before, start = _child_cpu(), time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})})
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"command failed ({result.returncode}): {' '.join(argv)}\n{result.stderr[-3000:]}")
    if cpu is not None:
        cpu.append(_child_cpu() - cpu_before)
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default=str(REPO / "recipes" / "demo_cpu_m3.yaml"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8)
    args = ap.parse_args()

    from bgeft.config.tasks import TASKS
    from bgeft.models.demo import build_demo_model
    from bgeft.train.api import prepare
    from bgeft.train.launch import detect_device

    tmp = Path(tempfile.mkdtemp(prefix="bgeft-bench-"))
    model = build_demo_model(tmp / "minilm-m3")
    device = detect_device()
    raw_times, ours_times, raw_cpu, ours_cpu = [], [], [], []
    for i in range(args.repeats):
        overrides = [f"model.model_name_or_path={model}", f"training.max_steps={args.steps}",
                     f"training.save_steps={args.steps}"]
        _, plan = prepare(args.recipe, overrides + [f"training.output_dir={tmp / f'raw{i}'}"], device=device)
        worker = plan.argv.index("bgeft.train.worker")
        raw = plan.argv[:worker] + [TASKS[plan.task].module] + plan.argv[worker + 2:]
        raw_times.append(timed(raw, raw_cpu, env=plan.env))  # the same environment bgeft gives its worker
        ours = [sys.executable, "-m", "bgeft.cli.main", "train", args.recipe, *overrides,
                f"training.output_dir={tmp / f'ours{i}'}"]
        ours_times.append(timed(ours, ours_cpu))
        print(f"run {i + 1}: raw FlagEmbedding {raw_times[-1]:.1f} s wall / {raw_cpu[-1]:.1f} s CPU, "
              f"bgeft train {ours_times[-1]:.1f} s wall / {ours_cpu[-1]:.1f} s CPU", flush=True)

    raw_med, ours_med = statistics.median(raw_times), statistics.median(ours_times)
    print(f"\nrecipe {Path(args.recipe).name}, {args.steps} steps, device {device.kind} ({device.name})")
    print(f"raw `python -m {TASKS[plan.task].module}`: median {raw_med:.2f} s over {args.repeats}")
    print(f"`bgeft train` (validation, data check, manifest, worker, model card): median {ours_med:.2f} s")
    print(f"ratio bgeft / raw: {ours_med / raw_med:.3f}  (overhead {ours_med - raw_med:+.2f} s)")
    rc, oc = statistics.median(raw_cpu), statistics.median(ours_cpu)
    print(f"CPU time (user+sys, all processes): raw {rc:.1f} s, bgeft {oc:.1f} s, ratio {oc / rc:.3f} "
          "(less sensitive to other load on the machine than wall time)")

    for verb in (["--help"], ["ls"], ["validate", args.recipe]):
        runs = [timed([sys.executable, "-m", "bgeft.cli.main", *verb]) for _ in range(5)]
        print(f"`bgeft {verb[0]}` start-up: median {statistics.median(runs) * 1000:.0f} ms")
    baseline = [timed([sys.executable, "-c", "pass"]) for _ in range(5)]
    print(f"(bare `python -c pass`: median {statistics.median(baseline) * 1000:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
