"""From a validated recipe to a launch plan: device detection, node layout, the argv to run.

The plan is a plain value (argv list, env additions, output dir) that ``--dry-run`` prints and
``train/process.execute`` runs. One process: ``python -m bgeft.train.worker TASK …`` (the FlagEmbedding runner of
the task, plus a pre-emption callback); more, or DeepSpeed (which needs the distributed env
torchrun sets up): ``python -m torch.distributed.run … -m bgeft.train.worker TASK …`` (= torchrun).
"""
from __future__ import annotations

import os
import shlex
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bgeft.config import eval_section
from bgeft.config.recipe import Recipe, to_argv
from bgeft.config.redaction import split_secrets
from bgeft.errors import UserError
from bgeft.models.devices import Device, detect_device  # noqa: F401 - re-exported for train_cmd/envcheck

WORKER = "bgeft.train.worker"  # the training process: FlagEmbedding's runner + checks, gate, pre-emption
DEFAULT_MASTER_PORT = 29500
# Seconds between SIGTERM and SIGKILL: the ONE grace period of a pre-empted run. The same number is
# docker run --stop-timeout (scripts/docker_common.sh), compose's stop_grace_period and the manifests'
# terminationGracePeriodSeconds (tests/deploy checks they agree); BGEFT_STOP_GRACE_SECONDS changes it.
STOP_GRACE_SECONDS = 900


@dataclass(frozen=True)
class NodeLayout:
    nnodes: int = 1
    node_rank: int = 0
    nproc_per_node: int | None = None
    master_addr: str | None = None
    master_port: int = DEFAULT_MASTER_PORT
    source: str = "defaults"


@dataclass
class Plan:
    argv: list[str]
    env: dict[str, str]
    output_dir: Path
    nproc_per_node: int
    layout: NodeLayout
    device: Device
    task: str
    notes: list[str] = field(default_factory=list)
    # secrets (model.token, training.hub_token) travel to the worker here, never in argv; never shown
    secret_env: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.layout.nnodes

    def command_line(self, argv: list[str] | None = None) -> str:
        """``ENV=… argv…`` as one copy-pasteable shell line (``argv`` defaults to the plan's own)."""
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items()))
        return (env + " " if env else "") + shlex.join(self.argv if argv is None else argv)

    def render(self) -> str:
        lines = [
            f"task:        {self.task}",
            f"device:      {self.device.kind} x{self.device.count}"
            + (f" ({self.device.name})" if self.device.name else ""),
            f"processes:   {self.nproc_per_node} per node x {self.layout.nnodes} node(s) "
            f"(node rank {self.layout.node_rank}; layout from {self.layout.source})",
            f"output_dir:  {self.output_dir}",
        ]
        lines += [f"note:        {n}" for n in self.notes]
        lines.append("command:")
        lines.append("  " + self.command_line())
        return "\n".join(lines)


def _int_env(env, name: str) -> int | None:
    raw = env.get(name)
    if raw in (None, ""):
        return None
    if name.endswith("NPROC_PER_NODE") and raw in ("auto", "gpu", "npu"):
        return None  # Kubeflow's nprocPerNode: auto -> every visible device, as launch.nproc_per_node: auto
    value = raw.split(":")[-1]  # PET_NNODES may be "min:max"
    try:
        return int(value)
    except ValueError:
        raise UserError(f"environment variable {name}={raw!r} is not an integer; fix the job spec") from None


def _port(env, name: str) -> int | None:
    port = _int_env(env, name)
    if port is not None and not 1 <= port <= 65535:
        raise UserError(f"environment variable {name}={env.get(name)!r} is not a TCP port (1-65535); "
                        "fix the job spec (the default is 29500)")
    return port


def node_layout(env=None) -> NodeLayout:
    """Node layout from NNODES/NODE_RANK/NPROC_PER_NODE/MASTER_ADDR/MASTER_PORT, else Kubeflow's
    PET_* variables, else an Indexed Job's JOB_COMPLETION_INDEX, else Volcano's VC_* variables."""
    env = os.environ if env is None else env
    sources = []
    nnodes = _int_env(env, "NNODES")
    rank = _int_env(env, "NODE_RANK")
    nproc = _int_env(env, "NPROC_PER_NODE")
    addr = env.get("MASTER_ADDR") or None
    port = _port(env, "MASTER_PORT")
    if any(v is not None for v in (nnodes, rank, nproc, addr, port)):
        sources.append("NNODES/NODE_RANK/MASTER_*")
    if any(k.startswith("PET_") for k in env):
        nnodes = nnodes if nnodes is not None else _int_env(env, "PET_NNODES")
        rank = rank if rank is not None else _int_env(env, "PET_NODE_RANK")
        nproc = nproc if nproc is not None else _int_env(env, "PET_NPROC_PER_NODE")
        addr = addr or env.get("PET_MASTER_ADDR") or None
        port = port if port is not None else _port(env, "PET_MASTER_PORT")
        sources.append("Kubeflow PET_*")
    if rank is None and env.get("JOB_COMPLETION_INDEX") not in (None, ""):
        rank = _int_env(env, "JOB_COMPLETION_INDEX")
        sources.append("Indexed Job JOB_COMPLETION_INDEX")
    if rank is None and env.get("VC_TASK_INDEX") not in (None, ""):
        rank, vc_nnodes, vc_addr = _volcano(env)
        nnodes = nnodes if nnodes is not None else vc_nnodes
        addr = addr or vc_addr
        sources.append("Volcano VC_*")
    nnodes = nnodes or 1
    rank = rank or 0
    if rank >= nnodes:
        raise UserError(f"node rank {rank} is not below the node count {nnodes} "
                        f"(layout from {', '.join(sources)}); fix NNODES / NODE_RANK in the job spec")
    if nnodes > 1 and not addr:
        raise UserError(f"{nnodes} nodes but no MASTER_ADDR; set MASTER_ADDR to node 0's address "
                        "(the headless Service DNS name of pod 0 in Kubernetes)")
    return NodeLayout(nnodes, rank, nproc, addr, port or DEFAULT_MASTER_PORT, ", ".join(sources) or "defaults")


