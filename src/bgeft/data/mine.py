"""``bgeft data mine``: hard negatives with a BGE model, faiss and positive-aware filtering.

Python API (used by the pipeline)::

    mine_negatives(in_path, out_path, *, model=None, encoder=None, corpus=None, range_=(10, 100),
                   negatives=15, margin=0.05, bm25=0, index="flat", nprobe=None, faiss_gpu="auto",
                   model_class="auto", pooling="auto", device=None, fp16=None, batch_size=None,
                   query_max_length=64, passage_max_length=512, query_instruction=None, fill=True,
                   seed=42, encoding=None) -> MineSummary

``model`` is a model directory, hub id or ``bgeft:demo-model`` (``encoder``: an already loaded
``bgeft.models.embedder.Encoder`` instead; it encodes each distinct text once, so positives that are in
the pool and texts repeated across rows cost nothing).
The candidate pool is ``corpus`` (a BEIR ``corpus.jsonl`` or ``{"text"}`` lines) or else every
``pos``/``neg`` passage of the input file. Each query (``prompt + query`` when the row has a prompt and
no ``query_instruction`` is given) is searched densely; ranks ``range_[0]``..``range_[1]`` are the
candidates (``bm25 > 0``: that many of the ``negatives`` come from the same ranks of a BM25 search).
A candidate is dropped when its text equals a positive or the query, or when its dense score is above
``p - margin * |p|`` where ``p`` is the lowest score among the row's positives (NV-Retriever's
TopK-PercPos; ``p * (1 - margin)`` for positive scores; ``margin=None`` turns it off). ``negatives``
survivors are sampled; short rows are topped up with random pool passages that pass the same filters
(``fill``). ``neg`` is replaced; stale ``pos_scores``/``neg_scores`` are removed (score again with
``bgeft data score``); other keys (``prompt``, ``type``) are kept.

A pool too big for one machine is encoded in parts (``shard=(I, N)``, ``shard_dir``: one job per node)
and mined from them (``from_shards``): ``bgeft.data.shards``. The row filters live in ``bgeft.data.negatives``.
"""
from __future__ import annotations

import argparse
import os
import random
import time
from typing import TYPE_CHECKING

from bgeft.console_progress import track
from bgeft.data.negatives import MineSummary, RowFilter, keep, random_top_up
from bgeft.data.records import read_corpus, read_rows, write_jsonl
from bgeft.data.rejects import Rejects
from bgeft.data.rejects import add_arguments as add_reject_arguments
from bgeft.errors import UserError
from bgeft.models.choices import INDEX_KINDS, MODEL_CLASSES, POOLINGS
from bgeft.models.devices import add_device_argument, device_spec
from bgeft.models.resolve import model_dir
from bgeft.safety import check_output

if TYPE_CHECKING:  # numpy, faiss and the encoder load when a run needs them (`bgeft --help` stays light)
    from bgeft.models.embedder import Encoder


def parse_range(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in text.split("-"))
    except ValueError:
        raise UserError(f"--range {text}: expected START-END ranks, e.g. 10-100") from None
    return lo, hi


def _check(range_, negatives: int, margin, bm25: int) -> None:
    lo, hi = range_
    if not 0 <= lo < hi:
        raise UserError(f"--range {lo}-{hi}: need 0 <= START < END, e.g. 10-100")
    if negatives < 1:
        raise UserError(f"--negatives {negatives}: must be at least 1")
    if margin is not None and not 0 <= margin < 1:
        raise UserError(f"--margin {margin}: must be in [0, 1), e.g. 0.05 (or --no-margin-filter)")
    if not 0 <= bm25 <= negatives:
        raise UserError(f"--bm25 {bm25}: must be between 0 and --negatives {negatives}")


def _unique(texts) -> list[str]:
    return list(dict.fromkeys(texts))


