"""PNG plots for evaluation reports (matplotlib, headless Agg backend).

* ``metric_curves``: Recall@k and nDCG@k against k, one line per series (mode, model or stage);
* ``delta_histogram``: per-query deltas (candidate - baseline) of one metric, per mode;
* ``throughput_plot``: items/s against batch size (``bgeft eval bench``).
Each function writes through a temp file and returns the path written.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

from bgeft.io import atomic_writer

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _save(fig, path: Path) -> Path:
    try:
        with atomic_writer(path, "wb") as out:
            fig.savefig(out, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def metric_curves(series: dict[str, dict[str, float]], ks: list[int], path: Path, title: str = "") -> Path:
    """``series``: {label: aggregate metrics dict}; labels ``role:mode`` share a colour per mode and a
    line style per role (first role dashed)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    groups = list(dict.fromkeys(label.split(":")[-1] for label in series))
    roles = list(dict.fromkeys(label.split(":")[0] for label in series if ":" in label))
    for ax, metric, name in ((axes[0], "recall", "Recall@k"), (axes[1], "ndcg", "nDCG@k")):
        for label, metrics in series.items():
            ys = [metrics.get(f"{metric}@{k}", float("nan")) for k in ks]
            color = f"C{groups.index(label.split(':')[-1]) % 10}"
            style = "--" if ":" in label and roles and label.split(":")[0] == roles[0] else "-"
            ax.plot(ks, ys, marker="o", label=label, color=color, linestyle=style)
        ax.set_xscale("log")
        ax.set_xticks(ks)
        ax.set_xticklabels([str(k) for k in ks])
        ax.set_xlabel("k")
        ax.set_ylabel(name)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def delta_histogram(deltas: dict[str, list[float]], metric: str, path: Path) -> Path:
    """``deltas``: {mode: per-query candidate - baseline values of ``metric``}."""
    n = max(len(deltas), 1)
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 3.5), squeeze=False)
    for ax, (mode, values) in zip(axes[0], deltas.items()):
        ax.hist(values, bins=min(30, max(5, len(values) // 2)), color="#4477aa", edgecolor="white")
        ax.axvline(0, color="black", lw=1)
        ax.set_title(f"{mode}: per-query delta {metric}")
        ax.set_xlabel("candidate - baseline")
        ax.set_ylabel("queries")
    return _save(fig, path)


def throughput_plot(rows: list[dict], path: Path, title: str = "") -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([r["batch_size"] for r in rows], [r["items_per_s"] for r in rows], marker="o")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("items / s")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return _save(fig, path)
