"""One way to name inference devices on every verb, and the machine's training device.

Device syntax (``--device SPEC`` on ``data mine``, ``data score``, ``eval …`` and in pipelines):

* ``auto`` (default): the first CUDA GPU, else the first Ascend NPU, else the CPU;
* ``cpu``; ``cuda`` / ``npu``: every visible device of that kind (one encoding process per device);
* ``cuda:1``, ``npu:0``; a comma list ``cuda:0,cuda:1`` names devices exactly.

The old ``--devices cuda:0 cuda:1`` of ``data mine``/``data score`` still works (joined with commas)
and prints a deprecation note.

``bgeft train`` plans with ``probe_device`` (no torch: the visible-devices variables, ``nvidia-smi``,
``/proc/driver/nvidia/gpus``, ``/dev/davinci*``, ``npu-smi``); the worker, which imports torch anyway,
re-checks what the plan asked of the device (``check_training_device``) before the model is built.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bgeft.errors import UserError

KINDS = ("cuda", "npu", "cpu", "mps")
SYNTAX = "auto, cpu, cuda, cuda:N, npu, npu:N or a comma list such as cuda:0,cuda:1"


@dataclass(frozen=True)
class Device:
    """The machine's training device: what ``bgeft train`` plans for."""

    kind: str                 # "cuda" | "npu" | "cpu"
    count: int                # visible accelerators (1 for cpu)
    bf16: bool = False
    name: str = ""


def npu_available() -> bool:
    try:
        import torch
        import torch_npu  # noqa: F401
        return bool(torch.npu.is_available())
    except Exception:
        return False


def detect_device() -> Device:
    """Ascend when torch_npu imports, else CUDA when available, else CPU."""
    import torch
    try:
        import torch_npu  # noqa: F401
        if torch.npu.is_available():
            bf16 = bool(getattr(torch.npu, "is_bf16_supported", lambda: False)())
            return Device("npu", torch.npu.device_count(), bf16, torch.npu.get_device_name(0))
    except ImportError:
        pass
    if torch.cuda.is_available():  # native bf16 only: emulated bf16 (V100) is far slower than fp16
        return Device("cuda", torch.cuda.device_count(), torch.cuda.is_bf16_supported(including_emulation=False),
                      torch.cuda.get_device_name(0))
    return Device("cpu", 1, True, "cpu")


def _run(argv: list[str]) -> str | None:
    """stdout of a device tool, None when it is missing or fails (a driver without devices)."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def _visible(env, name: str) -> list[str] | None:
    """The entries of a visible-devices variable (None when unset; [] when it hides every device)."""
    raw = env.get(name)
    if raw is None:
        return None
    entries = [e.strip() for e in raw.split(",") if e.strip()]
    out = []
    for e in entries:  # CUDA stops at the first invalid entry; -1 hides everything after it
        if e.startswith("-"):
            break
        out.append(e)
    return out


def parse_nvidia_smi(text: str) -> list[tuple[int, str, float | None, str]]:
    """``nvidia-smi --query-gpu=index,name,compute_cap,uuid --format=csv,noheader`` -> (index, name, cc, uuid)."""
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 4 or not parts[0].isdigit():
            continue
        try:
            cc = float(parts[2])
        except ValueError:
            cc = None  # "[N/A]" on old drivers
        gpus.append((int(parts[0]), parts[1], cc, parts[3]))
    return gpus


def parse_npu_smi(text: str) -> list[tuple[int, str]]:
    """``npu-smi info`` -> (NPU id, chip name) for each NPU row of its table (``| 0     910B3  | OK ...``)."""
    found = []
    for line in text.splitlines():
        m = re.match(r"\|\s*(\d+)\s+([0-9A-Za-z][\w-]*)\s*\|\s*(OK|Warning|Alarm|Critical|\w+)\s*\|", line)
        if m and not m.group(2).isdigit():
            found.append((int(m.group(1)), m.group(2)))
    return found


def _torch_build() -> tuple[bool, bool]:
    """(torch has CUDA, torch_npu installed), read without importing torch."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return False, False
    try:
        version = (Path(list(spec.submodule_search_locations)[0]) / "version.py").read_text(encoding="utf-8")
    except OSError:
        return False, False
    cuda = re.search(r"^cuda\b[^=]*=\s*(.+)$", version, re.M)
    has_cuda = bool(cuda) and cuda.group(1).strip() not in ("None", "")
    return has_cuda, importlib.util.find_spec("torch_npu") is not None


