"""What ``bgeft data mine`` keeps of a row's candidates, and its summary: the positive/query/margin
filters of one row (:class:`RowFilter`), the random top-up of short rows, and :class:`MineSummary`."""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy loads when a run needs it (`bgeft --help` stays light)
    import numpy as np


@dataclass
class MineSummary:
    out: str
    rows: int = 0
    pool: int = 0
    candidates: int = 0
    removed_positive: int = 0
    removed_query: int = 0
    removed_margin: int = 0
    negatives: int = 0
    from_bm25: int = 0
    from_random: int = 0
    short_rows: int = 0
    empty_rows: int = 0
    stale_scores: int = 0
    seconds_encode: float = 0.0
    seconds_search: float = 0.0
    cpu_seconds_search: float = 0.0  # the process's CPU time (all threads) in the search phase
    seconds_select: float = 0.0
    rejects: str | None = None  # the --skip-invalid summary line
    shard_lines: list[str] | None = None  # --shard: what was encoded (no negatives mined)

    def lines(self) -> list[str]:
        out = [self.rejects] if self.rejects else []
        if self.shard_lines is not None:
            return out + self.shard_lines
        out += [
            f"mined {self.negatives} negatives for {self.rows} rows from a pool of {self.pool} passages -> {self.out}",
            f"candidates in range: {self.candidates}; removed: {self.removed_positive} equal to a positive, "
            f"{self.removed_query} equal to the query, {self.removed_margin} by the margin filter "
            "(likely false negatives)",
            f"sources: {self.negatives - self.from_bm25 - self.from_random} dense, {self.from_bm25} bm25, "
            f"{self.from_random} random top-up",
            f"time: encode {self.seconds_encode:.1f}s, search {self.seconds_search:.1f}s "
            f"(CPU {self.cpu_seconds_search:.1f}s), "
            f"select {self.seconds_select:.1f}s",
        ]
        if self.stale_scores:
            out.append(f"removed stale pos_scores/neg_scores from {self.stale_scores} rows; "
                       "add teacher scores with `bgeft data score`")
        if self.short_rows:
            out.append(f"warning: {self.short_rows} rows got fewer negatives than asked "
                       "(a small pool or a strict margin)")
        if self.empty_rows:
            out.append(f"warning: {self.empty_rows} rows have no negatives; FlagEmbedding cannot train on them "
                       "(give a bigger --corpus or lower --range)")
        return out



class RowFilter:
    """Filters for one training row: positives, query text and the margin threshold."""

    def __init__(self, row: dict, qvec: np.ndarray, pos_scores: list[float], margin, pvecs: np.ndarray):
        self.pos = set(row["pos"])
        self.query = row["query"].strip()
        self.qvec, self.pvecs = qvec, pvecs
        low = min(pos_scores)
        self.threshold = None if margin is None else low - margin * abs(low)

    def verdict(self, idx: int, text: str, score: float | None, summary: MineSummary) -> bool:
        if text in self.pos:
            summary.removed_positive += 1
            return False
        if text.strip() == self.query:
            summary.removed_query += 1
            return False
        if self.threshold is not None:
            if score is None:
                score = float(self.pvecs[idx] @ self.qvec)
            if score > self.threshold:
                summary.removed_margin += 1
                return False
        return True


def keep(flt: RowFilter, pool: list[str], candidates: list[tuple[int, float | None]],
         summary: MineSummary) -> list[int]:
    summary.candidates += len(candidates)
    return [i for i, score in candidates if flt.verdict(i, pool[i], score, summary)]


def random_top_up(rng: random.Random, pool: list[str], flt: RowFilter, seen: set[int], want: int) -> list[int]:
    """Random pool passages outside the searched ranks that pass the row's filters (easy negatives)."""
    scratch = MineSummary(out="")
    picked: list[int] = []
    if len(pool) <= 50 * want:  # small pool: look at every passage once, in random order
        tries = rng.sample(range(len(pool)), len(pool))
    else:  # big pool: a bounded number of random draws
        tries = [rng.randrange(len(pool)) for _ in range(50 * want)]
    for i in tries:
        if len(picked) == want:
            break
        if i not in seen and i not in picked and flt.verdict(i, pool[i], None, scratch):
            picked.append(i)
    return picked

