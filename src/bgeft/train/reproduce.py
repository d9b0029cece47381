"""``bgeft reproduce RUN_DIR [-o NEW_DIR] [--check] [--allow-drift] [--dry-run]``.

Re-launches a finished run from its own manifest: ``bgeft_run.yaml`` (the resolved recipe, overrides
applied, paths absolute) and ``environment.json`` (its launch layout and the environment it ran
on). Before anything runs, the recorded environment is compared with this machine's
(``drift.compare``): a changed training file or FlagEmbedding / transformers / torch version
refuses unless ``--allow-drift``; a different device count re-plans the launch with a note. The run
itself goes through ``bgeft train`` (same checks, manifest, artifacts) into NEW_DIR.
``--check`` then compares the new loss curve and final metrics with the recorded
``trainer_state.json`` and reports the largest difference (exit 1 above ``--tolerance``).
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from bgeft.errors import UserError
from bgeft.train.checkpoints import trainer_state

MANIFEST = ("bgeft_run.yaml", "environment.json")
STEP_KEYS = ("loss", "grad_norm", "learning_rate")


def read_manifest(run_dir: Path) -> dict:
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: not a directory; give the output_dir of a finished `bgeft train` run")
    missing = [name for name in MANIFEST if not (run_dir / name).is_file()]
    if missing:
        raise UserError(f"{run_dir}: no {' or '.join(missing)}: not a run made by `bgeft train` "
                        "(bgeft writes both before training starts)")
    return read_record(run_dir / "environment.json")


def read_record(path: Path) -> dict:
    """A recorded environment.json, checked to have the shape bgeft writes (a damaged or hand-made
    record is one message, never a traceback)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); the run's record is damaged") from None
    shapes = {"packages": dict, "device": dict, "launch": dict, "train_data_sha256": dict, "torch_build": dict}
    bad = [k for k, t in shapes.items() if isinstance(data, dict) and data.get(k) is not None
           and not isinstance(data[k], t)]
    if not isinstance(data, dict) or bad:
        raise UserError(f"{path}: not an environment record written by bgeft ("
                        + (f"{', '.join(bad)} must be mappings" if bad else "expected a JSON object")
                        + "); the run's record is damaged")
    return data


def launch_overrides(recorded: dict, device, notes: list[str]) -> list[str]:
    """The recorded launch layout as overrides, re-planned where this machine differs."""
    launch = recorded.get("launch") or {}
    old_dev = recorded.get("device") or {}
    out = []
    nproc = launch.get("nproc_per_node")
    if old_dev.get("kind") and old_dev["kind"] != device.kind:
        out.append("launch.device=auto")
        notes.append(f"recorded on {old_dev['kind']}, this machine has {device.kind}: precision and kernels "
                     "follow this device, so results will differ")
    if isinstance(nproc, int) and nproc >= 1:
        if device.kind != "cpu" and nproc > device.count:
            out.append("launch.nproc_per_node=auto")
            notes.append(f"recorded with {nproc} processes per node, this machine has {device.count} "
                         f"{device.kind} device(s): re-planned to {device.count} (the global batch changes)")
        else:
            out.append(f"launch.nproc_per_node={nproc}")
    if (launch.get("nnodes") or 1) > 1:
        notes.append(f"recorded on {launch['nnodes']} nodes: start this on every node with the same "
                     "NNODES / NODE_RANK / MASTER_ADDR layout")
    return out


def redacted_keys(path: Path) -> list[str]:
    """``section.key`` of values bgeft_run.yaml holds as ``***`` (secrets are never written)."""
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return [f"{sec}.{k}" for sec, body in data.items() if isinstance(body, dict)
            for k, v in body.items() if v == "***"]


def curve(state: dict) -> tuple[dict[int, dict], dict]:
    """({step: {loss, grad_norm, learning_rate}}, final metrics without timings)."""
    steps, final = {}, {}
    for entry in state.get("log_history", []):
        if "loss" in entry:
            steps[entry["step"]] = {k: entry[k] for k in STEP_KEYS if k in entry}
        elif "train_loss" in entry or any(k.startswith("eval_") for k in entry):
            final.update({k: v for k, v in entry.items() if isinstance(v, (int, float))
                          and not k.endswith(("runtime", "per_second")) and k not in ("step", "epoch")})
    return steps, final


