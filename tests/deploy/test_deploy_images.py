"""What the images' build steps prove, run here without Docker (issue 10 items 1, 6, 15, 19): the
Ascend verify step with a torch device backend that cannot load (no driver), the GPU architecture
check, the arm64 stop of the CUDA image and the DeepSpeed op build."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.deploy.tools import REPO, dockerfile_args

VERIFY = REPO / "scripts" / "verify_image.py"


def _fake_npu_backend(site: Path) -> None:
    """A distribution registering a torch device backend (entry point group torch.backends, as torch_npu
    does) whose autoload fails like torch_npu without libascend_hal.so."""
    (site / "fake_npu_backend.py").write_text(
        "def autoload():\n    raise ImportError('libascend_hal.so: cannot open shared object file')\n")
    info = site / "fake_npu-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-npu\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[torch.backends]\ntorch_npu = fake_npu_backend:autoload\n")


def _run(args, **env):
    return subprocess.run(args, capture_output=True, text=True, timeout=300,
                          env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env})


def _npu_verify_env() -> dict[str, str]:
    """The environment assignments in front of Dockerfile.npu's verify_image.py step."""
    text = (REPO / "Dockerfile.npu").read_text()
    m = re.search(r"^RUN ((?:\w+=\S+ )+)python3 scripts/verify_image.py", text, flags=re.M)
    assert m, "Dockerfile.npu: the verify step runs scripts/verify_image.py"
    return dict(pair.split("=", 1) for pair in m.group(1).split())


def test_npu_verify_step_survives_a_backend_without_driver(tmp_path):
    """Item 1: before the fix `import torch` in the verify step raised "Failed to load the backend
    extension: torch_npu"; the step's own environment makes it pass, with the pin read from metadata."""
    _fake_npu_backend(tmp_path)
    broken = _run([sys.executable, "-c", "import torch"], PYTHONPATH=str(tmp_path))
    assert broken.returncode != 0
    assert "Failed to load the backend extension: torch_npu" in broken.stderr
    req = tmp_path / "req.txt"
    req.write_text("fake-npu==1.0\n")
    env = _npu_verify_env()
    assert env["TORCH_DEVICE_BACKEND_AUTOLOAD"] == "0"
    res = _run([sys.executable, str(VERIFY), str(req), "--import", "torch"], PYTHONPATH=str(tmp_path), **env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ok  fake-npu==1.0 (pinned ==1.0)" in res.stdout and "ok  import torch" in res.stdout


def test_cuda_image_targets_blackwell():
    """Item 6: the default base is a CUDA 12.8+ build and the verify step requires Blackwell kernels."""
    args = dockerfile_args(REPO / "Dockerfile")
    major, minor = map(int, args["CUDA_VERSION"].split("."))
    assert (major, minor) >= (12, 8)
    assert f"-cuda{args['CUDA_VERSION']}-" in args["BASE_IMAGE"]
    text = (REPO / "Dockerfile").read_text()
    arch = re.search(r'^ARG REQUIRE_ARCH="([^"]+)"', text, flags=re.M).group(1).split()
    assert {"sm_90", "sm_100", "sm_120"} <= set(arch)
    assert 'archs="${REQUIRE_ARCH}"' in text and '--require-arch "${archs}"' in text
    # 12.6 stays a documented build argument
    assert "--build-arg BASE_IMAGE=pytorch/pytorch:2.13.0-cuda12.6-cudnn9-devel --build-arg CUDA_VERSION=12.6" in text


def test_verify_image_prints_and_checks_the_arch_list(tmp_path):
    req = tmp_path / "req.txt"
    req.write_text("")
    res = _run([sys.executable, str(VERIFY), str(req), "--require-arch", "sm_100", "sm_120"])
    assert res.returncode == 1
    assert "ok  torch CUDA architectures: none" in res.stdout     # this machine's torch is a CPU build
    assert "torch: built without sm_100, sm_120 (architectures: none); use a base image with a newer CUDA" \
        in res.stderr


def _preflight(tmp_path, arch: str, device: str):
    """Step 0 of the Dockerfile, run by bash with a fake `uname -m`."""
    text = (REPO / "Dockerfile").read_text()
    m = re.search(r"^RUN (arch=\"\$\(uname -m\)\";.*?fi)\n", text, flags=re.M | re.S)
    assert m, "Dockerfile step 0 (the platform check) not found"
    script = m.group(1).replace("\\\n", "")   # docker joins continued lines
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "uname").write_text(f"#!/bin/sh\necho {arch}\n")
    (fake / "uname").chmod(0o755)
    return subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True, text=True,
                          env={"PATH": f"{fake}:/usr/bin:/bin", "DEVICE": device}, timeout=30)


def test_arm64_cuda_build_stops_first_with_the_reason(tmp_path):
    """Item 15: faiss-gpu-cu12 is x86_64 only; an arm64 build of the CUDA image stops in step 0."""
    res = _preflight(tmp_path, "aarch64", "cuda")
    assert res.returncode == 1
    assert "faiss-gpu-cu12 has no aarch64 wheels (linux x86_64 only)" in res.stderr
    assert _preflight(tmp_path, "x86_64", "cuda").returncode == 0
    assert _preflight(tmp_path, "aarch64", "cpu").returncode == 0


def test_deepspeed_op_failures_fail_the_verify_step(tmp_path):
    """Item 19: the CUDA verify step builds FusedAdam (DS_ACCELERATOR=cuda, no GPU needed); a builder that
    cannot load is a failed build, not a failed first training step."""
    text = (REPO / "Dockerfile").read_text()
    assert "ops=FusedAdamBuilder" in text and '--load-op "${ops}"' in text and 'DS_ACCELERATOR="${DEVICE}"' in text
    assert "TORCH_CUDA_ARCH_LIST=" in text      # no GPU at build time: name the architectures to compile
    req = tmp_path / "req.txt"
    req.write_text("")
    res = _run([sys.executable, str(VERIFY), str(req), "--load-op", "NoSuchOpBuilder"], DS_ACCELERATOR="cpu")
    assert res.returncode == 1
    assert "  - DeepSpeed op NoSuchOpBuilder: " in res.stderr