def _volcano(env) -> tuple[int, int | None, str | None]:
    """(global node rank, node count, master address) of a Volcano Job pod.

    VC_TASK_INDEX counts within one task, so master-0 and worker-0 would both be rank 0. Volcano's
    pytorch plugin sets the global RANK (master 0, worker i -> i + 1) and WORLD_SIZE (pods)
    (volcano-sh/volcano pkg/controllers/job/plugins/distributed-framework/pytorch/pytorch.go);
    without it the rank is this pod's place in the VC_<TASK>_HOSTS lists, master task first."""
    tasks = sorted((k for k in env if k.startswith("VC_") and k.endswith("_HOSTS")),
                   key=lambda k: ("MASTER" not in k, k))
    hosts = [h for k in tasks for h in env[k].split(",") if h]
    addr = hosts[0] if hosts else None
    if env.get("RANK") not in (None, "") and env.get("WORLD_SIZE") not in (None, ""):
        return _int_env(env, "RANK"), _int_env(env, "WORLD_SIZE"), addr
    if len(tasks) <= 1:
        return _int_env(env, "VC_TASK_INDEX"), len(hosts) or None, addr
    me = env.get("HOSTNAME") or socket.gethostname()
    short = [h.split(".")[0] for h in hosts]
    if me.split(".")[0] not in short:
        raise UserError(f"Volcano job with tasks {', '.join(tasks)}: this pod's hostname {me!r} is in none of them, "
                        "so its node rank is unknown; enable Volcano's pytorch plugin (spec.plugins: pytorch: "
                        "[--master=master, --worker=worker]) or set NODE_RANK in the pod spec")
    return short.index(me.split(".")[0]), len(hosts), addr


def stop_grace_seconds(env=None) -> int:
    """The grace period between SIGTERM and SIGKILL (BGEFT_STOP_GRACE_SECONDS, default STOP_GRACE_SECONDS)."""
    env = os.environ if env is None else env
    value = _int_env(env, "BGEFT_STOP_GRACE_SECONDS")
    if value is not None and value < 1:
        raise UserError(f"BGEFT_STOP_GRACE_SECONDS={value}: use a number of seconds above 0 (default "
                        f"{STOP_GRACE_SECONDS})")
    return STOP_GRACE_SECONDS if value is None else value


def _precision(recipe: Recipe, device: Device) -> tuple[dict, list[str]]:
    """Training flags for the device's precision, and problems with what the recipe asked."""
    launch, training = recipe.section("launch"), recipe.section("training")
    asked = launch.get("precision", "auto")
    if training.get("bf16"):
        asked = "bf16"
    elif training.get("fp16"):
        asked = "fp16"
    problems = []
    if asked == "auto":
        asked = "fp32" if device.kind == "cpu" else ("bf16" if device.bf16 else "fp16")
    if asked == "bf16" and device.kind != "cpu" and not device.bf16:
        problems.append(f"bf16 was asked for but this {device.kind} device ({device.name or 'unknown'}) does not "
                        "support it; set launch.precision: fp16 (or auto)")
    if asked == "fp16" and device.kind == "cpu":
        problems.append("fp16 needs a CUDA GPU or an Ascend NPU, and this machine has neither; set "
                        "launch.precision: fp32 (or auto) to train on the CPU")
    return {"bf16": asked == "bf16", "fp16": asked == "fp16"}, problems


