"""Run directories: output-dir safety, resume and the run manifest.

Before training: ``output_dir`` goes through the one guard (bgeft.safety): never an input of the run,
the working directory, ``$HOME`` or a root; a non-empty one is refused unless ``--resume`` or
``--overwrite`` (which clears only a directory bgeft made). ``check_output_dir`` makes every refusal
without touching anything (before the training processes start); ``make_output_dir`` clears and creates
it (once they are ready at the start gate, train/gate.py). Then ``write_manifest`` writes
``bgeft_run.yaml`` (resolved recipe), ``command.txt`` and ``environment.json`` (versions, git sha,
device, sha256 of every train file), secrets redacted. Running the plan: train/process.py.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import yaml

from bgeft.config.redaction import redact
from bgeft.errors import UserError
from bgeft.safety import check_output, check_owned_dir, clear_owned_dir, record_owned
from bgeft.train.checkpoints import checkpoints, usable_checkpoint
from bgeft.train.launch import Plan

MARKER = "bgeft_run.yaml"
# What the Trainer / FlagEmbedding write into output_dir before bgeft could record its inventory
# (a run killed mid-way): --overwrite may delete these in a directory that holds the marker.
TRAINER_WRITES = ("checkpoint-*", "runs", "train.log", "train.node*.log", "command.txt", "environment.json",
                  "*.safetensors", "model.safetensors.index.json", "pytorch_model*.bin", "training_args.bin",
                  "colbert_linear.pt", "sparse_linear.pt", "config.json", "generation_config.json", "tokenizer.json",
                  "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "sentencepiece.bpe.model",
                  "vocab.txt", "vocab.json", "merges.txt", "trainer_state.json", "*_results.json", "README.md",
                  "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "1_Pooling",
                  "2_Normalize")


def check_output_dir(output_dir: Path, resume: bool, overwrite: bool, inputs=(), node_rank: int = 0,
                     dry_run: bool = False) -> Path | None:
    """Every refusal ``prepare_output_dir`` makes, touching nothing; returns the checkpoint ``--resume``
    continues from (None = start fresh). ``dry_run``: a non-empty directory without --resume/--overwrite
    is not refused (the plan says so) and no checkpoint is looked for."""
    if resume and overwrite:
        raise UserError("--resume and --overwrite contradict each other: --resume continues the run in "
                        "output_dir, --overwrite deletes it; pass one")
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"training.output_dir {output_dir} is a file; choose a directory path")
    check_output(output_dir, inputs, what="training.output_dir", is_dir=True)
    content = sorted(p.name for p in output_dir.iterdir()) if output_dir.is_dir() else []
    if node_rank != 0:
        content = []
    if content and overwrite:
        check_owned_dir(output_dir, marker=MARKER, inputs=inputs, known=TRAINER_WRITES)
    elif content and not resume and not dry_run:
        shown = ", ".join(content[:5]) + (", ..." if len(content) > 5 else "")
        raise UserError(f"training.output_dir {output_dir} is not empty ({len(content)} entries: {shown}); "
                        "pass --resume to continue from its newest checkpoint, --overwrite to delete it first "
                        "(only a run directory bgeft made), or set training.output_dir=NEW_DIR")
    if resume and not dry_run and output_dir.is_dir():
        return usable_checkpoint(checkpoints(output_dir))
    return None


def make_output_dir(output_dir: Path, overwrite: bool, inputs=(), node_rank: int = 0) -> None:
    """Clear (``--overwrite``, node rank 0 only, a directory bgeft made) and create ``output_dir``."""
    if overwrite and node_rank == 0 and output_dir.is_dir() and any(output_dir.iterdir()):
        clear_owned_dir(output_dir, marker=MARKER, inputs=inputs, known=TRAINER_WRITES)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"training.output_dir {output_dir}: cannot be created ({exc.strerror}); choose a "
                        "directory you can write to") from None
    if not os.access(output_dir, os.W_OK):
        raise UserError(f"training.output_dir {output_dir}: is not writable; choose a directory you can write to")


def prepare_output_dir(output_dir: Path, resume: bool, overwrite: bool, inputs=(),
                       node_rank: int = 0, dry_run: bool = False) -> Path | None:
    """Return the checkpoint to resume from (None = start fresh); ``output_dir`` exists afterwards.

    ``inputs`` are every file the run reads (recipe, train data, local model, DeepSpeed config).
    Several nodes share one ``output_dir``: only node rank 0 clears it (``--overwrite``) or refuses it
    when non-empty; the other nodes find node 0's files there and neither delete nor refuse them.
    ``dry_run`` makes every refusal the real run would make (protected place, an input inside, a directory
    ``--overwrite`` may not clear) and then stops: nothing is created or deleted."""
    resume_from = check_output_dir(output_dir, resume, overwrite, inputs, node_rank, dry_run=dry_run)
    if dry_run:
        return None
    make_output_dir(output_dir, overwrite, inputs, node_rank)
    return resume_from


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def train_data_sha256(recipe_data: dict) -> dict[str, str]:
    """sha256 of the files FlagEmbedding loads for train_data (a directory's .json/.jsonl files, not its
    subfolders); the data check computes the same in its own pass (check_training_data(digests=))."""
    from bgeft.data.validate import ValidationReport, training_files

    train_data = (recipe_data.get("data") or {}).get("train_data") or []
    return {str(p): sha256_file(p) for p in training_files(train_data, ValidationReport())}


def environment(plan: Plan, recipe_data: dict, recipe_path: Path, digests: dict[str, str] | None = None,
                found: dict | None = None) -> dict:
    """envrecord.record (the same record `bgeft env --json` prints) plus this run's launch and data.
    ``digests``: the train files' sha256 when the data check computed them; ``found``: what the training
    process reported at the start gate (the device and torch build as torch sees them)."""
    from bgeft.train.envrecord import record

    found = found or {}
    env = record(plan.device, recipe_path.parent, build=found.get("torch_build"))
    if found.get("device"):
        env["device"] = found["device"]
    return {
        **env,
        "launch": {"nproc_per_node": plan.nproc_per_node, "nnodes": plan.layout.nnodes,
                   "node_rank": plan.layout.node_rank, "layout_from": plan.layout.source,
                   "deterministic": bool((recipe_data.get("launch") or {}).get("deterministic"))},
        "train_data_sha256": train_data_sha256(recipe_data) if digests is None else digests,
    }


def write_manifest(plan: Plan, recipe_data: dict, recipe_path: Path, digests: dict[str, str] | None = None,
                   found: dict | None = None) -> None:
    out = plan.output_dir
    out.mkdir(parents=True, exist_ok=True)
    resolved = dict(redact(recipe_data))
    (out / MARKER).write_text(
        f"# resolved from {recipe_path}\n" + yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True),
        encoding="utf-8")
    (out / "command.txt").write_text(plan.command_line() + "\n", encoding="utf-8")
    record = environment(plan, recipe_data, recipe_path, digests, found)
    (out / "environment.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    record_owned(out, [MARKER, "command.txt", "environment.json", "train.log"])
