"""Pick the inference device for evaluation: CUDA, Ascend NPU (``torch_npu``) or CPU."""
from __future__ import annotations

import platform

from ..errors import UserError


def npu_available() -> bool:
    try:
        import torch
        import torch_npu  # noqa: F401
        return bool(torch.npu.is_available())
    except Exception:
        return False


def pick_devices(device: str | None = None) -> list[str]:
    """``None``/``"auto"`` -> the first CUDA GPU, else the first NPU, else CPU.

    ``"cuda"``/``"npu"`` mean every visible device of that kind (FlagEmbedding then encodes with
    one process per device); ``"cuda:1"`` or ``"cuda:0,cuda:1"`` name devices exactly.
    """
    import torch

    spec = (device or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return ["cuda:0"]
        if npu_available():
            return ["npu:0"]
        return ["cpu"]
    if spec == "cpu":
        return ["cpu"]
    if spec == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA GPU is visible (check nvidia-smi / CUDA_VISIBLE_DEVICES) or use --device cpu")
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if spec == "npu":
        if not npu_available():
            raise UserError("--device npu: torch_npu is not importable or no Ascend NPU is visible; use --device cpu")
        return [f"npu:{i}" for i in range(torch.npu.device_count())]
    devices = [d.strip() for d in spec.split(",") if d.strip()]
    for d in devices:
        kind = d.split(":")[0]
        if kind not in ("cuda", "npu", "cpu", "mps"):
            raise UserError(f"--device {device!r}: unknown device {d!r}; use auto, cpu, cuda, cuda:N, npu or npu:N")
        if kind == "cuda" and not torch.cuda.is_available():
            raise UserError(f"--device {device!r}: no CUDA GPU is visible; use --device cpu")
        if kind == "npu" and not npu_available():
            raise UserError(f"--device {device!r}: no Ascend NPU is visible (torch_npu); use --device cpu")
    return devices


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


def half_precision_default(devices: list[str]) -> bool:
    """fp16 on accelerators (as FlagEmbedding's evaluators do), fp32 on CPU."""
    return devices[0].split(":")[0] in ("cuda", "npu")
