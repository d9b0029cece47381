"""``bgeft train``: ``prepare`` (load -> override -> validate -> plan), then ``run`` (check -> train),
without importing torch.

bgeft itself makes the static checks (every problem together, against the snapshot of FlagEmbedding's
fields), plans for the device it finds without torch (models/devices.probe_device), refuses what the
output dir cannot take and checks every training row (hashing each file in the same pass). Then the
training process(es) start: each parses its arguments with FlagEmbedding's own dataclasses (the one
``HfArgumentParser`` parse of the run) and checks the device with torch, and waits at the start gate
(train/gate.py). Only when all are ready does bgeft clear/create ``output_dir`` and write the manifest;
a refusal there leaves it untouched. ``--dry-run`` runs the same checks in one process and stops it at
the gate.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bgeft.config import recipe as recipes
from bgeft.config.recipe import Recipe
from bgeft.console import say
from bgeft.errors import UserError
from bgeft.models.demo import materialize
from bgeft.models.devices import probe_device
from bgeft.train.gate import ENV_PROCESSES, Gate, Refused
from bgeft.train.launch import WORKER, Plan, make_plan


def refusal(recipe: Recipe, exc: Refused) -> UserError:
    """The problems the training process found (FlagEmbedding's dataclasses, the device as torch sees it)."""
    return UserError(f"{len(exc.problems)} problem(s) launching {recipe.path} on this machine (found by the "
                     "training process before it started; nothing was written):\n  "
                     + "\n  ".join(f"{recipe.path}: {p}" if "FlagEmbedding's" in p else p for p in exc.problems))


def worker_check(recipe: Recipe, plan: Plan) -> dict:
    """``--dry-run``: one training process parses the arguments with FlagEmbedding's dataclasses and checks
    the device for the plan's processes on this node, as the real run's processes do, and is stopped at the
    start gate. Its output is shown only when it fails. Returns what it found."""
    gate = Gate(plan.device.kind, 1)
    env = {**os.environ, **plan.env, **plan.secret_env, **gate.env, ENV_PROCESSES: str(plan.nproc_per_node)}
    if "torch.distributed.run" in plan.argv:
        env.update(single_rank_env())
    argv = [sys.executable, "-m", WORKER, *plan.argv[plan.argv.index(WORKER) + 1:]]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, process_group=0)
    output: list[bytes] = []

    def pump(timeout: float) -> bool:
        if not select.select([proc.stdout], [], [], timeout)[0]:
            return True
        output.append(os.read(proc.stdout.fileno(), 65536))
        return bool(output[-1])

    try:
        return gate.wait(proc, pump)
    except Refused as exc:
        raise refusal(recipe, exc) from None
    except UserError:
        sys.stderr.write(b"".join(output)[-8000:].decode(errors="replace"))
        raise
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        gate.close()