def determinism_env(device: Device, seed: int) -> dict[str, str]:
    """Environment the deterministic switch adds before any process starts. transformers'
    full_determinism sets the same inside the Trainer, which is too late for what is read when the
    process group or the first cuBLAS handle is created (HCCL, cuBLAS workspaces)."""
    env = {"PYTHONHASHSEED": str(seed)}
    if device.kind == "cuda":
        env["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"   # deterministic cuBLAS reductions (CUDA >= 10.2)
    elif device.kind == "npu":
        env["HCCL_DETERMINISTIC"] = "true"           # deterministic HCCL reductions (Ascend)
    return env


def make_plan(recipe: Recipe, device: Device, env=None, python: str | None = None,
              resume_from: Path | None = None) -> Plan:
    """Turn a validated recipe into the exact command; raise UserError on device problems."""
    env = os.environ if env is None else env
    launch = recipe.section("launch")
    layout = node_layout(env)
    problems: list[str] = []
    wanted = launch.get("device", "auto")
    if wanted not in ("auto", device.kind):
        problems.append(f"launch.device is {wanted!r} but this machine has {device.kind} "
                        f"({device.name or 'no accelerator'}); set launch.device: auto or run on a {wanted} machine")
    nproc = layout.nproc_per_node or launch.get("nproc_per_node", "auto")
    if nproc == "auto":
        nproc = device.count if device.kind != "cpu" else 1
    if device.kind != "cpu" and nproc > device.count:
        problems.append(f"launch.nproc_per_node is {nproc} but only {device.count} {device.kind} device(s) are "
                        "visible; lower it or set it to auto")
    nnodes = layout.nnodes if layout.source != "defaults" else launch.get("nnodes", 1)
    if nnodes != layout.nnodes:
        layout = NodeLayout(nnodes, layout.node_rank, layout.nproc_per_node, layout.master_addr,
                            layout.master_port, "recipe launch.nnodes")
        if nnodes > 1 and not layout.master_addr:
            problems.append(f"launch.nnodes is {nnodes} but MASTER_ADDR is not set; set MASTER_ADDR, NODE_RANK "
                            "on every node (or use the Kubernetes manifests in k8s/)")
    training = dict(recipe.section("training"))
    flags, prec_problems = _precision(recipe, device)
    problems += prec_problems
    world = nproc * layout.nnodes
    notes = []
    one_process_asked = "launch.nproc_per_node" in recipe.origins and launch.get("nproc_per_node") == 1
    if training.get("negatives_cross_device") and world == 1 and one_process_asked:
        # the one rule for "one process" (run_docker_training.sh single/cpu, bgeft k8s on one GPU pass
        # launch.nproc_per_node=1): cross-device negatives need several processes, so they go off
        training["negatives_cross_device"] = False
        notes.append("one process (launch.nproc_per_node=1 given): training.negatives_cross_device switched off")
    elif training.get("negatives_cross_device") and world == 1:
        problems.append("training.negatives_cross_device needs more than one process, and this launch has one; "
                        "set it to false or run on several GPUs/NPUs/nodes")
    if problems:
        raise UserError(f"{len(problems)} problem(s) launching {recipe.path} on this machine:\n  "
                        + "\n  ".join(problems))
    training.update(flags)
    extra_env: dict[str, str] = {}
    if device.kind == "cpu":
        training["use_cpu"] = True
        if world > 1:
            training["ddp_backend"] = "gloo"
        notes.append("no GPU/NPU: training on the CPU in fp32 (slow; fine for the demo recipes)")
    elif device.kind == "npu":
        if world > 1:
            training["ddp_backend"] = "hccl"
        extra_env["HCCL_CONNECT_TIMEOUT"] = env.get("HCCL_CONNECT_TIMEOUT", "1200")
    if launch.get("deepspeed"):
        training["deepspeed"] = launch["deepspeed"]
    if launch.get("deterministic"):
        training["full_determinism"] = True
        extra_env.update(determinism_env(device, training.get("seed", 42)))
        notes.append("deterministic: full_determinism and " + ", ".join(sorted(determinism_env(device, 0)))
                     + " (deterministic kernels only: slower; see docs/reproducibility.md)")
    if resume_from is not None:
        training["resume_from_checkpoint"] = str(resume_from)
        notes.append(f"resuming from {resume_from}")
    extra_env.setdefault("TOKENIZERS_PARALLELISM", "false")
    notes += eval_section.plan_notes(recipe, world)
    clean, secret_env = split_secrets({"model": recipe.section("model"), "training": training})
    args = (eval_section.worker_args(recipe) + to_argv(clean["model"]) + to_argv(recipe.section("data"))
            + to_argv(clean["training"]))
    python = python or sys.executable
    task = recipe.data["task"]
    if world == 1 and not launch.get("deepspeed"):
        argv = [python, "-m", WORKER, task, *args]
    else:
        argv = [python, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
        if layout.nnodes > 1:
            argv += ["--nnodes", str(layout.nnodes), "--node_rank", str(layout.node_rank),
                     "--master_addr", str(layout.master_addr), "--master_port", str(layout.master_port)]
        else:
            argv += ["--standalone"]
        argv += ["-m", WORKER, task, *args]
        # torchrun SIGKILLs its workers 30 s after a SIGTERM unless told otherwise (torch 2.13:
        # torch/distributed/launcher/api.py reads TORCH_ELASTIC_SHUTDOWN_TIMEOUT): give them the grace
        # period, less a margin for the agent itself to exit before the runtime's SIGKILL.
        grace = stop_grace_seconds(env)
        extra_env.setdefault("TORCH_ELASTIC_SHUTDOWN_TIMEOUT",
                             env.get("TORCH_ELASTIC_SHUTDOWN_TIMEOUT") or str(max(grace - 30, grace // 2)))
    return Plan(argv, extra_env, Path(training["output_dir"]), nproc, layout, device, task, notes, secret_env)
