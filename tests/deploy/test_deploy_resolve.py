"""The pinned Python layers of both images resolve for their platforms (issue 10, "Also"): pip, asked
for linux x86_64 / aarch64, CPython 3.11, wheels only, finds a file for every pin, and the resolved
torch_npu wheel requires exactly the pinned torch. Marked slow: it asks the package index (PyPI
metadata only, `pip install --dry-run --report`; no wheel is installed).

Rows, and what is NOT a wheel-only resolution:
- deepspeed and jieba publish only sdists (pure Python, built at image build): checked to exist.
- pytrec-eval-terrier has no aarch64 wheel: the Ascend image on an aarch64 host (Atlas 800T A2 is
  Kunpeng/aarch64) builds it from its sdist, which needs a C compiler and network access at build time.
- the CUDA image's torch comes from the base image, not from requirements/cuda.txt.
- the CUDA image on aarch64 is refused (faiss-gpu-cu12 is x86_64 only): that row asserts the refusal.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.deploy.tools import REPO, dockerfile_args, pins

pytestmark = pytest.mark.slow
SDIST_ONLY = {"deepspeed", "jieba"}
NO_AARCH64_WHEEL = {"pytrec-eval-terrier"}
PLATFORMS = {"x86_64": ["manylinux2014_x86_64", "manylinux_2_28_x86_64"],
             "aarch64": ["manylinux2014_aarch64", "manylinux_2_28_aarch64"]}


def _resolve(tmp_path, names: dict[str, str], arch: str) -> subprocess.CompletedProcess:
    req = tmp_path / f"req-{arch}.txt"
    req.write_text("".join(f"{n}=={v}\n" for n, v in names.items()))
    report = tmp_path / f"report-{arch}.json"
    args = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report),
            "--target", str(tmp_path / "target"), "--python-version", "3.11", "--only-binary=:all:", "--no-deps",
            "--disable-pip-version-check", "-r", str(req)]
    for platform in PLATFORMS[arch]:
        args += ["--platform", platform]
    res = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if res.returncode != 0 and ("Name or service not known" in res.stderr or "Failed to establish" in res.stderr
                                or "Network is unreachable" in res.stderr):
        pytest.skip("the package index is not reachable from here: the pins cannot be resolved")
    res.report = json.loads(report.read_text()) if report.exists() else None
    return res


def _wheels(res) -> dict[str, str]:
    return {i["metadata"]["name"].lower().replace("_", "-"): i["download_info"]["url"].rsplit("/", 1)[-1]
            for i in res.report["install"]}


@pytest.mark.parametrize("image, arch", [("cuda", "x86_64"), ("npu", "x86_64"), ("npu", "aarch64")])
def test_pins_resolve_as_wheels(tmp_path, image, arch):
    pinned = pins(REPO / "requirements" / f"{image}.txt")
    skip = SDIST_ONLY | (NO_AARCH64_WHEEL if arch == "aarch64" else set())
    res = _resolve(tmp_path, {n: v for n, v in pinned.items() if n not in skip}, arch)
    assert res.returncode == 0, res.stderr[-2000:]
    wheels = _wheels(res)
    assert set(wheels) == set(pinned) - skip
    assert all(w.endswith(".whl") for w in wheels.values()), wheels
    if image == "npu":
        (npu,) = [i for i in res.report["install"] if i["metadata"]["name"].lower().replace("_", "-") == "torch-npu"]
        requires = [r.replace(" ", "") for r in npu["metadata"].get("requires_dist", [])]
        assert f"torch=={pinned['torch']}" in requires, requires     # torch_npu <-> torch, exactly
        assert dockerfile_args(REPO / "Dockerfile.npu")["CANN_VERSION"] in (REPO / "Dockerfile.npu").read_text()


def test_sdist_only_and_platform_gaps_are_what_the_docstring_says(tmp_path):
    npu = pins(REPO / "requirements" / "npu.txt")
    for name in sorted(SDIST_ONLY):
        res = _resolve(tmp_path, {name: npu[name]}, "x86_64")
        assert res.returncode != 0, f"{name} now has a wheel: drop it from SDIST_ONLY"
        out = subprocess.run([sys.executable, "-m", "pip", "index", "versions", name], capture_output=True,
                             text=True, timeout=120)
        assert npu[name] in out.stdout, f"{name}=={npu[name]} is not on the index"
    for name in sorted(NO_AARCH64_WHEEL):
        res = _resolve(tmp_path, {name: npu[name]}, "aarch64")
        assert res.returncode != 0, f"{name} now has an aarch64 wheel: drop it from NO_AARCH64_WHEEL"
    # item 15: the CUDA image's faiss has no aarch64 wheel, which is why its Dockerfile stops on arm64
    cuda = pins(REPO / "requirements" / "cuda.txt")
    res = _resolve(tmp_path, {"faiss-gpu-cu12": cuda["faiss-gpu-cu12"]}, "aarch64")
    assert res.returncode != 0 and "faiss-gpu-cu12" in res.stderr
