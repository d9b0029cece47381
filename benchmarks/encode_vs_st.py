"""bgeft vs sentence-transformers on the same model, texts and device: mining, dense evaluation, raw encode.

    python benchmarks/encode_vs_st.py [--sizes 0.25,1] [--rows mining,eval,encode] [--repeats 1]
                                      [--timeout 2400] [--device cpu] [--model DIR]

Rows (each side a fresh subprocess: imports, model load and work included; wall, CPU seconds and peak
RSS from ``os.wait4`` of that process; the 1-minute load average before and after each one is printed,
since on a shared machine it moves the wall figures most). ``--timeout`` bounds every process: one that
runs past it is stopped and its row reads "did not finish" with the CPU seconds it had used, so the
script always ends (at most 2 x rows x sizes x repeats x timeout). ``--repeats N`` runs each row's two
sides N times, alternating which goes first, and the ratios compare each side's minimum wall, CPU
seconds and RSS over its N runs (a single pair on a shared machine moves by 5-10%).

* mining: ``bgeft data mine --range 10-100 --negatives 7`` vs ``mine_hard_negatives(range_min=10,
  range_max=100, num_negatives=7, sampling_strategy="random")`` (sentence-transformers' defaults
  otherwise: no margin), plus the share of mined negatives that contain the query's gold answer
  (false negatives) and the rows kept;
* dense eval: ``bgeft eval retriever --modes dense --no-cache`` vs ``InformationRetrievalEvaluator``;
* raw encode: ``Encoder.encode`` vs ``SentenceTransformer.encode`` of the pool (the encode call's own
  seconds are printed too).

No real Chinese QA set ships with bgeft, so the corpus is built from ``example_data/book``: the book
cut into passages of at most 150 characters, repeated with small perturbations up to ~1,146 passages,
and the 41 book questions rephrased up to ~1,000 queries (each one's positive is the passage holding its
answer hint). ``--sizes`` scales both (1 = 1,000 queries / 1,146 passages). The model is the embedded
MiniLM (the demo model, mean pooling, as sentence-transformers loads it), CPU fp32 by default.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
Q_PREFIX = [
    "",
    "请问",
    "我想知道",
    "你知道",
    "有人问：",
    "想了解一下，",
    "麻烦告诉我",
    "打听一下，",
    "问一下：",
    "谁知道",
]
Q_SUFFIX = ["", "谢谢", "（急）", "？", "呢"]
P_PREFIX = ["", "据说，", "老人们讲，", "书里写道：", "有人记得，", "听说", "后来，", "那年，", "镇上传说，", "当时，"]


def passages_of(book: str, limit: int = 150) -> list[str]:
    sentences = [s for s in re.split(r"(?<=[。！？])", book.replace("\n", "")) if s.strip()]
    out, cur = [], ""
    for s in sentences:
        if cur and len(cur) + len(s) > limit:
            out.append(cur)
            cur = ""
        cur += s[:limit]
    return out + ([cur] if cur else [])


def build(work: Path, scale: float) -> dict:
    """train.jsonl, corpus.jsonl, a BEIR dir, and the gold answer of every query."""
    base = passages_of((REPO / "example_data/book/river_town.txt").read_text(encoding="utf-8"))
    n_pass, n_q = round(1146 * scale), round(1000 * scale)
    pool = []
    for k in range(len(P_PREFIX) * 3):
        for p in base:
            text = (P_PREFIX[k % len(P_PREFIX)] + ("" if k < len(P_PREFIX) else f"（{k}）") + p)[:150]
            pool.append(text)
        if len(pool) >= n_pass:
            break
    pool = list(dict.fromkeys(pool))[:n_pass]
    questions = [json.loads(x) for x in (REPO / "example_data/book/questions.jsonl").read_text(encoding="utf-8")
                 .splitlines()]
    gold = [(q["query"], q["answer_hint"], next((p for p in base if q["answer_hint"] in p), None)) for q in questions]
    gold = [g for g in gold if g[2] is not None]
    rows, answers = [], {}
    for k in range(len(Q_PREFIX) * len(Q_SUFFIX)):
        for q, hint, pos in gold:
            text = Q_PREFIX[k % len(Q_PREFIX)] + q + Q_SUFFIX[k // len(Q_PREFIX)]
            if text not in answers:
                rows.append({"query": text, "pos": [pos]})
                answers[text] = hint
        if len(rows) >= n_q:
            break
    rows = rows[:n_q]
    work.mkdir(parents=True, exist_ok=True)
    (work / "train.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    (work / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d{i}", "text": t}, ensure_ascii=False) + "\n"
                                               for i, t in enumerate(pool)), "utf-8")
    beir = work / "beir"
    (beir / "qrels").mkdir(parents=True, exist_ok=True)
    (beir / "corpus.jsonl").write_text((work / "corpus.jsonl").read_text("utf-8"), "utf-8")
    (beir / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": r["query"]}, ensure_ascii=False)
                                                + "\n" for i, r in enumerate(rows)), "utf-8")
    doc_id = {t: f"d{i}" for i, t in enumerate(pool)}
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"q{i}\t{doc_id[r['pos'][0]]}\t1\n" for i, r in enumerate(rows) if r["pos"][0] in doc_id), "utf-8")
    json.dump(answers, (work / "answers.json").open("w", encoding="utf-8"), ensure_ascii=False)
    return {"rows": len(rows), "pool": len(pool), "work": work}


ST_MINE = """
import json, sys
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.util import mine_hard_negatives
work, model, device = sys.argv[1:4]
rows = [json.loads(x) for x in open(work + "/train.jsonl", encoding="utf-8")]
pool = [json.loads(x)["text"] for x in open(work + "/corpus.jsonl", encoding="utf-8")]
ds = Dataset.from_dict({"query": [r["query"] for r in rows], "pos": [r["pos"][0] for r in rows]})
out = mine_hard_negatives(ds, SentenceTransformer(model, device=device), corpus=pool, range_min=10, range_max=100,
                          num_negatives=7, sampling_strategy="random", output_format="n-tuple", verbose=False)
