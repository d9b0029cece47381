"""Fixed cost of `bgeft train` over the raw FlagEmbedding command with the identical arguments.

    python benchmarks/train_overhead.py [--recipe recipes/demo_cpu_m3.yaml] [--repeats 3] [--steps 4]
                                        [--procs 1,2] [--startup]
    python benchmarks/train_overhead.py --gpu-shape [--seq-len 512,8192]     # on a CUDA machine

For each process count (1 = `python -m …`, 2 = `torchrun --nproc_per_node 2`, on the CPU with gloo)
the script asks `bgeft train … --dry-run` for the plan, turns its worker command into the raw
`python -m FlagEmbedding.finetune…` command (same arguments, same environment), and runs raw and
bgeft alternately (raw, bgeft, raw, …) so that load from other jobs hits both alike. It prints the
minimum of the repeats (the least disturbed run), the ratio and the fixed seconds bgeft adds, and the
load average (`uptime`) before and after: on a shared machine only a quiet-machine figure means much.

It also measures bgeft's own share directly (``--phases``, on by default), which end-to-end times on a
shared machine cannot resolve below a second or so: ``bgeft train`` runs in a wrapper that timestamps,
inside the bgeft process, the start of the training process(es), the moment all are ready at the start
gate and the moment bgeft opens it (the training waits that long), and the end of training; bgeft's own
wall time is (start -> spawn) + (ready -> open) + (training's end -> exit), and its own CPU is
``getrusage(RUSAGE_SELF)`` of that process (the training processes are not in it).

``--gpu-shape`` trains a randomly initialised model of BGE-M3's exact shape (XLM-R large: 24 layers,
1024 hidden, vocab 250,002, 8,194 positions) at each ``--seq-len`` and prints tokens/s and peak GPU
memory for raw and bgeft. It only builds the model files on the CPU; run it where a GPU is visible.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BGEFT = str(Path(sys.executable).with_name("bgeft"))
WORKERS = ("bgeft.train.worker", "bgeft.worker")


def task_module(task: str) -> str:
    try:
        from bgeft.config.tasks import TASKS
    except ImportError:  # before the package move (issue 12): measuring an older checkout
        from bgeft.tasks import TASKS
    return TASKS[task].module


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], env: dict | None = None, cpu: list | None = None) -> float:
    """Wall seconds of one command; its CPU seconds (user + sys of every process it started) go to ``cpu``:
    on a machine shared with other jobs they move far less than wall time."""
    cpu_before, start = _child_cpu(), time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})})
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"command failed ({result.returncode}): {shlex.join(argv)}\n{result.stderr[-3000:]}")
    if cpu is not None:
        cpu.append(_child_cpu() - cpu_before)
    return elapsed


def raw_command(recipe: str, overrides: list[str]) -> tuple[list[str], dict[str, str]]:
    """The raw FlagEmbedding command (argv, env) of bgeft's plan for these overrides."""
    out = subprocess.run([BGEFT, "train", recipe, *overrides, "--dry-run"], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"bgeft train --dry-run failed:\n{out.stderr[-3000:]}")
    lines = out.stdout.splitlines()
    words = shlex.split(lines[lines.index("command:") + 1])
    env = {}
    while "=" in words[0] and not words[0].startswith(("/", "-")):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    at = next(i for i, w in enumerate(words) if w in WORKERS)
    return words[:at] + [task_module(words[at + 1])] + words[at + 2:], env


def compare(args, tmp: Path, model: Path, procs: int) -> dict:
    base = [f"model.model_name_or_path={model}", f"training.max_steps={args.steps}",
            f"training.save_steps={args.steps}", f"launch.nproc_per_node={procs}", *args.override]
    raw_times, ours_times, raw_cpu, ours_cpu = [], [], [], []
    for i in range(args.repeats):
        raw, env = raw_command(args.recipe, base + [f"training.output_dir={tmp / f'raw{procs}-{i}'}"])
        raw_times.append(timed(raw, env, raw_cpu))
        ours_times.append(timed([BGEFT, "train", args.recipe, *base, f"training.output_dir={tmp / f'ours{procs}-{i}'}"],
                                cpu=ours_cpu))
        print(f"  {procs} process(es), run {i + 1}: raw {raw_times[-1]:.2f} s ({raw_cpu[-1]:.2f} s CPU), "
              f"bgeft {ours_times[-1]:.2f} s ({ours_cpu[-1]:.2f} s CPU)", flush=True)
    raw_min, ours_min = min(raw_times), min(ours_times)
    return {"procs": procs, "raw": raw_min, "bgeft": ours_min, "ratio": ours_min / raw_min,
            "fixed": ours_min - raw_min, "raw_cpu": min(raw_cpu), "bgeft_cpu": min(ours_cpu)}


