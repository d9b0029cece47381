"""Peak RSS of ``bgeft data mine`` as the corpus grows: is memory flat in the corpus size?

    python benchmarks/encode_rss.py [--scales 1,10] [--passage-max-length 64] [--spill-mb 256] [--model DIR]

The corpus is encode_vs_st.py's (1,000 queries, 1,146 passages at scale 1); scale S repeats the pool S
times, each copy perturbed ("第k版：" prefixed), so every passage is a distinct text the encoder must
encode; the 1,000 queries stay. Each scale runs ``bgeft data mine --range 10-100 --negatives 7`` in a
fresh process and prints its peak RSS (``os.wait4``), wall and CPU seconds, the size of the dense
vectors (pool x dim x 4 bytes) and the search phase's wall (and CPU) seconds from mine's ``time:`` line.
``--passage-max-length`` bounds the encoding work (the RSS question is about what grows with the number
of texts, not with their length); ``--spill-mb`` sets the size above which the Encoder writes the vectors
to a float16 memmap (``data mine --spill-mb``; default 256), so the spill path can be measured at a corpus
this machine can encode.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from encode_vs_st import build, run_measured


def scaled(work: Path, scale: int) -> Path:
    """A copy of ``work`` whose corpus is ``scale`` perturbed copies of the pool."""
    out = work.parent / f"{work.name}-x{scale}"
    out.mkdir(parents=True, exist_ok=True)
    pool = [json.loads(x)["text"] for x in (work / "corpus.jsonl").read_text("utf-8").splitlines()]
    texts = [t if k == 0 else f"第{k}版：{t}" for k in range(scale) for t in pool]
    (out / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d{i}", "text": t}, ensure_ascii=False) + "\n"
                                              for i, t in enumerate(texts)), "utf-8")
    (out / "train.jsonl").write_text((work / "train.jsonl").read_text("utf-8"), "utf-8")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", default="1,10")
    ap.add_argument("--passage-max-length", type=int, default=64)
    ap.add_argument("--spill-mb", type=float, default=None, help="data mine --spill-mb for the runs (default: 256)")
    ap.add_argument("--model", default=None, help="embedder directory (default: the demo MiniLM)")
    ap.add_argument("--timeout", type=float, default=2400)
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bgeft-rss-"))
    model = args.model
    if model is None:
        from bgeft.models.demo import build_demo_model
        model = str(build_demo_model(root / "demo-model"))
    dim = json.loads((Path(model) / "config.json").read_text("utf-8"))["hidden_size"]
    base = build(root / "x1", 1)["work"]
    bgeft = [sys.executable, "-m", "bgeft.cli.main"]
    print(f"model {model} (dim {dim}), passage max length {args.passage_max_length}, spill above "
          f"{256 if args.spill_mb is None else args.spill_mb} MB; load {os.getloadavg()[0]:.1f}")
    print(f"{'scale':>5} {'pool':>7} {'vectors MB':>10} {'wall s':>7} {'CPU s':>7} {'peak RSS MB':>11} "
          f"{'search s':>8} {'search CPU s':>12}")
    for scale in (int(s) for s in args.scales.split(",")):
        work = scaled(base, scale)
        n = sum(1 for _ in (work / "corpus.jsonl").open(encoding="utf-8"))
        t = time.perf_counter()
        r = run_measured([*bgeft, "data", "mine", str(work / "train.jsonl"), "-o", str(work / "mined.jsonl"),
                          "--model", model, "--corpus", str(work / "corpus.jsonl"), "--range", "10-100",
                          "--negatives", "7", "--device", "cpu", "--query-max-length", "64",
                          "--passage-max-length", str(args.passage_max_length),
                          *([] if args.spill_mb is None else ["--spill-mb", str(args.spill_mb)])], args.timeout)
        done = "" if r["finished"] else f"  (stopped after {time.perf_counter() - t:.0f} s)"
        search = re.search(r"search ([\d.]+)s(?: \(CPU ([\d.]+)s\))?", r["out"])
        wall_s, cpu_s = (search.group(1), search.group(2) or "-") if search else ("-", "-")
        print(f"{scale:>5} {n:>7} {n * dim * 4 / 2**20:>10.1f} {r['wall']:>7.1f} {r['cpu']:>7.1f} "
              f"{r['rss_mb']:>11.0f} {wall_s:>8} {cpu_s:>12}{done}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