def _npu_probe(env, run, root: Path) -> Device | None:
    devices = sorted(int(m.group(1)) for p in (root / "dev").glob("davinci*")
                     if (m := re.fullmatch(r"davinci(\d+)", p.name)))
    table = parse_npu_smi(run(["npu-smi", "info"]) or "")
    ids = [i for i, _ in table] or devices
    visible = _visible(env, "ASCEND_RT_VISIBLE_DEVICES")
    if visible is not None:
        ids = [i for i in ids if str(i) in visible] if all(v.isdigit() for v in visible) else ids[:len(visible)]
    if not ids:
        return None
    name = dict(table).get(ids[0], "Ascend NPU") if table else "Ascend NPU"
    # Ascend 910B / 910C (Atlas A2 / A3) compute in bf16; 910A and the 310 series do not
    return Device("npu", len(ids), bool(re.search(r"910(B|C|_93)", name)), name)


def _cuda_probe(env, run, root: Path) -> Device | None:
    visible = _visible(env, "CUDA_VISIBLE_DEVICES")
    if visible == []:
        return None
    gpus = parse_nvidia_smi(run(["nvidia-smi", "--query-gpu=index,name,compute_cap,uuid", "--format=csv,noheader"])
                           or "")
    if not gpus:  # no nvidia-smi in the image: the driver's own listing
        for i, info in enumerate(sorted((root / "proc/driver/nvidia/gpus").glob("*/information"))):
            text = info.read_text(encoding="utf-8", errors="replace")
            model = re.search(r"^Model:\s*(.+)$", text, re.M)
            gpus.append((i, model.group(1).strip() if model else "NVIDIA GPU", None, ""))
    if visible is not None and all(v.isdigit() for v in visible):
        gpus = [g for v in visible for g in gpus if g[0] == int(v)]
    elif visible is not None and any(v.startswith("MIG-") for v in visible):
        gpus = gpus[:1] * len(visible)  # MIG instances: one device each, of the first GPU's kind
    elif visible is not None:  # GPU-… UUIDs (a unique prefix is enough)
        gpus = [g for v in visible for g in gpus if g[3].startswith(v)]
    if not gpus:
        return None
    caps = [g[2] for g in gpus]
    # bf16 runs natively from compute capability 8.0 (Ampere); unknown capability: plan fp16, the worker re-checks
    return Device("cuda", len(gpus), all(c is not None and c >= 8.0 for c in caps), gpus[0][1])


def probe_device(env=None, run=_run, root: str | Path = "/", build: tuple[bool, bool] | None = None) -> Device:
    """The training device as ``detect_device`` sees it, without importing torch (seconds saved on every
    ``bgeft train``): Ascend when torch_npu is installed and NPUs are present, else CUDA when torch is a
    CUDA build and GPUs are visible, else the CPU. The worker re-checks the device with torch.
    ``run``, ``root`` and ``build`` (torch has CUDA, torch_npu installed) stand in for the machine in tests."""
    env, root = (os.environ if env is None else env), Path(root)
    has_cuda, has_npu = _torch_build() if build is None else build
    if has_npu and (device := _npu_probe(env, run, root)):
        return device
    if has_cuda and (device := _cuda_probe(env, run, root)):
        return device
    return Device("cpu", 1, True, "cpu")


def check_training_device(kind: str, processes: int, bf16: bool) -> tuple[Device, list[str]]:
    """In the worker (torch imported): the device as torch sees it, and what it cannot do of what the plan
    asked (``processes`` on this node, bf16)."""
    if kind == "cpu":
        return Device("cpu", 1, True, "cpu"), []
    device = detect_device()
    problems = []
    if device.kind != kind:
        problems.append(f"the plan is for {kind} (the device tools list it) but torch sees {device.kind} here: "
                        f"install a {kind} build of torch, or check the driver and the visible-devices variable")
    elif processes > device.count:
        problems.append(f"launch.nproc_per_node is {processes} but torch sees only {device.count} {kind} device(s); "
                        "lower it or set it to auto")
    if bf16 and device.kind == kind and not device.bf16:
        problems.append(f"bf16 was asked for but this {kind} device ({device.name or 'unknown'}) does not support "
                        "it; set launch.precision: fp16 (or auto)")
    return device, problems


