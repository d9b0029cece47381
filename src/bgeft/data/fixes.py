"""What ``bgeft data validate --fix`` repairs in a row instead of dropping it.

* ``pos``/``neg`` items that are empty or whitespace only are removed;
* an item repeated within ``pos`` (or within ``neg``) is kept once;
* a ``neg`` item that is also a ``pos`` item is removed from ``neg`` (it would teach the opposite);
* mining input (``--for mining``, or a file where no row has ``neg``): a missing ``neg`` becomes ``[]``.

Teacher scores follow their passages: when an item is removed, its ``pos_scores``/``neg_scores`` entry
goes with it. Anything else wrong with a row (no query, no positive left...) is not guessed at; the row
is dropped and reported. ``fix_row`` returns the repaired row and the names of the fixes it applied.
"""
from __future__ import annotations

FIX_NAMES = {
    "blank": "empty or whitespace-only items removed",
    "duplicate": "duplicate items within a row removed",
    "pos_in_neg": "positives removed from neg",
    "neg_added": "missing neg set to [] (mining input)",
}


def fix_row(row: object, mining: bool) -> tuple[object, list[str]]:
    """``(row, fixes)``; rows that are not objects (or have no usable lists) come back unchanged."""
    if not isinstance(row, dict):
        return row, []
    fixes: list[str] = []
    row = dict(row)
    if mining and "neg" not in row:
        row["neg"] = []
        fixes.append("neg_added")
    positives: set[str] = set()
    for key in ("pos", "neg"):
        items = row.get(key)
        if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
            continue
        scores_key = f"{key}_scores"
        scores = row.get(scores_key)
        paired = isinstance(scores, list) and len(scores) == len(items)
        keep, seen = [], set()
        for i, text in enumerate(items):
            if not text.strip():
                why = "blank"
            elif text in seen:
                why = "duplicate"
            elif key == "neg" and text in positives:
                why = "pos_in_neg"
            else:
                seen.add(text)
                keep.append(i)
                continue
            if why not in fixes:
                fixes.append(why)
        if len(keep) != len(items):
            row[key] = [items[i] for i in keep]
            if paired:
                row[scores_key] = [scores[i] for i in keep]
        if key == "pos":
            positives = set(row[key])
    return row, fixes
