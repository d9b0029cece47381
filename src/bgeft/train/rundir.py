"""Run directories: output-dir safety, resume, the run manifest, execution and what follows it.

Before training: ``output_dir`` goes through the one guard (bgeft.safety): never an input of the run,
the working directory, ``$HOME`` or a root; a non-empty one is refused unless ``--resume`` or
``--overwrite`` (which clears only a directory bgeft made). Then write ``bgeft_run.yaml`` (resolved
recipe), ``command.txt`` and ``environment.json`` (versions, git sha, device, sha256 of every train
file), secrets redacted. Then run the plan's argv (never a shell) in its own process group, stream its
output (secrets masked) to the terminal and ``train.log``, and forward SIGTERM/SIGINT/SIGHUP to it.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
from pathlib import Path

import yaml

from bgeft.config.redaction import Masker, redact
from bgeft.console import settings, show_tail
from bgeft.console_progress import WorkerLines
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


def prepare_output_dir(output_dir: Path, resume: bool, overwrite: bool, inputs=(),
                       node_rank: int = 0, dry_run: bool = False) -> Path | None:
    """Return the checkpoint to resume from (None = start fresh); ``output_dir`` exists afterwards.

    ``inputs`` are every file the run reads (recipe, train data, local model, DeepSpeed config).
    Several nodes share one ``output_dir``: only node rank 0 clears it (``--overwrite``) or refuses it
    when non-empty; the other nodes find node 0's files there and neither delete nor refuse them.
    ``dry_run`` makes every refusal the real run would make (protected place, an input inside, a directory
    ``--overwrite`` may not clear) and then stops: nothing is created or deleted."""
    if resume and overwrite:
        raise UserError("--resume and --overwrite contradict each other: --resume continues the run in "
                        "output_dir, --overwrite deletes it; pass one")
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"training.output_dir {output_dir} is a file; choose a directory path")
    check_output(output_dir, inputs, what="training.output_dir", is_dir=True)
    content = sorted(p.name for p in output_dir.iterdir()) if output_dir.is_dir() else []
    if node_rank != 0:
        content = []
    if dry_run:
        if content and overwrite:
            check_owned_dir(output_dir, marker=MARKER, inputs=inputs, known=TRAINER_WRITES)
        return None
    if content and overwrite:
        clear_owned_dir(output_dir, marker=MARKER, inputs=inputs, known=TRAINER_WRITES)
        content = []
    if content and not resume:
        shown = ", ".join(content[:5]) + (", ..." if len(content) > 5 else "")
        raise UserError(f"training.output_dir {output_dir} is not empty ({len(content)} entries: {shown}); "
                        "pass --resume to continue from its newest checkpoint, --overwrite to delete it first "
                        "(only a run directory bgeft made), or set training.output_dir=NEW_DIR")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"training.output_dir {output_dir}: cannot be created ({exc.strerror}); choose a "
                        "directory you can write to") from None
    if not os.access(output_dir, os.W_OK):
        raise UserError(f"training.output_dir {output_dir}: is not writable; choose a directory you can write to")
    return usable_checkpoint(checkpoints(output_dir)) if resume else None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def environment(plan: Plan, recipe_data: dict, recipe_path: Path) -> dict:
    """envrecord.record (the same record `bgeft env --json` prints) plus this run's launch and data."""
    from bgeft.data.validate import ValidationReport, training_files
    from bgeft.train.envrecord import record

    train_data = (recipe_data.get("data") or {}).get("train_data") or []
    return {
        **record(plan.device, recipe_path.parent),
        "launch": {"nproc_per_node": plan.nproc_per_node, "nnodes": plan.layout.nnodes,
                   "node_rank": plan.layout.node_rank, "layout_from": plan.layout.source,
                   "deterministic": bool((recipe_data.get("launch") or {}).get("deterministic"))},
        # the files FlagEmbedding loads for train_data (a directory's .json/.jsonl files, not its subfolders)
        "train_data_sha256": {str(p): sha256_file(p) for p in training_files(train_data, ValidationReport())},
    }


def write_manifest(plan: Plan, recipe_data: dict, recipe_path: Path) -> None:
    out = plan.output_dir
    out.mkdir(parents=True, exist_ok=True)
    resolved = dict(redact(recipe_data))
    (out / MARKER).write_text(
        f"# resolved from {recipe_path}\n" + yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True),
        encoding="utf-8")
    (out / "command.txt").write_text(plan.command_line() + "\n", encoding="utf-8")
    (out / "environment.json").write_text(json.dumps(environment(plan, recipe_data, recipe_path), indent=2) + "\n",
                                          encoding="utf-8")
    record_owned(out, [MARKER, "command.txt", "environment.json", "train.log"])


def execute(plan: Plan, log_name: str = "train.log", secrets: list[str] | None = None) -> int:
    """Run the plan, tee its output (secrets masked) into output_dir/train.log, forward signals.

    The worker runs in its own process group, so a Ctrl-C in the terminal reaches only bgeft, which
    forwards it once: the first SIGINT asks for a checkpoint at the end of the step, a second one
    stops at once. SIGHUP (the terminal closed) is forwarded as SIGTERM. Once a signal has stopped the
    worker, bgeft itself is only finishing (exit 130/143): a late second Ctrl-C is then ignored instead of
    killing bgeft mid-way through its last lines."""
    env = {**os.environ, **plan.env, **plan.secret_env, "PYTHONUNBUFFERED": "1"}
    log_path = plan.output_dir / log_name
    masker = Masker(secrets or [])
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(plan.argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                process_group=0)

        received: list[int] = []

        def forward(signum, frame):
            received.append(signum)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM if signum == signal.SIGHUP else signum)

        previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        shown = WorkerLines()   # bgeft's lines and the training progress; everything goes to the log
        try:
            while True:
                chunk = os.read(proc.stdout.fileno(), 65536)
                text = masker.feed(chunk, final=not chunk)
                log.write(text)
                log.flush()
                shown.write(text)
                if not chunk:
                    break
            shown.close()
            code = proc.wait()
            if code not in (0, 130, 143) and not settings.verbose:
                show_tail(log_path, f"training exited with code {code}")
            return code
        finally:
            shown.close()
            for s, handler in previous.items():
                signal.signal(s, signal.SIG_IGN if received else handler)
            if proc.poll() is None:  # bgeft itself is going down: do not leave the worker behind
                proc.terminate()
            record_owned(plan.output_dir)
