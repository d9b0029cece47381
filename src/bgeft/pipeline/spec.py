"""The pipeline file: load YAML keeping line numbers, apply ``section.key=value`` overrides, validate.

Every problem is collected and reported together, each naming ``file:line`` (or the override that
caused it) and the fix, before any stage runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bgeft.config.yamlfile import short
from bgeft.errors import UserError, did_you_mean
from bgeft.pipeline.stages.registry import KINDS, MODES, REJECTS, STR
from bgeft.pipeline.yamlfile import apply_overrides, read_yaml

STAGES = tuple(KINDS)
TOP_KEYS = ("work_dir", "rounds", "base") + STAGES

# section -> key -> (expected type(s), default): "base" plus each stage kind's own schema
SCHEMA: dict[str, dict[str, tuple]] = {"base": {"retriever": (STR, None), "reranker": (STR, None)},
                                       **{kind: k.schema for kind, k in KINDS.items()}}
REQUIRED = {"base": ("retriever",), "train_embedder": ("recipe",), "train_reranker": ("recipe",)}
# null: no token budget / no margin filter / no limit on rejected rows
NULLABLE = {("corpus", "max_tokens"), ("mine", "margin"), ("mine", "max_rejects"), ("score", "max_rejects")}
MAX_ROUNDS = 50   # each round adds 3-5 stages; more is a typo, not a plan
MAX_K = 10_000
OPTIONAL_STAGES = ("score", "train_reranker")  # leave the section out to skip the stage


@dataclass
class Spec:
    """A validated pipeline: plain values plus where each key was written."""

    path: Path
    data: dict[str, Any]
    where: dict[tuple, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)   # said before the stages run (bgeft: note: ...)

    def section(self, name: str) -> dict[str, Any] | None:
        return self.data.get(name)

    @property
    def work_dir(self) -> Path:
        return Path(self.data["work_dir"])

    @property
    def rounds(self) -> int:
        return int(self.data["rounds"])


def _type_name(t) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list", dict: "a mapping"}
    if t is REJECTS:
        return 'a number of rows or a percentage ("5%")'
    return "a number" if isinstance(t, tuple) else names[t]


def _type_ok(value, t) -> bool:
    if isinstance(value, bool) and t is not bool:
        return False
    return isinstance(value, t)


def validate(path: Path, data: dict, where: dict, outputs_root: str | Path | None = None) -> Spec:
    """Check keys, types and required values; fill defaults; resolve paths against the file."""
    errors: list[str] = []
    at = lambda *keys: where.get(tuple(keys), str(path))  # noqa: E731
    for key in data:
        if key not in TOP_KEYS:
            errors.append(f"{at(key)}: unknown stage {key!r}{did_you_mean(key, TOP_KEYS)}; "
                          f"stages are: {', '.join(STAGES)} (plus work_dir, rounds, base)")
    out: dict[str, Any] = {}
    work_dir = data.get("work_dir")
    if not isinstance(work_dir, str) or not work_dir.strip():
        errors.append(f"{at('work_dir')}: work_dir: required, a directory for the stages' outputs "
                      "(relative paths resolve against the pipeline file)")
    else:
        out["work_dir"] = (str((Path.cwd() / work_dir).resolve()) if _from_override(where, "work_dir")
                           else _work_dir(path, work_dir))
    notes = _outputs_root(path, out, where, outputs_root)
    rounds = data.get("rounds", 1)
    if not _type_ok(rounds, int) or not 1 <= rounds <= MAX_ROUNDS:
        errors.append(f"{at('rounds')}: rounds: must be an integer from 1 to {MAX_ROUNDS} (training rounds; round 2+ "
                      f"re-mines with the previous round's retriever), got {short(rounds)}")
    out["rounds"] = rounds
    for section, keys in SCHEMA.items():
        if section not in data:
            if section in OPTIONAL_STAGES:
                continue
            data_section: dict = {}
        else:
            data_section = data[section]
            if data_section is None:
                data_section = {}
            if not isinstance(data_section, dict):
                errors.append(f"{at(section)}: {section}: must be a mapping of settings, got {short(data_section)}")
                continue
        values: dict[str, Any] = {}
        for key, value in data_section.items():
            if key not in keys:
                errors.append(f"{at(section, key)}: {section}.{key}: unknown key{did_you_mean(key, keys)}; "
                              f"{section} takes: {', '.join(keys)}")
                continue
            t = keys[key][0]
            if value is not None and not _type_ok(value, t):
                errors.append(f"{at(section, key)}: {section}.{key}: must be {_type_name(t)}, got {short(value)}")
                continue
            values[key] = value
        for key, (_, default) in keys.items():
            if values.get(key) is None and not (key in values and (section, key) in NULLABLE):
                values[key] = default
        for key in REQUIRED.get(section, ()):
            if values.get(key) in (None, ""):
                errors.append(f"{at(section)}: {section}.{key}: required")
        out[section] = values
    errors += _check_values(path, out, at, where)
    if errors:
        raise UserError(f"{path}: {len(errors)} problem(s):\n  " + "\n  ".join(errors))
    return Spec(path=path, data=out, where=where, notes=notes)


def _from_override(where: dict, *keys) -> bool:
    return where.get(tuple(keys), "").startswith("override")


def _work_dir(path: Path, work_dir: str) -> str:
    """Relative to the pipeline file; but a shipped pipeline inside an installed package writes under
    the working directory (``../outputs/x`` -> ``./outputs/x``), never into site-packages."""
    from bgeft.assets import PACKAGE_DIR

    if path.is_relative_to(PACKAGE_DIR) and not Path(work_dir).is_absolute():
        return str((Path.cwd() / Path(*[p for p in Path(work_dir).parts if p != ".."])).resolve())
    return str((path.parent / work_dir).resolve())


def _outputs_root(path: Path, out: dict, where: dict, root: str | Path | None) -> list[str]:
    """``--outputs-root ROOT`` (run_docker_training.sh passes the container's writable outputs mount): a
    work_dir written in the file that lies outside it would vanish with the container or hit a read-only
    mount, so it becomes ROOT/<file name>, with a note. A work_dir override is kept as typed."""
    if not root or "work_dir" not in out or _from_override(where, "work_dir"):
        return []
    root_dir = Path(root).resolve()
    if Path(out["work_dir"]).is_relative_to(root_dir):
        return []
    new = root_dir / path.stem
    old, out["work_dir"] = out["work_dir"], str(new)
    return [f"work_dir {old} is not under {root_dir} (the outputs mount): the pipeline writes to {new}; "
            f"pass work_dir={root_dir}/NAME to choose"]


def _resolve(base: Path, value: str) -> str:
    return str((base / Path(value).expanduser()).resolve())


def _check_values(path: Path, out: dict, at, where: dict) -> list[str]:
    from bgeft.models.resolve import reference as resolve_model
    from bgeft.pipeline.resources import resolve_recipe

    errors: list[str] = []
    def base(*keys) -> Path:  # overrides are typed in a shell: their paths resolve against the working dir
        return Path.cwd() if _from_override(where, *keys) else path.parent

    for section in ("mine", "score"):
        limit = (out.get(section) or {}).get("max_rejects")
        if limit is not None:
            from bgeft.data.rejects import parse_max_rejects
            try:
                parse_max_rejects(str(limit))
            except UserError as exc:
                errors.append(f"{at(section, 'max_rejects')}: {section}.max_rejects: {str(exc).split(': ', 1)[1]}")
            if not out[section]["skip_invalid"]:
                errors.append(f"{at(section, 'max_rejects')}: {section}.max_rejects: needs {section}.skip_invalid: "
                              "true (without it the first bad row stops the stage)")
    corpus, queries = out["corpus"], out["queries"]
    if bool(corpus["books"]) == bool(corpus["file"]):
        errors.append(f"{at('corpus')}: corpus: give exactly one of books: [BOOK.txt, ...] (split into passages) "
                      "or file: corpus.jsonl (a BEIR corpus)")
    for key in ("books", "file"):
        items = corpus[key] if key == "books" else ([corpus[key]] if corpus[key] else [])
        resolved = []
        for i, item in enumerate(items or []):
            p = Path(_resolve(base("corpus", key), str(item)))
            if not p.is_file():
                loc = at("corpus", key, i) if key == "books" else at("corpus", key)
                errors.append(
                    f"{loc}: corpus.{key}: {item}: no such file (relative paths resolve against {base('corpus', key)})"
                )
            resolved.append(str(p))
        corpus[key] = resolved if key == "books" else (resolved[0] if resolved else None)
    if corpus["by"] not in ("sentence", "paragraph", "window"):
        errors.append(f"{at('corpus', 'by')}: corpus.by: one of sentence, paragraph, window; got {corpus['by']!r}")
    if bool(queries["file"]) == bool(queries["generate"]):
        errors.append(f"{at('queries')}: queries: give exactly one of file: questions.jsonl or generate: "
                      "{base_url: ..., model: ...} (an OpenAI-compatible endpoint)")
    if queries["file"]:
        queries["file"] = _resolve(base("queries", "file"), queries["file"])
        if not Path(queries["file"]).is_file():
            errors.append(f"{at('queries', 'file')}: queries.file: {queries['file']}: no such file")
    split = out["split"]
    if not (0 < split["dev"] < 1 and 0 <= split["test"] < 1 and split["dev"] + split["test"] < 1):
        errors.append(f"{at('split')}: split: dev in (0, 1), test in [0, 1) and dev + test < 1 "
                      f"(the rest trains); got dev={split['dev']}, test={split['test']}")
    lo, _, hi = out["mine"]["range"].partition("-")
    if not (lo.isdigit() and hi.isdigit() and int(lo) < int(hi)):
        errors.append(f"{at('mine', 'range')}: mine.range: FROM-TO ranks like 2-50, got {out['mine']['range']!r}")
    for role in ("retriever", "reranker"):
        value = out["base"].get(role)
        if value:
            try:
                out["base"][role] = resolve_model(value, base("base", role))
            except UserError as exc:
                errors.append(f"{at('base', role)}: base.{role}: {exc}")
    if "train_reranker" in out and not out["base"].get("reranker"):
        errors.append(f"{at('base')}: base.reranker: required when train_reranker is given "
                      "(the model the first round's reranker starts from)")
    if "score" in out and out["score"]["reranker"] != "previous":
        try:
            out["score"]["reranker"] = resolve_model(out["score"]["reranker"], base("score", "reranker"))
        except UserError as exc:
            errors.append(f"{at('score', 'reranker')}: score.reranker: {exc} (or 'previous')")
    if "score" in out and out["score"]["reranker"] == "previous" and "train_reranker" not in out \
            and not out["base"].get("reranker"):
        errors.append(f"{at('score')}: score.reranker: 'previous' needs base.reranker or a train_reranker stage")
    for stage in ("train_embedder", "train_reranker"):
        if stage in out and out[stage]["recipe"]:
            try:
                out[stage]["recipe"] = str(resolve_recipe(out[stage]["recipe"], base(stage, "recipe")))
            except UserError as exc:
                errors.append(f"{at(stage, 'recipe')}: {stage}.recipe: {exc}")
                continue
            errors += _check_recipe(stage, out[stage], at, path, where)
    if out.get("work_dir"):  # the stages' outputs: never an input, the working directory, $HOME or a root
        from bgeft.safety import check_output

        inputs = [str(path), *(corpus["books"] or []), *[f for f in (corpus["file"], queries["file"]) if f]]
        try:
            check_output(out["work_dir"], [i for i in inputs if Path(i).exists()], what="work_dir", is_dir=True)
        except UserError as exc:
            errors.append(f"{at('work_dir')}: {exc}")
    ks = out["eval"]["k"]
    if not ks or not all(_type_ok(k, int) and 1 <= k <= MAX_K for k in ks):
        errors.append(f"{at('eval', 'k')}: eval.k: a list of cut-offs, each an integer from 1 to {MAX_K} (e.g. "
                      f"[1, 5, 10]), got {short(ks)}")
    for key in ("retrieve_top", "rerank_top", "batch_size", "max_length"):
        if _type_ok(out["eval"][key], int) and out["eval"][key] < 1:
            errors.append(f"{at('eval', key)}: eval.{key}: must be at least 1, got {out['eval'][key]}")
    errors += _check_select(out, at)
    bad = [m for m in out["eval"]["modes"] if m not in MODES]
    if bad or not out["eval"]["modes"]:
        errors.append(f"{at('eval', 'modes')}: eval.modes: choose from {', '.join(MODES)}; got {bad or '[]'}")
    return errors


def _check_select(out: dict, at) -> list[str]:
    """report.select names something the eval stage measures: retriever.MODE.METRIC or pipeline.reranked.METRIC."""
    select = out["report"]["select"]
    kind, _, rest = select.partition(".")
    mode, _, metric = rest.partition(".")
    ks = [str(k) for k in out["eval"]["k"]]
    ok_metric = metric in ("map", "mrr") or (metric.partition("@")[0] in ("ndcg", "recall", "mrr", "precision",
                                                                           "success", "acc")
                                              and metric.partition("@")[2] in ks)
    has_reranker = "train_reranker" in out or bool(out["base"].get("reranker"))
    ok = ok_metric and ((kind == "retriever" and mode in out["eval"]["modes"])
                        or (kind == "pipeline" and mode in ("reranked", "first_stage") and has_reranker))
    if ok:
        return []
    return [f"{at('report', 'select')}: report.select: {select!r} is not measured; use retriever.MODE.METRIC with a "
            f"mode of eval.modes or pipeline.reranked.METRIC (needs a reranker), METRIC like ndcg@K with K in eval.k "
            f"({', '.join(ks)}), e.g. retriever.hybrid.ndcg@10"]


def _check_recipe(stage: str, section: dict, at, path: Path, where: dict) -> list[str]:
    """The recipe with this stage's model/data/training settings, checked by the recipe layer."""
    from bgeft.pipeline.stages.model_stages import check_recipe

    try:
        check_recipe(stage, section, path, where, str(path))
    except UserError as exc:
        return [f"{at(stage)}: {stage}: recipe {section['recipe']} with this stage's settings: "
                + str(exc).replace("\n", "\n    ")]
    return []


def load_spec(path: str | Path, overrides: list[str] | None = None, outputs_root: str | Path | None = None) -> Spec:
    path = Path(path).expanduser().resolve()
    data, where = read_yaml(path)
    apply_overrides(data, where, list(overrides or []))
    return validate(path, data, where, outputs_root)
