"""One way to name inference devices on every verb, and the machine's training device.

Device syntax (``--device SPEC`` on ``data mine``, ``data score``, ``eval …`` and in pipelines):

* ``auto`` (default): the first CUDA GPU, else the first Ascend NPU, else the CPU;
* ``cpu``; ``cuda`` / ``npu``: every visible device of that kind (one encoding process per device);
* ``cuda:1``, ``npu:0``; a comma list ``cuda:0,cuda:1`` names devices exactly.

The old ``--devices cuda:0 cuda:1`` of ``data mine``/``data score`` still works (joined with commas)
and prints a deprecation note.
"""
from __future__ import annotations

import argparse
import platform
from dataclasses import dataclass

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
    if torch.cuda.is_available():
        return Device("cuda", torch.cuda.device_count(), torch.cuda.is_bf16_supported(),
                      torch.cuda.get_device_name(0))
    return Device("cpu", 1, True, "cpu")


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
