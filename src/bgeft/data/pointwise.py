"""Pointwise reranker data ``{"query", "passage", "label"}`` (or ``relevance`` for ``label``; one judged pair per
record; label 0/1 or a graded relevance) grouped into training rows ``{query, pos, neg}``: a label above 0 makes
the passage a positive, 0 (or below) a negative. With ``--graded`` the labels are kept as ``pos_scores``/``neg_scores``
(teacher scores for distillation). Records of one query may be anywhere in the file; queries keep the
order of their first record."""
from __future__ import annotations

from collections.abc import Iterator

from bgeft.data.detect import Detected
from bgeft.data.io import open_text
from bgeft.data.readers import number
from bgeft.data.schema import kind
from bgeft.data.shapes import Options, Stats, _with_prompt, guarded, records
from bgeft.errors import UserError


def pointwise(det: Detected, opts: Options, stats: Stats) -> Iterator[tuple[str, dict]]:
    groups: dict[str, dict] = {}

    def make(rec, where):
        if not isinstance(rec, dict):
            raise UserError(f"{where}: expected an object with query, passage, label, found {kind(rec)}")
        for key in ("query", "passage"):
            if not isinstance(rec.get(key), str) or not rec[key].strip():
                problem = "missing" if key not in rec else f"expected a non-empty string, found {kind(rec[key])}"
                raise UserError(f"{where}: {key}: {problem}")
        name = "relevance" if rec.get("label") in (None, "") and rec.get("relevance") not in (None, "") else "label"
        if rec.get(name) in (None, ""):
            raise UserError(f"{where}: label: missing (0 = not relevant, 1 or more = relevant)")
        label = number(rec[name], where, name)
        group = groups.setdefault(rec["query"].strip(), {"where": where, "pos": {}, "neg": {}})
        group["pos" if label > 0 else "neg"].setdefault(rec["passage"].strip(), label)
        return []

    with open_text(det.path, det.encoding) as src:
        for _ in guarded(det, opts, records(det, src, opts), make):
            pass
    for query, group in groups.items():
        if not group["pos"]:
            stats.skipped["query without a relevant passage (label > 0)"] += 1
            continue
        neg = {text: label for text, label in group["neg"].items() if text not in group["pos"]}
        row = {"query": query, "pos": list(group["pos"]), "neg": list(neg)}
        if opts.graded:
            row["pos_scores"], row["neg_scores"] = list(group["pos"].values()), list(neg.values())
        yield group["where"], _with_prompt(row, opts)
