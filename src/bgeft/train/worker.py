"""The training process: FlagEmbedding's own runner for the task, plus pre-emption handling.

``python -m bgeft.train.worker TASK --flag value …`` does what ``python -m <FlagEmbedding module>`` does
(HfArgumentParser over the task's three dataclasses, the task's Runner, train, save), and adds:

* SIGTERM (Kubernetes pre-emption, ``docker stop``) and SIGINT (Ctrl-C, forwarded by ``bgeft train``):
  finish the current step, save a checkpoint, exit 143 (SIGTERM) or 130 (SIGINT) so
  ``bgeft train --resume`` continues from it; a second signal stops at once. With several processes
  the stop flag is all-reduced each step, so every rank stops at the same step.
* secrets: ``model.token`` / ``training.hub_token`` arrive in the environment (bgeft.config.redaction), never
  in argv; they are put back into the parsed dataclasses, and the TrainingArguments the Trainer pickles
  into every ``training_args.bin`` are saved with ``hub_token`` blank.
* the start gate (train/gate.py): under ``bgeft train`` the arguments are parsed here, once, and the
  device is checked with torch (bf16, device count); then the process reports ready (or the problems
  that refuse the run) and waits until bgeft has prepared output_dir, before the model is built.
* resume for encoder models: FlagEmbedding saves a checkpoint as the bare encoder (+ M3's
  colbert/sparse heads), which the HF Trainer cannot load back into FlagEmbedding's wrapper model:
  the keys differ by the ``model.`` prefix, and with transformers 5 ``_load_from_checkpoint``
  even crashes on the wrapper (no ``_keys_to_ignore_on_save``). The worker loads the weights
  itself and lets the Trainer restore only optimizer, scheduler, RNG and trainer state.
"""
from __future__ import annotations

import copyreg
import ctypes
import os
import signal
import sys
from pathlib import Path

from bgeft.config.redaction import SECRET_ENV

PREEMPTED_EXIT = 143
INTERRUPTED_EXIT = 130
ENCODER_TASKS = ("embedder.m3", "embedder.base", "reranker.base")


class _Preemption:
    def __init__(self):
        self.requested = False
        self.exit_code = PREEMPTED_EXIT

    def handler(self, signum, frame):
        name = signal.Signals(signum).name
        if self.requested:  # a second Ctrl-C / SIGTERM: stop now, without a checkpoint
            print(f"bgeft.train.worker: second {name}; stopping now (the last saved checkpoint stays resumable)",
                  file=sys.stderr, flush=True)
            os._exit(INTERRUPTED_EXIT if signum == signal.SIGINT else PREEMPTED_EXIT)
        self.requested = True
        self.exit_code = INTERRUPTED_EXIT if signum == signal.SIGINT else PREEMPTED_EXIT
        print(f"bgeft.train.worker: received {name}; saving a checkpoint at the end of this step "
              "(send it again to stop at once)", file=sys.stderr, flush=True)


def _die_with_parent() -> None:
    """Linux: if the launcher is killed (SIGKILL), take this process down too instead of training on
    as an orphan that keeps writing into output_dir."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _restore_secrets(model_args, training_args, environ=os.environ) -> None:
    """Put the secrets the launcher passed by environment back into the parsed dataclasses."""
    for (section, key), name in SECRET_ENV.items():
        value = environ.pop(name, None)
        if value:
            setattr(model_args if section == "model" else training_args, key, value)
    if getattr(training_args, "hub_token", None):
        _pickle_without_hub_token(training_args)


def _pickle_without_hub_token(args) -> None:
    """The Trainer ``torch.save``s its TrainingArguments into output_dir and every checkpoint: make that
    pickle (and copies) carry ``hub_token=None``, still as the original class."""
    base = type(args)

    def __reduce_ex__(self, protocol):
        # copyreg._reconstructor is what plain pickles of such objects use: loading needs no bgeft
        return copyreg._reconstructor, (base, object, None), {**self.__dict__, "hub_token": None}

    args.__class__ = type(base.__name__, (base,), {"__reduce_ex__": __reduce_ex__, "__module__": base.__module__,
                                                   "__qualname__": base.__qualname__})


def _callback(flag: _Preemption):
    import torch
    import torch.distributed as dist
    from transformers import TrainerCallback

    class PreemptionCallback(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stop = flag.requested
            if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
                device = args.device if dist.get_backend() != "gloo" else torch.device("cpu")
                t = torch.tensor([1.0 if stop else 0.0], device=device)
                dist.all_reduce(t, op=dist.ReduceOp.MAX)
                stop = bool(t.item())
            if stop:
                flag.requested = True
                control.should_save = True
                control.should_training_stop = True
            return control

    return PreemptionCallback()


def _restore_encoder_checkpoint(runner, checkpoint: str) -> None:
    """Load an encoder checkpoint (and M3 heads) into the wrapper model (see module docstring)."""
    import torch
    from safetensors.torch import load_file

    model = runner.model
    ckpt = Path(checkpoint)
    weights = ckpt / "model.safetensors"
    if weights.is_file():
        state = load_file(str(weights))
    elif (ckpt / "pytorch_model.bin").is_file():
        state = torch.load(ckpt / "pytorch_model.bin", map_location="cpu", weights_only=True)
    else:
        return  # a DeepSpeed checkpoint: the engine restores it itself
    missing, unexpected = model.model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if "position_ids" not in k]:
        raise RuntimeError(f"{weights} does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for name in ("colbert_linear", "sparse_linear"):
        path = ckpt / f"{name}.pt"
        if path.is_file() and hasattr(model, name):
            getattr(model, name).load_state_dict(torch.load(path, map_location="cpu", weights_only=True))


def _rejection(exc: BaseException, classes) -> str:
    """``section: FlagEmbedding's Class rejects it: …`` for an error one of the dataclasses raised."""
    import traceback

    found = ("arguments", "argument parser")
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        owner = frame.f_locals.get("self")
        for section, cls in zip(("model", "data", "training"), classes, strict=True):
            if isinstance(owner, cls):
                found = (section, cls.__name__)
    return f"{found[0]}: FlagEmbedding's {found[1]} rejects it: {exc}"


