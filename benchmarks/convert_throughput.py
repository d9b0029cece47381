"""Conversion throughput (MB/s of input) and peak RSS of ``bgeft data convert`` at 1x and 10x input size,
and the same for ``bgeft data validate`` (``check_training_data``) on training JSONL.

    python benchmarks/convert_throughput.py --size-mb 100 --scales 1 10 --formats jsonl csv json json-oneline msmarco

Each run converts a generated file in a fresh process; the parent polls that process's RSS with psutil
every 20 ms (peak kept), and the child's own ``ru_maxrss`` high-water mark is reported too. Bounded
memory shows as the same peak RSS at 1x and 10x.
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

import psutil

PASSAGES = [
    "渡口在镇子东头，摆渡人每天清晨五点半开出第一趟船，二十年来从没有误过一班。",
    "新桥长一百八十六米，宽九米，修了整整两年，去年十二月才正式通车。",
    "The watchmaker could tell which gear was failing just by listening to the ticking.",
    "连着十一天大雨，河里的水位猛涨，下游十七户人家的房子被冲垮了。",
    "She wrote a letter to her old teacher from the seaside, describing the lighthouse.",
    "镇上的人靠打鱼和种橘子过日子，秋天的时候整条街都是橘子的香味。",
]


def _row(i: int) -> dict:
    p = PASSAGES
    return {"query": f"第{i}个问题：渡口的第一班船几点开？ question {i}", "pos": [p[i % 6] + f" ({i})"],
            "neg": [p[(i + k) % 6] + f" [{i}-{k}]" for k in range(1, 8)]}


def generate(fmt: str, path: Path, size_mb: float) -> int:
    """Write about ``size_mb`` MB of ``fmt`` input; returns the byte size."""
    target = int(size_mb * 1e6)
    with open(path, "w", encoding="utf-8", newline="") as out:
        if fmt == "csv":
            out.write("query,pos,neg\n")
        if fmt.startswith("json") and fmt != "jsonl":
            out.write("[")
        i = 0
        while out.tell() < target:
            block = []
            for _ in range(1000):
                row = _row(i)
                if fmt == "jsonl":
                    block.append(json.dumps(row, ensure_ascii=False) + "\n")
                elif fmt == "json":
                    block.append(("" if i == 0 else ",\n") + json.dumps(row, ensure_ascii=False, indent=1))
                elif fmt == "json-oneline":  # a minified array: the whole file is one line
                    block.append(("" if i == 0 else ",") + json.dumps(row, ensure_ascii=False))
                elif fmt == "csv":
                    cells = [row["query"], json.dumps(row["pos"], ensure_ascii=False),
                             json.dumps(row["neg"], ensure_ascii=False)]
                    block.append(",".join('"' + c.replace('"', '""') + '"' for c in cells) + "\r\n")
                elif fmt == "msmarco":
                    docs = [(d, 1) for d in row["pos"]] + [(d, 0) for d in row["neg"]]
                    block.append(
                        "".join(f"{i}\t{row['query']}\t{i}-{k}\t{d}\t{rel}\n" for k, (d, rel) in enumerate(docs))
                    )
                i += 1
            out.write("".join(block))
        if fmt.startswith("json") and fmt != "jsonl":
            out.write("]")
    return path.stat().st_size


def measure(src: Path, dest: Path | None) -> dict:
    cmd = [sys.executable, __file__, "--child", str(src), str(dest) if dest else "-"]
    start = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, proc.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"conversion failed ({proc.returncode})")
    child = json.loads(out.strip().splitlines()[-1])
    return {"seconds": seconds, "convert_seconds": child["seconds"], "psutil_peak_mb": peak / 2**20,
            "maxrss_mb": child["maxrss_kb"] / 1024, "rows": child["rows"]}


def child(src: str, dest: str) -> None:
    import resource

    from bgeft.data.convert import convert

    start = time.perf_counter()
    if dest == "-":
        from bgeft.data.validate import check_training_data

        rows = check_training_data([src]).rows_checked
    else:
        rows = convert([src], dest, log=lambda _: None).rows
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "rows": rows,
                      "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=100, help="size of the 1x input (default 100 MB)")
    parser.add_argument("--scales", type=float, nargs="+", default=[1, 10])
    parser.add_argument("--formats", nargs="+", default=["jsonl", "csv", "json", "json-oneline", "msmarco"])
    parser.add_argument("--no-validate", dest="validate", action="store_false",
                        help="skip timing bgeft data validate on the JSONL input")
    parser.add_argument("--workdir", help="where to write the generated files (default: a temp dir)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bgeft-convert-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    ext = {"jsonl": "jsonl", "json": "json", "json-oneline": "json", "csv": "csv", "msmarco": "tsv"}
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), {psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
    )
    print(f"{'verb':8} {'format':12} {'scale':>5} {'input MB':>9} {'rows':>9} {'seconds':>8} {'MB/s':>7} "
          f"{'peak RSS MB (psutil)':>21} {'ru_maxrss MB':>13}")
    for fmt in args.formats:
        for scale in args.scales:
            src = work / f"input-{fmt}-{scale:g}x.{ext[fmt]}"
            size = generate(fmt, src, args.size_mb * scale)
            runs = [("convert", work / f"out-{fmt}-{scale:g}x.jsonl")]
            if fmt == "jsonl" and args.validate:
                runs.append(("validate", None))
            for verb, dest in runs:
                result = measure(src, dest)
                print(f"{verb:8} {fmt:12} {scale:>4g}x {size / 1e6:9.0f} {result['rows']:9d} "
                      f"{result['convert_seconds']:8.1f} {size / 1e6 / result['convert_seconds']:7.1f} "
                      f"{result['psutil_peak_mb']:21.0f} {result['maxrss_mb']:13.0f}", flush=True)
                if dest:
                    dest.unlink()
            src.unlink()


if __name__ == "__main__":
    main()
