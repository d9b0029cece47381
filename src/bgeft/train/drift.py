"""Drift between a recorded environment (a run's ``environment.json``) and this machine's.

Each difference is a row ``(what, recorded, now, verdict)``; the verdict says what it means for a
re-run: ``same``, ``differs`` (results may move), ``re-plan`` (the launch layout follows this
machine) or ``REFUSE`` (a changed training file, or a changed FlagEmbedding / transformers / torch,
which ``bgeft reproduce`` refuses unless ``--allow-drift``).
"""
from __future__ import annotations

from pathlib import Path

from bgeft.train.rundir import sha256_file

# a changed version of these changes the training code itself
GATED_PACKAGES = ("FlagEmbedding", "transformers", "torch")


def _row(what: str, recorded, now, changed: str = "differs") -> tuple[str, str, str, str]:
    shown = [("-" if v in (None, "") else str(v)) for v in (recorded, now)]
    return (what, shown[0], shown[1], "same" if recorded == now else changed)


def compare(recorded: dict, current: dict) -> list[tuple[str, str, str, str]]:
    """Rows for everything ``environment.json`` records; current is an ``envrecord.record`` plus,
    optionally, ``train_data_sha256`` of the same files (computed here when absent)."""
    rows = [_row("python", recorded.get("python"), current.get("python"))]
    old_pk, new_pk = recorded.get("packages") or {}, current.get("packages") or {}
    for name in sorted(set(old_pk) | set(new_pk), key=str.lower):
        rows.append(_row(f"package {name}", old_pk.get(name), new_pk.get(name),
                         "REFUSE" if name in GATED_PACKAGES else "differs"))
    old_tb, new_tb = recorded.get("torch_build") or {}, current.get("torch_build") or {}
    for key in ("cuda", "cudnn", "hip", "cann"):
        if old_tb.get(key) is not None or new_tb.get(key) is not None:
            rows.append(_row(f"torch build {key}", old_tb.get(key), new_tb.get(key)))
    old_dev, new_dev = recorded.get("device") or {}, current.get("device") or {}
    rows.append(_row("device kind", old_dev.get("kind"), new_dev.get("kind")))
    rows.append(_row("device name", old_dev.get("name"), new_dev.get("name")))
    rows.append(_row("device count", old_dev.get("count"), new_dev.get("count"), "re-plan"))
    rows.append(_row("git sha", recorded.get("git_sha"), current.get("git_sha")))
    old_img, new_img = recorded.get("image") or {}, current.get("image") or {}
    if old_img or new_img:
        for key in ("base_digest", "version", "revision"):
            rows.append(_row(f"image {key}", old_img.get(key), new_img.get(key)))
    now_data = current.get("train_data_sha256") or {}
    for path, digest in sorted((recorded.get("train_data_sha256") or {}).items()):
        if path not in now_data:
            now_data[path] = sha256_file(Path(path)) if Path(path).is_file() else "missing"
        rows.append(_row(f"data {path}", digest, now_data[path], "REFUSE"))
    return rows


def refusals(rows) -> list[str]:
    """One sentence per REFUSE row, naming the file or package and both values."""
    out = []
    for what, old, new, verdict in rows:
        if verdict != "REFUSE":
            continue
        if what.startswith("data "):
            out.append(f"training file {what[5:]} changed since the run: recorded sha256 {old}, now "
                       + ("the file is missing" if new == "missing" else f"sha256 {new}"))
        else:
            out.append(f"{what[8:]} changed since the run: recorded {old}, now {new}")
    return out


def render(rows, all_rows: bool = False) -> str:
    """The drift table (only what differs unless ``all_rows``)."""
    shown = [r for r in rows if all_rows or r[3] != "same"]
    same = len(rows) - len(shown)
    if not shown:
        return f"environment: no drift ({same} recorded facts match this machine)"
    width = [max(len(r[i]) for r in shown + [("what", "recorded", "now", "verdict")]) for i in range(3)]
    width = [width[0]] + [min(w, 64) for w in width[1:]]   # paths whole; versions and sha256 fit in 64
    lines = ["  ".join(h.ljust(w) for h, w in zip(("what", "recorded", "now"), width)) + "  verdict"]
    for r in shown:
        lines.append("  ".join(_cut(c, w).ljust(w) for c, w in zip(r[:3], width)) + "  " + r[3])
    if same and not all_rows:
        lines.append(f"({same} other recorded facts match this machine)")
    return "\n".join(lines)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3):]
