"""The environment record: what a run ran on. ONE builder, used by ``environment.json`` of every run
and by ``bgeft env --json`` (so two machines can be diffed before a run, and ``bgeft reproduce``
can diff a recorded run against this machine).

Holds the Python and package versions, the torch build (CUDA / cuDNN / CANN), the git sha, the
device, and, inside a bgeft image, the image's own record (``/etc/bgeft-image.json``: base image
digest, version, revision). Runs add their launch layout and the sha256 of every training file.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

PACKAGES = ("bgeft", "FlagEmbedding", "transformers", "torch", "torch_npu", "deepspeed", "accelerate",
            "peft", "sentence-transformers", "faiss-cpu", "faiss-gpu-cu12", "datasets", "tokenizers")
IMAGE_RECORD = Path("/etc/bgeft-image.json")


def git_sha(where: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def package_versions() -> dict[str, str]:
    versions = {}
    for dist in PACKAGES:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def torch_build() -> dict:
    """The accelerator stack torch was built for / runs on: CUDA and cuDNN versions, CANN on Ascend."""
    try:
        import torch
    except ImportError:
        return {}
    build = {"torch": torch.__version__, "cuda": torch.version.cuda, "hip": getattr(torch.version, "hip", None)}
    try:
        build["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    except RuntimeError:
        build["cudnn"] = None
    home = os.environ.get("ASCEND_TOOLKIT_HOME", "")
    # the CANN images install into .../cann-<version> (Dockerfile.npu checks the same convention)
    build["cann"] = home.rsplit("cann-", 1)[1] if "cann-" in home else None
    return build


def image_record(path: Path | None = None) -> dict | None:
    """The bgeft image's own record when running inside one (None outside an image)."""
    try:
        return json.loads((path or IMAGE_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def record(device, where: Path, build: dict | None = None) -> dict:
    """The environment record of this machine; ``device`` is a launch.Device, ``where`` the directory
    whose git checkout is recorded (the recipe's, else the working directory's). ``build``: the torch
    build as a training process reported it (``bgeft train`` itself never imports torch)."""
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "torch_build": torch_build() if build is None else build,
        "git_sha": git_sha(where) or git_sha(Path.cwd()),
        "device": {"kind": device.kind, "count": device.count, "name": device.name, "bf16": device.bf16},
        "image": image_record(),
    }
