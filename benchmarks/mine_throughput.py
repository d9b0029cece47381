"""Mining throughput and false-negative rate: ``bgeft data mine`` vs the logic of FlagEmbedding's
``scripts/hn_mine.py`` on the same synthetic corpus and the same loaded model (the demo model).

    python benchmarks/mine_throughput.py [--queries 300] [--repeat 3] [--model DIR]

The corpus is generated: every query asks about one "fact"; the positive states it and the row's
original ``neg`` holds paraphrases of the same fact (known false negatives) plus other facts' passages,
so the pool contains passages that answer the query but are not labelled positive. Printed per method:
queries/s and CPU seconds per 1000 queries (encoding + search + selection, model load excluded, median
of ``--repeat`` interleaved runs; CPU time is steadier on a shared machine), the share
of mined negatives that are paraphrases of the row's own fact (ground-truth false negatives), and how
many rows kept stale ``pos_scores``.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SUBJECTS = "farmer teacher sailor baker doctor painter miner weaver potter hunter soldier merchant".split()
ACTIONS = [("repaired", "repair"), ("painted", "paint"), ("sold", "sell"), ("carried", "carry"),
           ("built", "build"), ("found", "find"), ("cleaned", "clean"), ("moved", "move")]
OBJECTS = "bridge boat clock wagon organ roof fence lantern mill gate tower barn".split()
PLACES = "harbour valley market village forest island castle river quarry station canyon meadow".split()
TEMPLATES = [
    "The {s} {a} the old {o} near the {p} in {y}.",
    "In {y}, the old {o} near the {p} was {a} by the {s}.",
    "Near the {p}, a {s} {a} the old {o} during {y}.",
    "It was the {s} who {a} the {o} by the {p} back in {y}.",
    "Records from {y} say the {o} close to the {p} was {a} by a local {s}.",
    "The old {o} beside the {p} got {a} in {y}; the work was done by the {s}.",
    "A {s} from the {p} {a} the {o} there in {y}.",
    "{y}: the {o} at the {p} is {a} by the {s}.",
    "Everyone at the {p} remembers that the {s} {a} the old {o} in {y}.",
    "The {o} that stands near the {p} was {a} in {y}, and the {s} did it.",
    "According to the {p} chronicle, the {s} {a} its old {o} in the year {y}.",
    "In the year {y} the {s} {a} the {o} which stood by the {p}.",
    "Villagers near the {p} say a {s} {a} the old {o} in {y}.",
    "The {s} is known for having {a} the {o} near the {p} in {y}.",
    "Back in {y} the old {o} of the {p} was {a}; a {s} did the job.",
    "Who {a} the {o} near the {p}? The {s}, in {y}.",
    "The {o} near the {p} was {a} in {y} by a hard-working {s}.",
    "It was in {y} that a {s} {a} the {o} beside the {p}.",
]


def make_rows(n: int, seed: int = 0) -> list[dict]:
    """Training rows; ``fact`` numbers the fact that the row's positive and original negatives state."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        s, (a, verb), o, p = rng.choice(SUBJECTS), rng.choice(ACTIONS), rng.choice(OBJECTS), rng.choice(PLACES)
        y = rng.randrange(1800, 2000)
        if (s, a, o, p, y) in seen:
            continue
        seen.add((s, a, o, p, y))
        texts = [t.format(s=s, a=a, o=o, p=p, y=y) for t in TEMPLATES]
        rows.append({"query": f"Who did {verb} the {o} near the {p} in {y}?", "pos": [texts[0]], "neg": texts[1:],
                     "pos_scores": [1.0], "neg_scores": [0.0] * (len(texts) - 1), "fact": len(rows)})
    return rows


