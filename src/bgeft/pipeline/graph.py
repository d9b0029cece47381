"""The stage graph: the pipeline file expanded into numbered stage instances with their inputs.

Order: corpus, queries, split, eval-base, then per round r: mine-rR, [score-rR], train_embedder-rR,
[train_reranker-rR], eval-rR, and finally report. Round 1 mines with the base retriever and trains from
the base models; round r > 1 re-mines with round r-1's retriever (ANCE-style refresh), re-scores with
round r-1's reranker (or a fixed teacher) and trains from round r-1's weights (RocketQAv2-style).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bgeft.pipeline.spec import Spec
from bgeft.pipeline.stages.registry import KINDS


@dataclass
class Stage:
    name: str                     # "mine-r2"
    kind: str                     # "mine"
    round: int                    # 0 outside the rounds (eval-base is round 0 too)
    dir: Path
    params: dict
    refs: dict[str, tuple[str, str]] = field(default_factory=dict)  # role -> ("stage", name) | ("ext", value)

    @property
    def deps(self) -> list[str]:
        return [v for k, v in self.refs.values() if k == "stage"]

    @property
    def output(self) -> Path:
        return self.dir / KINDS[self.kind].output


def _stage(s: Spec, n: int, name: str, kind: str, rnd: int, params: dict, refs: dict) -> Stage:
    return Stage(name=name, kind=kind, round=rnd, dir=s.work_dir / f"{n:02d}-{name}", params=params, refs=refs)


def build_stages(spec: Spec) -> list[Stage]:
    d = spec.data
    base = d["base"]
    has_score, has_rr = "score" in d, "train_reranker" in d
    stages: list[Stage] = []

    def add(name, kind, rnd, params, refs):
        stages.append(_stage(spec, len(stages) + 1, name, kind, rnd, params, refs))

    corpus_refs = {f"book{i}": ("ext", b) for i, b in enumerate(d["corpus"]["books"] or [])}
    if d["corpus"]["file"]:
        corpus_refs["file"] = ("ext", d["corpus"]["file"])
    corpus_refs["tokenizer"] = ("ext", base["retriever"])
    add("corpus", "corpus", 0, {k: v for k, v in d["corpus"].items() if k not in ("books", "file")}, corpus_refs)
    q_params = dict(d["queries"])
    if q_params.get("generate"):
        q_params["generate"] = {k: v for k, v in q_params["generate"].items() if "key" not in k.lower()}
    q_refs = {"corpus": ("stage", "corpus")}
    if d["queries"]["file"]:
        q_refs["file"] = ("ext", d["queries"]["file"])
    add("queries", "queries", 0, {k: v for k, v in q_params.items() if k != "file"}, q_refs)
    add("split", "split", 0, d["split"], {"corpus": ("stage", "corpus"), "queries": ("stage", "queries")})

    def eval_refs(retriever, reranker):
        refs = {"split": ("stage", "split"), "retriever": retriever}
        if reranker:
            refs["reranker"] = reranker
        return refs

    base_rr = ("ext", base["reranker"]) if base.get("reranker") else None
    add("eval-base", "eval", 0, d["eval"], eval_refs(("ext", base["retriever"]), base_rr))
    retriever, reranker = ("ext", base["retriever"]), base_rr
    for r in range(1, spec.rounds + 1):
        add(f"mine-r{r}", "mine", r, d["mine"], {"split": ("stage", "split"), "retriever": retriever})
        data = ("stage", f"mine-r{r}")
        if has_score:
            teacher = d["score"]["reranker"]
            scorer = reranker if teacher == "previous" else ("ext", teacher)
            add(f"score-r{r}", "score", r, {k: v for k, v in d["score"].items() if k != "reranker"},
                {"data": data, "reranker": scorer})
            data = ("stage", f"score-r{r}")
        sec = d["train_embedder"]
        add(f"train_embedder-r{r}", "train_embedder", r, {k: sec[k] for k in ("model", "data", "training")},
            {"data": data, "init": retriever, "recipe": ("ext", sec["recipe"]), "split": ("stage", "split")})
        retriever = ("stage", f"train_embedder-r{r}")
        if has_rr:
            sec = d["train_reranker"]
            add(f"train_reranker-r{r}", "train_reranker", r, {k: sec[k] for k in ("model", "data", "training")},
                {"data": data, "init": reranker, "recipe": ("ext", sec["recipe"]), "split": ("stage", "split")})
            reranker = ("stage", f"train_reranker-r{r}")
        refs = eval_refs(retriever, reranker if has_rr else None)
        refs["baseline"] = ("stage", "eval-base")
        add(f"eval-r{r}", "eval", r, d["eval"], refs)
    report_refs = {"eval-base": ("stage", "eval-base")}
    report_refs.update({f"eval-r{r}": ("stage", f"eval-r{r}") for r in range(1, spec.rounds + 1)})
    add("report", "report", 0, {**d["report"], "rounds": spec.rounds}, report_refs)
    return stages


def select_from(stages: list[Stage], name: str) -> int:
    """Index of the first stage matching ``name`` (a kind like ``mine`` or an instance like ``mine-r2``)."""
    from bgeft.errors import UserError

    for i, st in enumerate(stages):
        if name in (st.name, st.kind, st.dir.name):
            return i
    names = ", ".join(st.name for st in stages)
    raise UserError(f"--from {name}: no such stage in this pipeline; its stages are: {names}")
