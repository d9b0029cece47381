"""STS pairs and text/label files -> training rows the way FlagEmbedding's multi-task example data is built.

* STS ``{sentence1, sentence2, score}``: pairs scoring at least ``--min-score`` (default 80% of the file's
  highest score) become ``query=sentence1, pos=[sentence2]``; negatives are other sentences of the file;
  ``type: symmetric_sts``.
* classification ``{text, label}``: ``query=text, pos=[its label], neg=[other labels]``,
  ``type: symmetric_class``.
* clustering ``{text, label}``: ``query=text, pos=[another text with the same label], neg=[texts with
  other labels]``, ``type: symmetric_clustering``.

Each file is read twice (labels / sentence pool first, rows second); memory is bounded by the sampled
pools, plus, for STS, one hash pair per well-scored pair (so a paraphrase is never drawn as a negative).
"""
from __future__ import annotations

import random
from collections.abc import Iterator

from bgeft.data.detect import Detected
from bgeft.data.io import open_text
from bgeft.data.readers import number
from bgeft.data.schema import kind
from bgeft.data.shapes import Options, Stats, guarded, records
from bgeft.errors import UserError

POOL_SIZE = 10000        # sentences kept (reservoir sample) as STS negatives
PER_LABEL = 64           # texts kept per clustering label
DEFAULT_PROMPTS = {
    "sts": "Retrieve semantically similar text.",
    "classification": "Classify the given text into its category.",
    "clustering": "Identify the category of the given text.",
}
TYPES = {"sts": "symmetric_sts", "classification": "symmetric_class", "clustering": "symmetric_clustering"}


def _records(det: Detected, fields: tuple[str, ...], opts: Options) -> Iterator[tuple[str, list]]:
    def make(rec, where):
        if not isinstance(rec, dict):
            raise UserError(f"{where}: expected an object with {', '.join(fields)}, found {kind(rec)}")
        values = []
        for key in fields:
            value = rec.get(key)
            if key == "label" and isinstance(value, int) and not isinstance(value, bool):
                value = str(value)  # numeric class ids become label strings
            if key == "score":
                value = number(value, where, key) if key in rec else None
                if value is None:
                    raise UserError(f"{where}: score: missing")
            elif not isinstance(value, str) or not value.strip():
                problem = "missing" if key not in rec else "empty" if isinstance(value, str) else \
                    f"expected a string, found {kind(value)}"
                raise UserError(f"{where}: {key}: {problem}")
            else:
                value = value.strip()
            values.append(value)
        return [values]

    with open_text(det.path, det.encoding) as src:
        yield from guarded(det, opts, records(det, src, opts), make)


def _finish(row: dict, shape: str, opts: Options) -> dict:
    row["prompt"] = opts.prompt or DEFAULT_PROMPTS[shape]
    row["type"] = TYPES[shape]
    return row


def sts(det: Detected, opts: Options, stats: Stats) -> Iterator[tuple[str, dict]]:
    rng = random.Random(opts.seed)
    pool: list[str] = []
    seen, top = 0, None
    # partners of well-scored pairs (by string hash; a superset of the final threshold's pairs) are never
    # drawn as each other's negatives: a paraphrase of the query is not a negative
    partners: dict[int, set[int]] = {}
    for _, (s1, s2, score) in _records(det, ("sentence1", "sentence2", "score"), opts):
        top = score if top is None else max(top, score)
        if score >= (opts.min_score if opts.min_score is not None else 0.8 * top):
            partners.setdefault(hash(s1), set()).add(hash(s2))
            partners.setdefault(hash(s2), set()).add(hash(s1))
        for sentence in (s1, s2):
            seen += 1
            if len(pool) < POOL_SIZE:
                pool.append(sentence)
            elif (j := rng.randrange(seen)) < POOL_SIZE:
                pool[j] = sentence
    threshold = opts.min_score if opts.min_score is not None else 0.8 * (top or 0.0)
    for where, (s1, s2, score) in _records(det, ("sentence1", "sentence2", "score"), opts):
        if score < threshold:
            stats.skipped[f"STS pair scoring below {threshold:g}"] += 1
            continue
        banned = {hash(s1), hash(s2)} | partners.get(hash(s1), set()) | partners.get(hash(s2), set())
        picks = rng.sample(pool, min(len(pool), opts.negatives + len(banned) + 2))
        neg = [s for s in dict.fromkeys(picks) if hash(s) not in banned][: opts.negatives]
        yield where, _finish({"query": s1, "pos": [s2], "neg": neg}, "sts", opts)


def classification(det: Detected, opts: Options, stats: Stats) -> Iterator[tuple[str, dict]]:
    rng = random.Random(opts.seed)
    labels = list(dict.fromkeys(label for _, (_, label) in _records(det, ("text", "label"), opts)))
    if len(labels) < 2:
        raise UserError(f"{det.path}: classification needs at least two labels, found {labels}")
    for where, (text, label) in _records(det, ("text", "label"), opts):
        others = [x for x in labels if x != label]
        neg = rng.sample(others, opts.negatives) if len(others) > opts.negatives else others
        yield where, _finish({"query": text, "pos": [label], "neg": neg}, "classification", opts)


def clustering(det: Detected, opts: Options, stats: Stats) -> Iterator[tuple[str, dict]]:
    rng = random.Random(opts.seed)
    pools: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for _, (text, label) in _records(det, ("text", "label"), opts):
        counts[label] = counts.get(label, 0) + 1
        pool = pools.setdefault(label, [])
        if len(pool) < PER_LABEL:
            pool.append(text)
        elif (j := rng.randrange(counts[label])) < PER_LABEL:
            pool[j] = text
    if len(pools) < 2:
        raise UserError(f"{det.path}: clustering needs at least two labels, found {list(pools)}")
    labels = list(pools)
    total = sum(len(pool) for pool in pools.values())
    for where, (text, label) in _records(det, ("text", "label"), opts):
        same = [t for t in pools[label] if t != text]
        if not same:
            stats.skipped["clustering text whose label has no other text"] += 1
            continue
        if total <= 4096:  # small pools: draw from every other label's texts directly
            others = [t for other in labels if other != label for t in pools[other]]
            neg = rng.sample(others, min(opts.negatives, len(others)))
        else:
            neg = []
            for _ in range(opts.negatives * 20):
                if len(neg) >= opts.negatives:
                    break
                other = rng.choice(labels)
                candidate = rng.choice(pools[other])
                if other != label and candidate not in neg:
                    neg.append(candidate)
        yield where, _finish({"query": text, "pos": [rng.choice(same)], "neg": neg}, "clustering", opts)