with open(work + "/st_mined.jsonl", "w", encoding="utf-8") as fh:
    for r in out:
        fh.write(json.dumps({"query": r["query"], "neg": [r[k] for k in r if k.startswith("negative")]},
                            ensure_ascii=False) + "\\n")
"""
ST_EVAL = """
import json, sys
from sentence_transformers import SentenceTransformer
from sentence_transformers.evaluation import InformationRetrievalEvaluator
work, model, device = sys.argv[1:4]
corpus = {d["_id"]: d["text"] for d in map(json.loads, open(work + "/beir/corpus.jsonl", encoding="utf-8"))}
queries = {q["_id"]: q["text"] for q in map(json.loads, open(work + "/beir/queries.jsonl", encoding="utf-8"))}
rel = {}
for line in open(work + "/beir/qrels/test.tsv", encoding="utf-8").read().splitlines()[1:]:
    q, d, _ = line.split("\\t")
    rel.setdefault(q, set()).add(d)
ev = InformationRetrievalEvaluator(queries, corpus, rel, show_progress_bar=False)
res = ev(SentenceTransformer(model, device=device))
print("ndcg@10", [v for k, v in res.items() if k.endswith("ndcg@10")][0])
"""
ENCODE = """
import json, sys, time
work, model, device, side = sys.argv[1:5]
pool = [json.loads(x)["text"] for x in open(work + "/corpus.jsonl", encoding="utf-8")]
if side == "st":
    from sentence_transformers import SentenceTransformer
    m = SentenceTransformer(model, device=device)
    t = time.perf_counter(); m.encode(pool, normalize_embeddings=True)
else:
    from bgeft.models.embedder import Encoder
    m = Encoder(model, device=device, progress=False).load()
    t = time.perf_counter(); m.encode(pool)