def mine_negatives(in_path, out_path, *, model=None, encoder: Encoder | None = None, corpus=None,
                   range_: tuple[int, int] = (10, 100), negatives: int = 15, margin: float | None = 0.05,
                   bm25: int = 0, index: str = "flat", nprobe: int | None = None, faiss_gpu: str = "auto",
                   model_class: str = "auto", pooling: str = "auto", device=None, fp16: bool | None = None,
                   batch_size: int | None = None, spill_mb: float | None = None,
                   query_max_length: int = 64, passage_max_length: int = 512, query_instruction: str | None = None,
                   fill: bool = True, seed: int = 42, encoding: str | None = None,
                   rejects: Rejects | None = None, shard: tuple[int, int] | None = None, shard_dir=None,
                   from_shards=None) -> MineSummary:
    """Mine hard negatives for every row of ``in_path`` and write ``out_path`` atomically. ``rejects``
    (``--skip-invalid``) leaves bad input/corpus rows out instead of stopping. ``shard=(I, N)``: only
    encode part I of N of the pool into ``shard_dir`` (``out_path`` unused; the summary has ``shard_lines``);
    ``from_shards``: take the pool's vectors from such a directory (bgeft.data.shards)."""
    from bgeft.data import shards as pool_shards
    from bgeft.models.embedder import Encoder
    from bgeft.models.index import BM25Index, build_index, search

    _check(range_, negatives, margin, bm25)
    if batch_size is not None and batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: must be at least 1")
    inputs = [p for p in (in_path, corpus, model) if isinstance(p, (str, os.PathLike))]
    if shard is not None:
        pool_shards.check_shard_dir(shard, shard_dir, inputs)
    else:
        check_output(out_path, inputs + (pool_shards.shard_paths(from_shards) if from_shards is not None else []))
    if from_shards is not None:
        pool_shards.shard_files(from_shards)
    if index not in INDEX_KINDS:
        raise UserError(f"--index {index}: choose one of {', '.join(INDEX_KINDS)}")
    if encoder is None:
        if model is None:
            raise UserError("mining needs --model PATH (the embedder whose negatives you want)")
        model = model_dir(model)
    rows = [row for _, row in read_rows(in_path, encoding, rejects)]
    if corpus is not None:
        pool = _unique(text for _, text in read_corpus(corpus, encoding, rejects))
    else:
        pool = _unique(t for row in rows for t in row["pos"] + row.get("neg", []))
    lo, hi = range_
    if lo >= len(pool) and shard is None:
        raise UserError(f"--range {lo}-{hi}: the pool has only {len(pool)} passages; "
                        f"lower START (e.g. --range 0-{len(pool)}) or give a bigger --corpus")
    summary = MineSummary(out=str(out_path), rows=len(rows), pool=len(pool))
    own = encoder is None
    if own:
        encoder = Encoder(model, model_class=model_class, pooling=pooling, device=device, fp16=fp16,
                          batch_size=batch_size, query_max_length=query_max_length,
                          passage_max_length=passage_max_length, query_instruction=query_instruction,
                          spill_mb=spill_mb)
    shard_rows = pool_shards.load_shards(from_shards, encoder, pool) if from_shards is not None else None
    encoder.load()  # after the shards are checked: a mismatch is reported before the weights load
    if shard is not None:
        summary.shard_lines = pool_shards.write_shard(encoder, pool, shard, shard_dir)
        summary.rejects = rejects.finish(len(rows)) if rejects is not None else None
        if own:
            encoder.close()
        return summary

    t0 = time.perf_counter()
    positives = _unique(t for row in rows for t in row["pos"])
    pos_index = {text: i for i, text in enumerate(positives)}
    if shard_rows is None:
        pvecs = encoder.dense(pool, "passage")
        posvecs = encoder.dense(positives, "passage")  # those in the pool come from the encoder's cache
    else:  # the pool is never encoded here: its rows are the shards' (positives in it too)
        pvecs = shard_rows
        posvecs = pool_shards.positive_vectors(pvecs, pool, positives, encoder)
    use_prompt = encoder.query_instruction is None
    qtexts = [(row.get("prompt") or "") + row["query"] if use_prompt else row["query"] for row in rows]
    qvecs = encoder.dense(qtexts, "query")
    summary.seconds_encode = time.perf_counter() - t0

    t0, cpu0 = time.perf_counter(), time.process_time()
    faiss_index = build_index(pvecs, index, faiss_gpu, nprobe)
    dense_scores, dense_ids = search(faiss_index, qvecs, hi, desc="dense search")
    bm25_ids = BM25Index(pool).search(qtexts, hi) if bm25 else None
    summary.seconds_search = time.perf_counter() - t0
    summary.cpu_seconds_search = time.process_time() - cpu0

    t0 = time.perf_counter()
    rng = random.Random(seed)
    out_rows = []
    for r, row in enumerate(track(rows, "select negatives", "rows", min_total=1000)):
        pos_scores = [float(posvecs[pos_index[t]] @ qvecs[r]) for t in row["pos"]]
        flt = RowFilter(row, qvecs[r], pos_scores, margin, pvecs)
        dense = keep(flt, pool, [(int(i), float(s)) for s, i in zip(dense_scores[r][lo:hi], dense_ids[r][lo:hi])
                                  if i >= 0], summary)
        sparse = keep(flt, pool, [(i, None) for i in bm25_ids[r][lo:hi]], summary) if bm25_ids is not None else []
        chosen = rng.sample(sparse, min(bm25, len(sparse)))
        summary.from_bm25 += len(chosen)
        rest = [i for i in dense if i not in chosen]
        chosen += rng.sample(rest, min(negatives - len(chosen), len(rest)))
        if len(chosen) < negatives:  # dense ran short: take the other BM25 candidates
            more = [i for i in sparse if i not in chosen]
            taken = rng.sample(more, min(negatives - len(chosen), len(more)))
            chosen += taken
            summary.from_bm25 += len(taken)
        if fill and len(chosen) < negatives:
            taken = random_top_up(rng, pool, flt, set(chosen) | set(dense_ids[r].tolist()), negatives - len(chosen))
            chosen += taken
            summary.from_random += len(taken)
        summary.negatives += len(chosen)
        summary.short_rows += len(chosen) < negatives
        summary.empty_rows += not chosen
        new = {k: v for k, v in row.items() if k not in ("pos_scores", "neg_scores")}
        summary.stale_scores += len(new) != len(row)
        new["neg"] = [pool[i] for i in chosen]
        out_rows.append(new)
    summary.seconds_select = time.perf_counter() - t0
    if rejects is not None:
        summary.rejects = rejects.finish(len(out_rows))
    if own:
        encoder.close()
    write_jsonl(out_path, out_rows)
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN.jsonl", help="training rows (query, pos, optional neg)")
    parser.add_argument("-o", "--output", default=None, metavar="OUT.jsonl",
                        help="the mined rows (required, except with --shard, which only encodes part of the pool)")
    parser.add_argument("--model", required=True, metavar="PATH",
                        help="embedder: a directory (BGE-M3, BGE, a fine-tune), a hub id, or bgeft:demo-model")
    parser.add_argument("--corpus", default=None, metavar="CORPUS.jsonl",
                        help="candidate pool (BEIR corpus or {\"text\"} lines); default: the file's own passages")
    parser.add_argument("--range", default="10-100", metavar="START-END",
                        help="search ranks to draw negatives from (default 10-100)")
    parser.add_argument("--negatives", type=int, default=15, help="negatives per row (default 15)")
    parser.add_argument("--margin", type=float, default=0.05,
                        help="drop candidates scoring above lowest_pos_score*(1-margin) (default 0.05)")
    parser.add_argument("--no-margin-filter", action="store_true",
                        help="keep candidates however close to the positives")
    parser.add_argument("--bm25", type=int, default=0, metavar="N",
                        help="take N of the negatives from BM25 (bm25s + jieba)")
    parser.add_argument("--index", choices=INDEX_KINDS, default="flat",
                        help="faiss index: exact flat (default), ivf (nlist ~ 4*sqrt(pool)), hnsw")
    parser.add_argument("--nprobe", type=int, default=None, help="IVF lists searched per query (default 32)")
    parser.add_argument("--faiss-gpu", choices=("auto", "yes", "no"), default="auto",
                        help="search on GPUs (default: when available)")
    parser.add_argument("--model-class", choices=MODEL_CLASSES, default="auto",
                        help="m3: BGEM3FlagModel, base: FlagModel (default: m3 when colbert/sparse heads exist)")
    parser.add_argument("--pooling", choices=POOLINGS, default="auto",
                        help="FlagModel pooling (default: from 1_Pooling, else cls)")
    parser.add_argument("--query-instruction", default=None, help="instruction prefixed to every query")
    add_device_argument(parser, legacy=True)
    parser.add_argument("--fp32", action="store_true", help="encode in fp32 on GPUs/NPUs too (the CPU always is)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="texts per batch (default: 32 on the CPU, from free memory on a GPU)")
    parser.add_argument("--spill-mb", type=float, default=None, metavar="MB",
                        help="dense vectors above MB megabytes go to a float16 memory-mapped temp file (default 256)")
    parser.add_argument("--query-max-length", type=int, default=64)
    parser.add_argument("--passage-max-length", type=int, default=512)
    parser.add_argument("--no-fill", action="store_true", help="do not top up short rows with random pool passages")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--encoding", default=None, help="force the input encoding (default: detect)")
    group = parser.add_argument_group("a pool too big for one machine (one job per node, shared storage)")
    group.add_argument("--shard", default=None, metavar="I/N",
                       help="only encode part I of N (0-based) of the pool into --shard-dir; no -o, nothing mined")
    group.add_argument("--shard-dir", default=None, metavar="DIR",
                       help="where --shard writes pool-I-of-N.npy (float16) and pool-I-of-N.json")
    group.add_argument("--from-shards", default=None, metavar="DIR",
                       help="mine with the pool vectors the N --shard runs wrote to DIR (checked, never re-encoded)")
    add_reject_arguments(parser)


def run(args) -> int:
    from bgeft.data.shards import shard_mode

    shard = shard_mode(args)
    rejects = Rejects.from_args(args, args.output)
    summary = mine_negatives(
        args.input, args.output, model=args.model, corpus=args.corpus, range_=parse_range(args.range),
        negatives=args.negatives, margin=None if args.no_margin_filter else args.margin, bm25=args.bm25,
        index=args.index, nprobe=args.nprobe, faiss_gpu=args.faiss_gpu, model_class=args.model_class,
        pooling=args.pooling, device=device_spec(args), fp16=False if args.fp32 else None, batch_size=args.batch_size,
        spill_mb=args.spill_mb,
        query_max_length=args.query_max_length, passage_max_length=args.passage_max_length,
        query_instruction=args.query_instruction, fill=not args.no_fill, seed=args.seed, encoding=args.encoding,
        rejects=rejects, shard=shard, shard_dir=args.shard_dir, from_shards=args.from_shards)
    for line in summary.lines():
        print(line)
    return 0