def single_rank_env() -> dict[str, str]:
    """What torchrun gives a process, for a world of one: with a ``ddp_backend`` (gloo on the CPU, hccl on
    NPUs) or DeepSpeed, the dataclasses' parse starts a process group and needs it."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return {"RANK": "0", "LOCAL_RANK": "0", "GROUP_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}


def check_data(recipe: Recipe) -> dict[str, str]:
    """Check every training row; returns the sha256 of each file, hashed in the same pass."""
    from bgeft.data.validate import check_training_data

    data = recipe.section("data")
    digests: dict[str, str] = {}
    report = check_training_data(data.get("train_data") or [],
                                 kd_required=bool(data.get("knowledge_distillation")),
                                 train_group_size=data.get("train_group_size"), digests=digests)
    if not report.ok:
        raise UserError(f"training data problems (checked before launch so the GPU never sees a bad row):\n"
                        f"{report.format(limit=20)}\nFix the rows (`bgeft data validate FILE --fix OUT` keeps the "
                        "valid ones) or pass --no-data-check to skip this check")
    if report.warning_count:
        shown = "\n  ".join(report.warnings[:5])
        say(f"bgeft: {report.rows_checked} training rows checked, {report.warning_count} warning(s):\n  {shown}"
            + ("\n  ..." if report.warning_count > 5 else ""))
    return digests


def prepare(path_or_recipe: str | Path | Recipe, overrides: list[str] | tuple = (), device=None,
            env=None) -> tuple[Recipe, Plan]:
    """A recipe file (or a Recipe already merged, e.g. by a pipeline stage) + ``section.key=value``
    overrides -> the validated Recipe and its launch Plan (device found without torch). Nothing is written."""
    recipe = path_or_recipe if isinstance(path_or_recipe, Recipe) else recipes.load(path_or_recipe)
    recipe = recipes.validate(recipes.apply_overrides(recipe, list(overrides)))
    materialize(recipe.data)
    device = device or probe_device()
    return recipe, make_plan(recipe, device, env=env)


def run_inputs(recipe: Recipe) -> list[str]:
    """Every local file or folder the run reads: the output directory may be none of them, nor hold one."""
    data, model, launch = recipe.section("data"), recipe.section("model"), recipe.section("launch")
    found = [str(recipe.path), *[p for p in data.get("train_data") or [] if isinstance(p, str)]]
    found += [v for k in ("model_name_or_path", "tokenizer_name", "config_name", "peft_model_path", "from_peft")
              if isinstance(v := model.get(k), str) and Path(v).exists()]
    if launch.get("deepspeed"):
        found.append(str(launch["deepspeed"]))
    return found


def cmd_train(args) -> int:
    recipe, plan = prepare(args.recipe, args.overrides)
    return run(recipe, plan, resume=args.resume, overwrite=args.overwrite, data_check=not args.no_data_check,
               dry_run=args.dry_run)


def run(recipe: Recipe, plan: Plan, *, resume: bool = False, overwrite: bool = False, data_check: bool = True,
        dry_run: bool = False) -> int:
    """Check (output_dir, the rows; then FlagEmbedding's dataclasses and the device in the training
    processes, at the start gate), prepare output_dir, train; the exit code."""
    from bgeft.config.redaction import mask, secret_values
    from bgeft.safety import record_owned
    from bgeft.train.process import execute
    from bgeft.train.rundir import check_output_dir, make_output_dir, train_data_sha256, write_manifest

    inputs, rank = run_inputs(recipe), plan.layout.node_rank
    resume_from = check_output_dir(plan.output_dir, resume, overwrite, inputs, node_rank=rank, dry_run=dry_run)
    digests = check_data(recipe) if data_check else None
    hashing = None
    if digests is None and not dry_run:  # no check to wait for: hash while the workers import
        hashing = ThreadPoolExecutor(1).submit(train_data_sha256, recipe.data)
    secrets = secret_values(recipe.data)
    if dry_run:
        out = plan.output_dir
        if out.is_dir() and any(out.iterdir()) and not (resume or overwrite):
            plan.notes.append(f"{out} is not empty: the real run needs --resume or --overwrite")
        worker_check(recipe, plan)
        print(mask(plan.render(), secrets))
        return 0
    if resume_from is not None:
        plan = make_plan(recipe, plan.device, resume_from=resume_from)
    elif resume:
        plan.notes.append("--resume: no checkpoint in output_dir yet, starting fresh")
    print(mask(plan.render(), secrets), flush=True)

    def ready(found: dict) -> None:
        """Every training process is ready at the start gate: now output_dir may change."""
        make_output_dir(plan.output_dir, overwrite, inputs, node_rank=rank)
        if rank == 0:  # several nodes share output_dir: node rank 0 writes the manifest, every node its own log
            write_manifest(plan, recipe.data, recipe.path, digests if hashing is None else hashing.result(), found)

    log_name = "train.log" if rank == 0 else f"train.node{rank}.log"
    try:
        code = execute(plan, log_name=log_name, secrets=secrets, prepare=ready)
    except Refused as exc:
        raise refusal(recipe, exc) from None
    if code != 0:
        what = {130: "was interrupted (Ctrl-C)", 143: "was stopped (SIGTERM)"}.get(code, f"exited with code {code}")
        say(f"bgeft: training {what}; full log: {plan.output_dir / log_name}"
            + ("; continue with --resume" if code in (130, 143) else ""))
        return code
    if rank != 0:
        print(f"bgeft: node {rank} done; node 0 writes the model card into {plan.output_dir}")
        return 0
    from bgeft.train.artifacts import write_model_card, write_sentence_transformers_config

    if recipe.task.name in ("embedder.m3", "embedder.base"):
        write_sentence_transformers_config(plan.output_dir, recipe.data)
    write_model_card(plan.output_dir, recipe.data, recipe.path,
                     (plan.output_dir / "command.txt").read_text(encoding="utf-8"))
    record_owned(plan.output_dir)
    print(f"bgeft: done. Model in {plan.output_dir} (see README.md there for how to load it)")
    return 0