def compare_curves(old: dict, new: dict) -> tuple[float, str, list[str]]:
    """(largest difference, where it is, problems such as steps logged in only one run)."""
    (old_steps, old_final), (new_steps, new_final) = curve(old), curve(new)
    problems = []
    if set(old_steps) != set(new_steps):
        problems.append(f"logged steps differ: recorded {sorted(old_steps)}, new {sorted(new_steps)}")
    worst, where = 0.0, "nowhere"
    for step in sorted(set(old_steps) & set(new_steps)):
        for key in STEP_KEYS:
            if key in old_steps[step] and key in new_steps[step]:
                diff = abs(old_steps[step][key] - new_steps[step][key])
                if diff > worst or math.isnan(diff):
                    worst, where = diff, f"{key} at step {step}"
    for key in sorted(set(old_final) & set(new_final)):
        diff = abs(old_final[key] - new_final[key])
        if diff > worst or math.isnan(diff):
            worst, where = diff, f"final {key}"
    return worst, where, problems


def cmd_reproduce(args) -> int:
    from bgeft.train import api, drift
    from bgeft.train.envrecord import record
    from bgeft.train.launch import detect_device

    if not (math.isfinite(args.tolerance) and args.tolerance >= 0):
        raise UserError(f"--tolerance {args.tolerance}: give a difference >= 0 (0 = identical)")
    run_dir = Path(args.run_dir).resolve()
    recorded = read_manifest(run_dir)
    out = Path(args.output).resolve() if args.output else run_dir.with_name(run_dir.name + "-reproduce")
    if out == run_dir or run_dir in out.parents:
        raise UserError(f"-o {out}: the new run cannot go into the recorded run {run_dir}; choose another directory")
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"-o {out}: not empty; choose a new directory for the reproduction")
    device = detect_device()
    rows = drift.compare(recorded, record(device, run_dir))
    print(drift.render(rows))
    refused = drift.refusals(rows)
    if refused and not args.allow_drift:
        raise UserError(f"bgeft reproduce refuses {run_dir}: {len(refused)} change(s) since the run change "
                        "what it computes:\n  " + "\n  ".join(refused)
                        + "\nRestore them, or pass --allow-drift to run anyway (the new run records its own "
                        "environment)")
    notes: list[str] = []
    overrides = [f"training.output_dir={json.dumps(str(out))}", *launch_overrides(recorded, device, notes)]
    for key in redacted_keys(run_dir / "bgeft_run.yaml"):
        overrides.append(f"~{key}")
        notes.append(f"{key} was recorded as *** (secrets are never written): it comes from the environment now")
    for note in notes:
        print(f"note: {note}")
    recipe, plan = api.prepare(run_dir / "bgeft_run.yaml", overrides, device=device)
    code = api.run(recipe, plan, dry_run=args.dry_run)
    if code != 0 or args.dry_run or not args.check:
        return code
    return check(run_dir, out, args.tolerance)


def check(run_dir: Path, out: Path, tolerance: float) -> int:
    old, new = trainer_state(run_dir), trainer_state(out)
    if old is None or new is None:
        raise UserError(f"--check: no trainer_state.json in {run_dir if old is None else out} (nor in a "
                        "checkpoint-*): the Trainer writes it at each checkpoint and at the end")
    worst, where, problems = compare_curves(old, new)
    steps = len(curve(old)[0])
    print(f"check: {steps} logged step(s) compared with {run_dir}; largest difference {worst:.3g} ({where})")
    for problem in problems:
        print(f"check: {problem}")
    if problems or not worst <= tolerance:
        print(f"bgeft: reproduce --check: the new run differs from the recorded one by more than "
              f"--tolerance {tolerance:g}", file=sys.stderr)
        return 1
    return 0
