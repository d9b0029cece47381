"""A pipeline run's record, and re-running a finished pipeline from it.

``record_run`` writes, at the start of every (non dry-run) run, ``work_dir/pipeline_run.yaml`` (the
validated pipeline: overrides applied, every path absolute) and ``work_dir/environment.json`` (the
``envrecord`` record, the same as a training run's); each stage's ``stage.json`` carries the same
environment plus the fingerprints of what it read (``inputs``), and training stages hold their own
``bgeft train`` manifests.

``bgeft pipeline run --reproduce DIR [work_dir=NEW]`` loads DIR's record as the pipeline, compares
the recorded environment and every external input the stages read (books, question files,
recipes, base models) with what is there now, refuses on a changed input or FlagEmbedding /
transformers / torch unless ``--allow-drift``, then runs the whole pipeline into NEW (default
``DIR-reproduce``).
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from bgeft.config.redaction import redact
from bgeft.errors import UserError
from bgeft.pipeline.spec import Spec, load_spec
from bgeft.pipeline.state import MANIFEST, HashCache
from bgeft.train import drift

RECORD = "pipeline_run.yaml"
ENVIRONMENT = "environment.json"


def environment() -> dict:
    from bgeft.train.envrecord import record
    from bgeft.train.launch import detect_device

    return record(detect_device(), Path.cwd())


def record_run(spec: Spec, env: dict) -> None:
    work = spec.work_dir
    text = f"# resolved from {spec.path}\n" + yaml.safe_dump(redact(spec.data), sort_keys=False,
                                                                      allow_unicode=True)
    for name, body in ((RECORD, text), (ENVIRONMENT, json.dumps(env, indent=2) + "\n")):
        tmp = work / (name + ".tmp")
        tmp.write_text(body, encoding="utf-8")
        tmp.replace(work / name)


def input_rows(recorded_dir: Path) -> list[tuple[str, str, str, str]]:
    """One drift row per external input a recorded stage read (upstream stages are rebuilt anyway)."""
    cache, rows, seen = HashCache(None), [], set()
    for manifest_path in sorted(recorded_dir.glob(f"[0-9][0-9]-*/{MANIFEST}")):
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            refs = sorted((manifest.get("refs") or {}).items())
        except (ValueError, AttributeError, UnicodeDecodeError):
            raise UserError(f"{manifest_path}: not a stage manifest written by bgeft; the pipeline's record "
                            "is damaged") from None
        for role, (kind, value) in refs:
            if kind == "stage" or value in seen:
                continue
            seen.add(value)
            try:
                now = cache.reference(value)   # a file or directory by content, demo / a hub id by name
            except OSError as exc:
                raise UserError(f"--reproduce: cannot read {value} ({exc})") from None
            missing = Path(value).is_absolute() and not Path(value).exists()
            old = (manifest.get("inputs") or {}).get(role)
            rows.append((f"input {value}", str(old), "missing" if missing else now, "same" if old == now else "REFUSE"))
    return rows


def reproduce_spec(recorded_dir: str, overrides: list[str], allow_drift: bool) -> Spec:
    """The recorded pipeline, with work_dir moved to a new directory, after the drift check."""
    src = Path(recorded_dir).expanduser().resolve()
    missing = [n for n in (RECORD, ENVIRONMENT) if not (src / n).is_file()]
    if not src.is_dir() or missing:
        raise UserError(
            f"--reproduce {src}: "
            + ("not a directory" if not src.is_dir() else f"no {' or '.join(missing)}")
            + "; give the work_dir of a pipeline that `bgeft pipeline run` finished"
        )
    from bgeft.train.reproduce import read_record

    recorded = read_record(src / ENVIRONMENT)
    rows = drift.compare(recorded, environment()) + input_rows(src)
    print(drift.render(rows))
    refused = [f"input {r[0][6:]} changed since the run: recorded {r[1]}, now {r[2]}" for r in rows
               if r[3] == "REFUSE" and r[0].startswith("input ")]
    refused += drift.refusals([r for r in rows if not r[0].startswith("input ")])
    if refused and not allow_drift:
        raise UserError(f"bgeft pipeline run --reproduce refuses {src}: {len(refused)} change(s) since the run:\n  "
                        + "\n  ".join(refused) + "\nRestore them, or pass --allow-drift to run anyway")
    if not any(o.startswith("work_dir=") for o in overrides):
        overrides = [f"work_dir={json.dumps(str(src.with_name(src.name + '-reproduce')))}", *overrides]
    spec = load_spec(src / RECORD, overrides)
    if spec.work_dir == src or src in spec.work_dir.parents:
        raise UserError(f"work_dir={spec.work_dir}: the reproduction cannot go into the recorded pipeline {src}; "
                        "choose another work_dir")
    return spec