PHASES = r"""
import json, resource, sys, time
t0 = time.perf_counter()
marks = {}
import bgeft.train.gate as gate
import bgeft.train.process as process

class Popen(process.subprocess.Popen):
    def __init__(self, *a, **k):
        marks.setdefault("spawn", time.perf_counter())
        super().__init__(*a, **k)
    def wait(self, *a, **k):
        code = super().wait(*a, **k)
        marks.setdefault("ended", time.perf_counter())
        return code

process.subprocess = type(sys)("subprocess_shim")
process.subprocess.Popen, process.subprocess.PIPE, process.subprocess.STDOUT = Popen, -1, -2
poll, open_ = gate.Gate.poll, gate.Gate.open
def timed_poll(self):
    found = poll(self)
    if found is not None:
        marks.setdefault("ready", time.perf_counter())
    return found
def timed_open(self):
    marks.setdefault("open", time.perf_counter())
    return open_(self)
gate.Gate.poll, gate.Gate.open = timed_poll, timed_open
from bgeft.cli.main import main
code = main(sys.argv[1:])
end = time.perf_counter()
use = resource.getrusage(resource.RUSAGE_SELF)
print("PHASES " + json.dumps({"code": code, "before": marks["spawn"] - t0, "gate": marks["open"] - marks["ready"],
      "after": end - marks["ended"], "cpu": use.ru_utime + use.ru_stime, "wall": end - t0}), flush=True)
sys.exit(code)
"""


def phases(args, tmp: Path, model: Path, procs: int) -> dict:
    """bgeft's own seconds, measured inside the bgeft process (see the module docstring); minimum of the
    repeats for each phase."""
    base = [f"model.model_name_or_path={model}", f"training.max_steps={args.steps}",
            f"training.save_steps={args.steps}", f"launch.nproc_per_node={procs}", *args.override]
    runs = []
    for i in range(args.repeats):
        out = subprocess.run([sys.executable, "-c", PHASES, "train", args.recipe, *base,
                              f"training.output_dir={tmp / f'phases{procs}-{i}'}"], capture_output=True, text=True)
        line = [x for x in out.stdout.splitlines() if x.startswith("PHASES ")]
        if out.returncode != 0 or not line:
            raise SystemExit(f"bgeft train (timed) failed ({out.returncode}):\n{out.stderr[-3000:]}")
        runs.append(json.loads(line[-1][len("PHASES "):]))
        r = runs[-1]
        print(f"  {procs} process(es), bgeft's own time, run {i + 1}: before the training starts {r['before']:.3f} s, "
              f"training held at the gate {r['gate']:.3f} s, after it ends {r['after']:.3f} s; "
              f"CPU of the bgeft process {r['cpu']:.3f} s", flush=True)
    best = {k: min(r[k] for r in runs) for k in ("before", "gate", "after", "cpu")}
    best["own"] = best["before"] + best["gate"] + best["after"]
    return {"procs": procs, **best}


def startup(args) -> None:
    for verb in (["--help"], ["ls"], ["validate", args.recipe]):
        runs = [timed([BGEFT, *verb]) for _ in range(5)]
        print(f"`bgeft {verb[0]}` start-up: min {min(runs) * 1000:.0f} ms")
    print(f"(bare `python -c pass`: min {min(timed([sys.executable, '-c', 'pass']) for _ in range(5)) * 1000:.0f} ms)")


def gpu_shape_model(dest: Path, demo: Path) -> Path:
    """A random-init model with BGE-M3's exact shape; the demo model's tokenizer (its ids fit the vocab)."""
    from transformers import AutoModel, XLMRobertaConfig

    config = XLMRobertaConfig(vocab_size=250002, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                              intermediate_size=4096, max_position_embeddings=8194, type_vocab_size=1,
                              pad_token_id=1, bos_token_id=0, eos_token_id=2)
    AutoModel.from_config(config).save_pretrained(dest)
    for f in demo.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "vocab")):
            shutil.copy(f, dest / f.name)
    return dest