# ---------------------------------------------------------------------------------------------------
# BASELINE: a minimal re-statement of the algorithm of FlagEmbedding's scripts/hn_mine.py
# (find_knn_neg): pool = set of the file's pos+neg texts, encode pool with model.encode and queries
# with encode_queries, exact inner-product faiss search for the top END ranks, keep ranks START..END
# that are neither a positive nor the query, sample NEGATIVES of them, top short rows up with random
# pool passages that are not positives; the input row is otherwise written back unchanged.
# ---------------------------------------------------------------------------------------------------
def baseline_mine(model, rows: list[dict], sample_range=(10, 100), negative_number=15, seed=0) -> list[dict]:
    import faiss

    random.seed(seed)
    rows = [dict(r) for r in rows]
    corpus = list({t for r in rows for t in r["pos"] + r.get("neg", [])})
    p_vecs = model.encode(corpus)
    q_vecs = model.encode_queries([r["query"] for r in rows])
    index = faiss.IndexFlatIP(p_vecs.shape[1])
    index.add(np.asarray(p_vecs, dtype=np.float32))
    all_ids = []
    for start in range(0, len(q_vecs), 64):
        _, ids = index.search(np.asarray(q_vecs[start:start + 64], dtype=np.float32), sample_range[1])
        all_ids.extend(ids.tolist())
    for r, ids in zip(rows, all_ids):
        kept = [i for i in ids[sample_range[0]:sample_range[1]]
                if i != -1 and corpus[i] not in r["pos"] and corpus[i] != r["query"]]
        if len(kept) > negative_number:
            kept = random.sample(kept, negative_number)
        r["neg"] = [corpus[i] for i in kept]
        if len(r["neg"]) < negative_number:
            sampled = random.sample(corpus, negative_number - len(r["neg"]) + len(r["pos"]))
            extra = [t for t in sampled if t not in r["pos"]]
            r["neg"].extend(extra[: negative_number - len(r["neg"])])
    return rows


def false_negative_share(rows: list[dict], fact_of: dict[str, int]) -> float:
    negs = [(r["fact"], n) for r in rows for n in r["neg"]]
    return sum(fact_of.get(n) == fact for fact, n in negs) / max(1, len(negs))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--model", default=None, help="embedder directory (default: build the demo model)")
    ap.add_argument("--batch-size", type=int, default=None)
    args = ap.parse_args(argv)

    from bgeft.data.mine import mine_negatives
    from bgeft.models.demo import build_demo_model
    from bgeft.models.embedder import Encoder

    work = Path(tempfile.mkdtemp(prefix="bgeft-mine-bench-"))
    model_dir = args.model or build_demo_model(work / "demo-model")
    rows = make_rows(args.queries)
    fact_of = {t: r["fact"] for r in rows for t in r["pos"] + r["neg"]}
    src = work / "train.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    enc = Encoder(model_dir, device="cpu", batch_size=args.batch_size, query_max_length=64,
                  passage_max_length=128, progress=False).load()
    pool = len({t for r in rows for t in r["pos"] + r["neg"]})
    print(f"model {model_dir} ({enc.class_name}, {enc.pooling} pooling), "
          f"{len(rows)} queries, pool {pool} passages, range 10-100, 15 negatives, CPU")

    base, ours_name = "hn_mine.py logic (baseline)", "bgeft data mine"
    wall = {base: [], ours_name: []}
    cpu = {base: [], ours_name: []}
    outputs = {}
    for _ in range(args.repeat):  # interleaved, so load from other processes hits both alike
        w0, c0 = time.perf_counter(), time.process_time()
        outputs[base] = baseline_mine(enc.backend.fe, rows)
        wall[base].append(time.perf_counter() - w0)
        cpu[base].append(time.process_time() - c0)
        enc.clear_cache()  # every repeat encodes for real
        w0, c0 = time.perf_counter(), time.process_time()
        summary = mine_negatives(src, work / "ours.jsonl", encoder=enc, range_=(10, 100), negatives=15)
        wall[ours_name].append(time.perf_counter() - w0)
        cpu[ours_name].append(time.process_time() - c0)
        lines = (work / "ours.jsonl").read_text(encoding="utf-8").splitlines()
        outputs[ours_name] = [json.loads(line) for line in lines]

    base_wall, base_cpu = statistics.median(wall[base]), statistics.median(cpu[base])
    print(f"{'method':<30} {'queries/s':>10} {'ratio':>6} {'CPU s/1k q':>11} {'ratio':>6} "
          f"{'false-neg share':>16} {'stale scores':>13}")
    for name in (base, ours_name):
        w, c, out = statistics.median(wall[name]), statistics.median(cpu[name]), outputs[name]
        stale = sum("pos_scores" in r for r in out)
        print(f"{name:<30} {len(rows) / w:>10.1f} {base_wall / w:>5.2f}x {1000 * c / len(rows):>11.1f} "
              f"{base_cpu / c:>5.2f}x {false_negative_share(out, fact_of):>15.1%} {stale:>13}")
    print(f"bgeft filters: {summary.removed_positive} equal to a positive, {summary.removed_query} equal to the "
          f"query, {summary.removed_margin} by the margin filter; {summary.from_random} random top-ups")
    print(f"bgeft phases: encode {summary.seconds_encode:.1f}s, search {summary.seconds_search:.1f}s, "
          f"select {summary.seconds_select:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
