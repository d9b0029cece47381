"""The ``report`` stage (report.md, rounds.png, best.json: the best round chosen on dev) and the
tables ``bgeft pipeline run`` / ``status`` print."""
from __future__ import annotations

import json
from pathlib import Path

from bgeft.errors import UserError
from bgeft.eval.markdown import fmt as _fmt
from bgeft.eval.markdown import table as md_table
from bgeft.pipeline.state import read_manifest


def _load(stage_dir: Path) -> dict:
    return json.loads((stage_dir / "summary.json").read_text(encoding="utf-8"))


def _pick(entry: dict, dotted: str):
    """``retriever.hybrid.ndcg@10`` -> entry["retriever"]["hybrid"]["ndcg@10"]."""
    node = entry
    for part in dotted.split(".", 2):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _choices(entry: dict) -> list[str]:
    out = []
    for kind in ("retriever", "pipeline"):
        for mode, metrics in (entry.get(kind) or {}).items():
            out += [f"{kind}.{mode}.{m}" for m in metrics if "@" in m]
    return out


def _md_table(header: list[str], rows: list[list]) -> list[str]:
    return md_table(header, rows).splitlines()


def collect(stages) -> tuple[list[tuple[str, dict]], dict]:
    """(label, eval summary) for the baseline and every round, and the stages by name."""
    evals = [st for st in stages if st.kind == "eval"]
    return [("baseline" if st.round == 0 else f"round {st.round}", _load(st.dir)) for st in evals], \
        {st.name: st for st in stages}


def summary_rows(results: list[tuple[str, dict]], split: str, select: str) -> tuple[list[str], list[list]]:
    modes = list(dict.fromkeys(m for _, entry in results for m in entry.get(split, {}).get("retriever", {})))
    k = select.rsplit("@", 1)[-1] if "@" in select else "10"
    header = ["model", f"dev {select}"] + [f"{split} {m} ndcg@{k}" for m in modes]
    has_pipeline = any(entry.get(split, {}).get("pipeline") for _, entry in results)
    if has_pipeline:
        header.append(f"{split} retrieve+rerank ndcg@{k}")
    rows = []
    for label, entry in results:
        row = [label, _pick(entry.get("dev", {}), select)]
        row += [entry.get(split, {}).get("retriever", {}).get(m, {}).get(f"ndcg@{k}") for m in modes]
        if has_pipeline:
            row.append(entry.get(split, {}).get("pipeline", {}).get("reranked", {}).get(f"ndcg@{k}"))
        rows.append(row)
    return header, rows


def significance_rows(results, split: str) -> list[list]:
    rows = []
    for label, entry in results[1:]:
        for kind, table in (entry.get(split, {}).get("compare") or {}).items():
            for r in table:
                rows.append([label, f"{kind} {r['mode']}", r["metric"], r["baseline"], r["candidate"], r["delta"],
                             f"[{_fmt(r.get('ci_low'))}, {_fmt(r.get('ci_high'))}]", r.get("p_ttest"),
                             r.get("p_permutation"), r.get("cohens_d"), f"{r['wins']}/{r['ties']}/{r['losses']}"])
    return rows


SIG_HEADER = ["round", "scored", "metric", "baseline", "round value", "delta", "95% CI", "p (t-test)",
              "p (randomisation)", "Cohen's d", "wins/ties/losses"]


