"""The pipeline demo end to end: wall time, CPU time and the before/after figures.

    python benchmarks/pipeline_demo.py [--work-dir DIR] [extra section.key=value overrides]

Runs ``bgeft pipeline run pipelines/demo_cpu.yaml`` in a fresh work dir (the embedded model, the
example book, 2 rounds), then prints the wall and CPU time, the load average while it ran, and
nDCG@10 / Recall@10 of the baseline and every round on dev and test (retriever modes and
retrieve-then-rerank) with the paired significance of each round against the baseline on test.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _p(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work-dir", default=None, help="default: a new temporary directory")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bgeft-pipeline-demo-"))
    cmd = [sys.executable, "-m", "bgeft.cli.main", "pipeline", "run", str(REPO / "pipelines" / "demo_cpu.yaml"),
           f"work_dir={work}", *args.overrides]
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        print(proc.stderr[-3000:], file=sys.stderr)
        return proc.returncode
    print(f"command: {' '.join(cmd[1:])}")
    print(f"wall {wall:.1f} s ({wall / 60:.1f} min); CPU user+sys {usage.ru_utime + usage.ru_stime:.1f} s; "
          f"{os.cpu_count()} cores; load average at start {load0:.1f}, at end {os.getloadavg()[0]:.1f}")
    stages = sorted(d for d in work.iterdir() if d.is_dir() and (d / "stage.json").is_file())
    for d in stages:
        m = json.loads((d / "stage.json").read_text())
        print(f"  {d.name:<22} {m['seconds']:7.1f} s")
    evals = [d for d in stages if "-eval-" in d.name]
    print("\nnDCG@10 / Recall@10 (dev | test)")
    for d in evals:
        s = json.loads((d / "summary.json").read_text())
        label = "baseline" if d.name.endswith("eval-base") else d.name.split("-")[-1].replace("r", "round ")
        cells = []
        for name, series in [
            *(("retriever " + k, v) for k, v in s["dev"]["retriever"].items()),
            *([("retrieve+rerank", s["dev"]["pipeline"]["reranked"])] if "pipeline" in s["dev"] else []),
        ]:
            test = (s["test"]["pipeline"]["reranked"] if name == "retrieve+rerank"
                    else s["test"]["retriever"][name.split()[1]])
            cells.append(f"{name}: {series['ndcg@10']:.3f}/{series['recall@10']:.3f} | "
                         f"{test['ndcg@10']:.3f}/{test['recall@10']:.3f}")
        print(f"  {label:<9} " + "\n            ".join(cells))
        for kind, rows in s["test"].get("compare", {}).items():
            for r in rows:
                if r["metric"] == "ndcg@10":
                    print(f"            test {kind} {r['mode']} ndcg@10 delta {r['delta']:+.3f} "
                          f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] p(t) {_p(r['p_ttest'])} "
                          f"p(rand) {_p(r['p_permutation'])} W/T/L {r['wins']}/{r['ties']}/{r['losses']}")
    best = json.loads(next(work.glob("*-report/best.json")).read_text())
    print(f"\nbest on dev ({best['select']}): {best['label']}; report: {next(work.glob('*-report/report.md'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
