"""``bgeft train``: ``prepare`` (load -> override -> validate -> plan), then ``run`` (check -> train).

Static validation first (every problem together), then the real FlagEmbedding dataclasses parse
each section with ``HfArgumentParser.parse_dict(..., allow_extra_keys=False)``, then the training
rows are checked, and only then does anything touch ``output_dir`` or start a process.
"""
from __future__ import annotations

from pathlib import Path

from bgeft.config import recipe as recipes
from bgeft.config.recipe import Recipe
from bgeft.console import say
from bgeft.errors import UserError
from bgeft.models.demo import materialize
from bgeft.train.launch import Plan, detect_device, make_plan


def full_check(recipe: Recipe) -> None:
    """Parse each section with FlagEmbedding's own dataclasses; collect every failure."""
    from transformers import HfArgumentParser

    problems = []
    training = dict(recipe.section("training"))
    training.setdefault("output_dir", "unused")
    sections = {"model": recipe.section("model"), "data": recipe.section("data"), "training": training}
    for (name, section), cls in zip(sections.items(), recipe.task.dataclasses()):
        try:
            HfArgumentParser(cls).parse_dict(section, allow_extra_keys=False)
        except (ValueError, TypeError, FileNotFoundError, ImportError) as exc:
            problems.append(f"{recipe.path}: {name}: FlagEmbedding's {cls.__name__} rejects it: {exc}")
    if problems:
        raise UserError(f"{len(problems)} problem(s) in {recipe.path}:\n  " + "\n  ".join(problems))


def check_data(recipe: Recipe) -> None:
    from bgeft.data.validate import check_training_data

    data = recipe.section("data")
    report = check_training_data(data.get("train_data") or [],
                                 kd_required=bool(data.get("knowledge_distillation")),
                                 train_group_size=data.get("train_group_size"))
    if not report.ok:
        raise UserError(f"training data problems (checked before launch so the GPU never sees a bad row):\n"
                        f"{report.format(limit=20)}\nFix the rows (`bgeft data validate FILE --fix OUT` keeps the "
                        "valid ones) or pass --no-data-check to skip this check")
    if report.warning_count:
        shown = "\n  ".join(report.warnings[:5])
        say(f"bgeft: {report.rows_checked} training rows checked, {report.warning_count} warning(s):\n  {shown}"
            + ("\n  ..." if report.warning_count > 5 else ""))


def prepare(path_or_recipe: str | Path | Recipe, overrides: list[str] | tuple = (), device=None,
            env=None) -> tuple[Recipe, Plan]:
    """A recipe file (or a Recipe already merged, e.g. by a pipeline stage) + ``section.key=value``
    overrides -> the validated Recipe and its launch Plan. Nothing is written."""
    recipe = path_or_recipe if isinstance(path_or_recipe, Recipe) else recipes.load(path_or_recipe)
    recipe = recipes.validate(recipes.apply_overrides(recipe, list(overrides)))
    materialize(recipe.data)
    device = device or detect_device()
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
    recipe, plan = prepare(args.recipe, args.overrides, device=detect_device())
    return run(recipe, plan, resume=args.resume, overwrite=args.overwrite, data_check=not args.no_data_check,
               dry_run=args.dry_run)


def run(recipe: Recipe, plan: Plan, *, resume: bool = False, overwrite: bool = False, data_check: bool = True,
        dry_run: bool = False) -> int:
    """Check with FlagEmbedding's dataclasses (and the rows), prepare output_dir, train; the exit code."""
    from bgeft.config.redaction import mask, secret_values
    from bgeft.safety import record_owned
    from bgeft.train.rundir import execute, prepare_output_dir, write_manifest

    full_check(recipe)
    if data_check:
        check_data(recipe)
    if dry_run:
        out = plan.output_dir
        prepare_output_dir(out, resume, overwrite, run_inputs(recipe), node_rank=plan.layout.node_rank, dry_run=True)
        if out.is_dir() and any(out.iterdir()) and not (resume or overwrite):
            plan.notes.append(f"{out} is not empty: the real run needs --resume or --overwrite")
        print(mask(plan.render(), secret_values(recipe.data)))
        return 0
    resume_from = prepare_output_dir(plan.output_dir, resume, overwrite, run_inputs(recipe),
                                     node_rank=plan.layout.node_rank)
    if resume_from is not None:
        plan = make_plan(recipe, plan.device, resume_from=resume_from)
    elif resume:
        plan.notes.append("--resume: no checkpoint in output_dir yet, starting fresh")
    secrets = secret_values(recipe.data)
    print(mask(plan.render(), secrets), flush=True)
    # Several nodes share output_dir: node rank 0 writes the manifest, every node its own log.
    rank = plan.layout.node_rank
    if rank == 0:
        write_manifest(plan, recipe.data, recipe.path)
    log_name = "train.log" if rank == 0 else f"train.node{rank}.log"
    code = execute(plan, log_name=log_name, secrets=secrets)
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