def run_report(ctx, stage, resume: bool) -> dict:
    spec = ctx.spec
    stages = list(ctx.by_name.values())
    results, by_name = collect(stages)
    select = spec.data["report"]["select"]
    dev_scores = [_pick(entry.get("dev", {}), select) for _, entry in results]
    if all(v is None for v in dev_scores):
        raise UserError(f"{spec.where.get(('report', 'select'), spec.path)}: report.select: {select!r} was not "
                        f"measured; choose one of {', '.join(_choices(results[-1][1].get('dev', {})))}")
    scored = [i for i, v in enumerate(dev_scores) if v is not None]
    best = max(scored, key=lambda i: (dev_scores[i], -i))
    split = "test" if any("test" in entry for _, entry in results) else "dev"
    header, rows = summary_rows(results, split, select)
    rows = [row[:1] + [f"{_fmt(row[1])}{' (best)' if i == best else ''}"] + row[2:] for i, row in enumerate(rows)]
    best_models = _best_models(by_name, best)
    lines = [f"# Pipeline report: {spec.path.name}", "",
             f"- Pipeline: `{spec.path}`; work dir `{spec.work_dir}`; {spec.rounds} round(s)",
             f"- Corpus: {_summary(by_name, 'corpus')}; questions: {_summary(by_name, 'split')}",
             f"- Best on dev by `{select}`: **{results[best][0]}** ({_fmt(dev_scores[best])})"]
    lines += [f"- Best {role}: `{path}`" for role, path in best_models.items()]
    lines += ["", f"## Summary ({split} split; dev picks the best)", ""] + _md_table(header, rows)
    sig = significance_rows(results, split)
    lines += ["", f"## Significance against the baseline ({split} split, paired per query)", ""]
    lines += _md_table(SIG_HEADER, sig) if sig else ["(no rounds to compare)"]
    lines += ["", "## Training", ""] + _md_table(["stage", "steps", "last loss", "kept (best on dev)", "seconds"], [
        [st.name, (m := read_manifest(st.dir) or {}).get("summary", {}).get("global_step"),
         m.get("summary", {}).get("last_loss"), kept_text(m.get("summary", {})), f"{m.get('seconds', 0):.1f}"]
        for st in stages if st.kind.startswith("train")])
    image = _plot(results, select, stage.dir / "rounds.png")
    if image:
        lines += ["", "## Rounds", "", f"![{select} by round]({image})"]
    notes = {f"{label}: {note}" for label, entry in results for e in entry.values() if isinstance(e, dict)
             for note in e.get("notes", [])}
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in sorted(notes)]
    lines += ["", "Per-split details (metrics.json, report.md, plots) are in each eval stage's directory."]
    (stage.dir / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    best_info = {"round": best, "label": results[best][0], "select": select, "dev": dev_scores[best], **best_models}
    (stage.dir / "best.json").write_text(json.dumps(best_info, indent=2) + "\n", encoding="utf-8")
    return best_info


def kept_text(summary: dict) -> str:
    """Which step a training stage kept, by in-training dev evaluation (``-`` when it did not evaluate)."""
    if summary.get("kept_step") is None:
        return "-"
    best = summary.get("dev_best")
    return (f"step {summary['kept_step']} of {summary.get('global_step')}"
            + (f" (dev {summary.get('dev_metric')} {best:.4f})" if isinstance(best, (int, float)) else ""))


def _summary(by_name, name: str) -> str:
    s = (read_manifest(by_name[name].dir) or {}).get("summary", {})
    return ", ".join(f"{k} {v}" for k, v in s.items())


def _best_models(by_name, best: int) -> dict:
    if best == 0:
        return {"retriever": "the base retriever (no round beat it on dev)"}
    out = {}
    for kind, role in (("train_embedder", "retriever"), ("train_reranker", "reranker")):
        st = by_name.get(f"{kind}-r{best}")
        if st:
            out[role] = str(st.output)
    return out


def _plot(results, select: str, path: Path) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = list(range(len(results)))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    metrics = [select]
    kind, mode, metric = (select.split(".", 2) + ["", ""])[:3]
    if kind == "retriever" and mode != "dense":  # the mode every model has, for reference
        metrics.append(f"retriever.dense.{metric}")
    for name in metrics:
        for split in ("dev", "test"):
            ys = [_pick(entry.get(split, {}), name) for _, entry in results]
            if any(y is not None for y in ys):  # missing values (a mode the base model lacks) are gaps
                ax.plot(xs, [float("nan") if y is None else y for y in ys], marker="o",
                        linestyle="-" if name == select else "--", label=f"{split} {name}")
    ax.set_xticks(xs, [label for label, _ in results])
    ax.set_ylabel(select.rsplit(".", 1)[-1])
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def print_summary(spec, stages) -> None:
    report = next(st for st in stages if st.kind == "report")
    best = json.loads((report.dir / "best.json").read_text(encoding="utf-8"))
    results, _ = collect(stages)
    split = "test" if any("test" in entry for _, entry in results) else "dev"
    header, rows = summary_rows(results, split, best["select"])
    widths = [max(len(_fmt(x)) for x in col) for col in zip(header, *rows)]
    print()
    for row in [header] + rows:
        print("  ".join(_fmt(c).ljust(w) for c, w in zip(row, widths)))
    for st in stages:
        kept = kept_text((read_manifest(st.dir) or {}).get("summary", {})) if st.kind.startswith("train") else "-"
        if kept != "-":
            print(f"{st.name}: kept {kept}")
    print(f"\nbest on dev: {best['label']}; report: {report.output}")


def print_status(spec, stages, plan) -> None:
    print(f"pipeline {spec.path} -> {spec.work_dir}")
    width = max(len(st.dir.name) for st in stages)
    for st, decision in plan:
        m = read_manifest(st.dir) or {}
        state = m.get("status", "not run")
        when = f"{m.get('finished_at') or m.get('started_at', '')}"
        took = f"{m['seconds']:.1f} s" if m.get("seconds") is not None else ""
        print(f"  {st.dir.name:<{width}}  {state:<8} {when:<20} {took:>9}  next run: {decision.action} "
              f"({decision.reason})")