def parse_devices(spec: str | list[str] | None = None) -> list[str]:
    """The device list a SPEC names (see the module docstring); a list is joined with commas first."""
    import torch

    if isinstance(spec, (list, tuple)):
        spec = ",".join(spec)
    text = (spec or "auto").strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return ["cuda:0"]
        if npu_available():
            return ["npu:0"]
        return ["cpu"]
    if text == "cpu":
        return ["cpu"]
    if text == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA GPU is visible (check nvidia-smi / CUDA_VISIBLE_DEVICES) "
                            "or use --device cpu")
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if text == "npu":
        if not npu_available():
            raise UserError("--device npu: torch_npu is not importable or no Ascend NPU is visible; use --device cpu")
        return [f"npu:{i}" for i in range(torch.npu.device_count())]
    devices = [d.strip() for d in text.split(",") if d.strip()]
    for d in devices:
        kind, _, index = d.partition(":")
        if kind not in KINDS or (index and not index.isdigit()):
            raise UserError(f"--device {spec!r}: unknown device {d!r}; use {SYNTAX}")
        if kind == "cuda" and not torch.cuda.is_available():
            raise UserError(f"--device {spec!r}: no CUDA GPU is visible; use --device cpu")
        if kind == "npu" and not npu_available():
            raise UserError(f"--device {spec!r}: no Ascend NPU is visible (torch_npu); use --device cpu")
    return devices or ["cpu"]


def half_precision(devices: list[str]) -> bool:
    """Half precision on accelerators (as FlagEmbedding's evaluators do), fp32 on the CPU."""
    return devices[0].split(":")[0] in ("cuda", "npu")


def precision(devices: list[str], fp16: bool | None, cast_here: bool = True):
    """``(fp16, half_dtype)`` of a model on ``devices``: half precision on accelerators unless ``fp16`` is
    false; ``half_dtype`` is the type to cast the weights to when the model is loaded here on one device
    (``None``: fp32, a model object that keeps its own dtype, or FlagEmbedding's multi-device pool, which
    casts to fp16 itself)."""
    on = half_precision(devices) and (fp16 is None or bool(fp16))
    return on, half_dtype(devices[0]) if on and cast_here and len(devices) == 1 else None


def half_dtype(device: str):
    """The half type an accelerator computes in: bf16 where it has it (CUDA compute capability >= 8,
    Ascend NPUs that report bf16), fp16 otherwise; ``None`` on the CPU (fp32 there)."""
    import torch

    kind, _, idx = device.partition(":")
    if kind == "cuda":
        major, _ = torch.cuda.get_device_capability(int(idx or 0))
        return torch.bfloat16 if major >= 8 else torch.float16
    if kind == "npu":
        return torch.bfloat16 if getattr(torch.npu, "is_bf16_supported", lambda: True)() else torch.float16
    return None


def device_name(device: str) -> str:
    """Human-readable name of ``device`` (GPU/NPU model, or the CPU model)."""
    import torch

    kind, _, idx = device.partition(":")
    if kind == "cuda":
        return torch.cuda.get_device_name(int(idx or 0))
    if kind == "npu":
        return torch.npu.get_device_name(int(idx or 0))
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def add_device_argument(parser: argparse.ArgumentParser, legacy: bool = False) -> None:
    """``--device SPEC`` (and, where a verb had it, the deprecated ``--devices A B``)."""
    parser.add_argument("--device", default="auto", metavar="SPEC", help=f"{SYNTAX} (default auto)")
    if legacy:
        parser.add_argument("--devices", nargs="+", default=None, help=argparse.SUPPRESS)


def device_spec(args) -> str:
    """The one device SPEC of parsed ``args`` (``--devices A B`` -> ``A,B`` with a deprecation note)."""
    old = getattr(args, "devices", None)
    if old:
        spec = ",".join(old)
        from bgeft.console import say

        say(f"note: --devices is deprecated; write --device {spec}")
        return spec
    return args.device