def _parse_and_check(task, argv: list[str], flag: _Preemption):
    """The one HfArgumentParser parse of the run and, under ``bgeft train``, the device as torch sees it;
    then the start gate. Returns the three argument objects, or the exit code when not to train."""
    from transformers import HfArgumentParser

    from bgeft.models.devices import check_training_device
    from bgeft.train.envrecord import torch_build
    from bgeft.train.gate import ENV_DIR, gate_request, wait_at_gate

    classes = task.dataclasses()
    problems, found = [], {}
    try:
        parsed = HfArgumentParser(classes).parse_args_into_dataclasses(args=argv)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as exc:
        if ENV_DIR not in os.environ:
            raise
        problems.append(_rejection(exc, classes))
    else:
        _restore_secrets(parsed[0], parsed[2])
        kind, processes = gate_request()
        if kind is not None:
            device, problems = check_training_device(kind, processes, bool(parsed[2].bf16))
            found = {"device": {"kind": device.kind, "count": device.count, "name": device.name,
                                "bf16": device.bf16}, "torch_build": torch_build()}
    if not wait_at_gate(found, problems, lambda: flag.requested):
        return flag.exit_code if flag.requested else 2
    return parsed


def _quiet_bars(training_args) -> None:
    """train.log gets lines, not progress-bar frames: the Trainer prints its log dicts instead of a bar
    (``disable_tqdm``), transformers' and datasets' loading bars are off; ``bgeft.train:`` lines carry the
    progress to the launcher (bgeft.console_progress)."""
    import datasets
    from transformers.utils import logging as hf_logging

    training_args.disable_tqdm = True
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: python -m bgeft.train.worker TASK [FlagEmbedding arguments]", file=sys.stderr)
        return 2
    from bgeft.config.eval_section import pop_worker_args
    from bgeft.config.tasks import TASKS
    from bgeft.console_progress import trainer_callback

    _die_with_parent()
    flag = _Preemption()
    signal.signal(signal.SIGTERM, flag.handler)
    signal.signal(signal.SIGINT, flag.handler)
    task = TASKS[argv[0]]
    eval_cfg, argv = pop_worker_args(argv)
    parsed = _parse_and_check(task, argv[1:], flag)
    if isinstance(parsed, int):
        return parsed
    model_args, data_args, training_args = parsed

    if eval_cfg:  # the recipe's eval: section (bgeft.eval.trainer_hook)
        from bgeft.eval.trainer_hook import hold_eval_strategy, install
        held = hold_eval_strategy(training_args)
    _quiet_bars(training_args)
    runner = task.runner_class()(model_args=model_args, data_args=data_args, training_args=training_args)
    if eval_cfg:
        install(runner, task.name, eval_cfg, held,
                _restore_encoder_checkpoint if task.name in ENCODER_TASKS else None)
    runner.trainer.add_callback(_callback(flag))
    runner.trainer.add_callback(trainer_callback())
    resume = training_args.resume_from_checkpoint
    if resume and task.name in ENCODER_TASKS and not training_args.deepspeed:
        _restore_encoder_checkpoint(runner, resume)
        runner.trainer._load_from_checkpoint = lambda *args, **kwargs: None
    Path(training_args.output_dir).mkdir(parents=True, exist_ok=True)
    runner.trainer.train(resume_from_checkpoint=resume)
    if flag.requested:
        print(f"bgeft.train.worker: {'interrupted' if flag.exit_code == INTERRUPTED_EXIT else 'pre-empted'}; "
              f"checkpoint saved under {training_args.output_dir}; continue with `bgeft train RECIPE --resume`",
              file=sys.stderr, flush=True)
        return flag.exit_code
    runner.trainer.save_model()
    runner.trainer.save_state()   # trainer_state.json with the whole loss curve (`bgeft reproduce --check`)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code) if code in (PREEMPTED_EXIT, INTERRUPTED_EXIT) else sys.exit(code)