def long_data(dest: Path, tokens: int, rows: int = 64) -> Path:
    words = "retrieval embedding dense sparse multi vector passage query document ranking".split()
    text = lambda n, s: " ".join(words[(i * 7 + s) % len(words)] for i in range(n))  # noqa: E731
    with open(dest, "w", encoding="utf-8") as f:
        for r in range(rows):
            f.write(json.dumps({"query": text(32, r), "pos": [text(tokens, r + 1)],
                                "neg": [text(tokens, r + k) for k in range(2, 5)]}) + "\n")
    return dest


def gpu_shape(args, tmp: Path, demo: Path) -> None:
    model = gpu_shape_model(tmp / "m3-shape", demo)
    for seq in (int(s) for s in args.seq_len.split(",")):
        data = long_data(tmp / f"long{seq}.jsonl", seq)
        for who in ("raw", "bgeft"):
            over = [f"model.model_name_or_path={model}", f"data.train_data=[{data}]", f"data.passage_max_len={seq}",
                    "data.train_group_size=4", "training.per_device_train_batch_size=1",
                    "training.gradient_checkpointing=true",
                    f"training.max_steps={args.steps}", f"training.save_steps={args.steps * 10}",
                    f"training.output_dir={tmp / f'{who}{seq}'}", "launch.nproc_per_node=1"]
            poll = subprocess.Popen(["nvidia-smi", "--query-gpu=name,memory.used", "--format=csv,noheader,nounits",
                                     "-lms", "200"], stdout=subprocess.PIPE, text=True)
            if who == "raw":
                raw, env = raw_command(args.recipe, over)
                wall = timed(raw, env)
            else:
                wall = timed([BGEFT, "train", args.recipe, *over])
            poll.terminate()
            samples = [line.rsplit(",", 1) for line in poll.communicate()[0].splitlines() if "," in line]
            peak = max((int(m) for _, m in samples), default=0)
            tokens = args.steps * 1 * 4 * seq
            print(f"seq {seq} {who}: {wall:.1f} s wall, ~{tokens / wall:.0f} passage tokens/s (start-up included), "
                  f"peak GPU memory {peak} MiB on {samples[0][0] if samples else '?'}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default=str(REPO / "recipes" / "demo_cpu_m3.yaml"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--procs", default="1,2", help="process counts to compare, e.g. 1,2")
    ap.add_argument("--override", action="append", default=[], help="extra recipe override for both commands")
    ap.add_argument("--startup", action="store_true", help="also time `bgeft --help`, `ls`, `validate`")
    ap.add_argument("--no-phases", dest="phases", action="store_false",
                    help="skip the direct measurement of bgeft's own time inside its process")
    ap.add_argument("--no-compare", dest="compare", action="store_false",
                    help="skip the end-to-end raw vs bgeft runs")
    ap.add_argument("--gpu-shape", action="store_true", help="BGE-M3-shaped random model on a GPU (see docstring)")
    ap.add_argument("--seq-len", default="512,8192")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bgeft-bench-"))
    try:
        model = tmp / "minilm-m3"
        subprocess.run([BGEFT, "demo-model", str(model)], check=True, capture_output=True)
        print(f"load average before: {uptime()}", flush=True)
        if args.gpu_shape:
            gpu_shape(args, tmp, model)
            return 0
        procs = [int(p) for p in args.procs.split(",")]
        results = [compare(args, tmp, model, p) for p in procs] if args.compare else []
        own = [phases(args, tmp, model, p) for p in procs] if args.phases else []
        print(f"load average after: {uptime()}")
        print(f"\nrecipe {Path(args.recipe).name}, {args.steps} steps, minimum of {args.repeats} alternating runs")
        for r in results:
            launcher = "python -m" if r["procs"] == 1 else f"torchrun --nproc_per_node {r['procs']}"
            print(f"{launcher:28s} wall: raw {r['raw']:.2f} s, bgeft {r['bgeft']:.2f} s, ratio {r['ratio']:.3f}, "
                  f"fixed {r['fixed']:+.2f} s | CPU: raw {r['raw_cpu']:.2f} s, bgeft {r['bgeft_cpu']:.2f} s, "
                  f"fixed {r['bgeft_cpu'] - r['raw_cpu']:+.2f} s")
        for r in own:
            launcher = "python -m" if r["procs"] == 1 else f"torchrun --nproc_per_node {r['procs']}"
            print(f"{launcher:28s} bgeft's own wall {r['own']:.3f} s (before {r['before']:.3f} + gate {r['gate']:.3f} "
                  f"+ after {r['after']:.3f}), CPU of the bgeft process {r['cpu']:.3f} s (minimum of each)")
        if args.startup:
            startup(args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