print("encode_s", round(time.perf_counter() - t, 2))
"""


def run_measured(argv: list[str], timeout: float) -> dict:
    """Run ``argv``; wall seconds, CPU seconds (user + system) and peak RSS of that process (``os.wait4``).
    Past ``timeout`` seconds the process is killed and ``finished`` is False."""
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    out_f, err_f = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    def pump(src, dst):
        for line in src:
            dst.write(line)

    threads = [threading.Thread(target=pump, args=(proc.stdout, out_f)),
               threading.Thread(target=pump, args=(proc.stderr, err_f))]
    for t in threads:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    timer.cancel()
    finished = wall < timeout
    for t in threads:
        t.join()
    out_f.seek(0)
    err_f.seek(0)
    out, err = out_f.read(), err_f.read()
    if finished and os.waitstatus_to_exitcode(status):
        sys.exit(f"failed: {' '.join(map(str, argv))}\n{err[-3000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024, "out": out,
            "finished": finished, "load": (load0, os.getloadavg()[0])}


def least(runs: list[dict], key: str) -> float:
    return min(r[key] for r in runs)


def false_negatives(path: Path, answers: dict) -> tuple[float, int]:
    rows = [json.loads(x) for x in path.read_text("utf-8").splitlines()]
    negs = [(answers[r["query"]], n) for r in rows for n in r.get("neg", [])]
    return sum(hint in n for hint, n in negs) / max(1, len(negs)), sum(bool(r.get("neg")) for r in rows)


def ndcg_at_10(out: str) -> str:
    """nDCG@10 from ``bgeft eval retriever``'s summary table (``| mode | nDCG@10 |``) or the ST script's line."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("ndcg@10 "):
            return line.split()[1]
        cols = [c.strip() for c in line.strip().strip("|").split("|")]
        if "nDCG@10" in cols:
            for row in lines[i + 1:]:
                cells = [c.strip() for c in row.strip().strip("|").split("|")]
                if cells and cells[0] == "dense" and len(cells) == len(cols):
                    return cells[cols.index("nDCG@10")]
    return "?"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="0.25,1", help="corpus scales (1 = 1,000 queries / 1,146 passages)")
    ap.add_argument("--rows", default="mining,eval,encode", help="which rows (default all three)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="runs of each side per row, alternating which side goes first; ratios use the minima")
    ap.add_argument("--timeout", type=float, default=2400, help="seconds per process before it is stopped")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default=None, help="embedder directory (default: the demo MiniLM)")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bgeft-vs-st-"))
    if args.model:
        model = args.model
    else:
        from bgeft.models.demo import build_demo_model

        model = str(build_demo_model(root / "demo-model"))
    py, bgeft = sys.executable, [sys.executable, "-m", "bgeft.cli.main"]
    wanted = {"mining": "mining", "eval": "dense eval", "encode": "raw encode"}
    chosen = [wanted[r.strip()] for r in args.rows.split(",")]
    print(f"model {model}, device {args.device}; load: {os.getloadavg()[0]:.2f} (1-min), {os.cpu_count()} CPUs")
    print(f"{'size':<22} {'row':<11} {'side':<6} {'wall s':>7} {'CPU s':>7} {'RSS MB':>7} {'load':>9}  notes")
    for scale in (float(s) for s in args.sizes.split(",")):
        info = build(root / f"x{scale}", scale)
        work = str(info["work"])
        answers = json.loads((info["work"] / "answers.json").read_text("utf-8"))
        size = f"{info['rows']} q / {info['pool']} p"
        rows = [
            ("mining", "bgeft", bgeft + ["data", "mine", f"{work}/train.jsonl", "-o", f"{work}/bgeft_mined.jsonl",
                                         "--model", model, "--corpus", f"{work}/corpus.jsonl", "--range", "10-100",
                                         "--negatives", "7", "--device", args.device]),
            ("mining", "st", [py, "-c", ST_MINE, work, model, args.device]),
            ("dense eval", "bgeft", bgeft + ["eval", "retriever", "--model", model, "--data", f"{work}/beir",
                                             "--modes", "dense", "--no-cache", "--device", args.device,
                                             "--no-progress"]),
            ("dense eval", "st", [py, "-c", ST_EVAL, work, model, args.device]),
            ("raw encode", "bgeft", [py, "-c", ENCODE, work, model, args.device, "bgeft"]),
            ("raw encode", "st", [py, "-c", ENCODE, work, model, args.device, "st"]),
        ]
        results: dict[tuple[str, str], list[dict]] = {}
        order = []
        for row in chosen:
            pair = [r for r in rows if r[0] == row]
            order += [x for rep in range(max(1, args.repeats)) for x in (pair if rep % 2 == 0 else pair[::-1])]
        for row, side, cmd in order:
            r = run_measured(cmd, args.timeout)
            results.setdefault((row, side), []).append(r)
            note = ""
            load = f"{r['load'][0]:.1f}-{r['load'][1]:.1f}"
            if not r["finished"]:
                note = f"did not finish in {args.timeout:.0f} s (stopped; CPU s used so far)"
            elif row == "mining":
                path = Path(work) / ("bgeft_mined.jsonl" if side == "bgeft" else "st_mined.jsonl")
                share, kept = false_negatives(path, answers)
                note = f"false negatives {share:.2%}, rows kept {kept}"
            elif row == "dense eval":
                note = f"ndcg@10 {ndcg_at_10(r['out'])}"
            else:
                note = r["out"].strip().splitlines()[-1]
            print(f"{size:<22} {row:<11} {side:<6} {r['wall']:>7.1f} {r['cpu']:>7.1f} {r['rss_mb']:>7.0f} {load:>9}  "
                  f"{note}", flush=True)
        for row in chosen:
            b, s = results[(row, "bgeft")], results[(row, "st")]
            if not all(r["finished"] for r in b + s):
                print(f"{size:<22} {row:<11} ratio  (not established: a side did not finish)")
                continue
            print(f"{size:<22} {row:<11} ratio  {least(b, 'wall') / least(s, 'wall'):>7.2f} "
                  f"{least(b, 'cpu') / least(s, 'cpu'):>7.2f} {least(b, 'rss_mb') / least(s, 'rss_mb'):>7.2f}  "
                  f"(bgeft / sentence-transformers{f', minima of {len(b)} runs' if len(b) > 1 else ''}; "
                  f"<= 1.0 is the target)")
    print(f"load after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
