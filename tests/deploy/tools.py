"""Helpers for the container / Kubernetes tests: finding the static-check tools, rendering overlays,
reading the image tags from the files that define them."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = ["single-gpu", "multi-node", "multi-node-pytorchjob", "npu", "multi-node-rdma"]
# every overlay has its storage kustomization (namespace, NetworkPolicy, PVCs) of the same name
STORAGE = OVERLAYS
# mining jobs (`bgeft data mine --shard` parts, then `--from-shards`): no recipe; they run in the
# namespace and on the rwx claims of k8s/storage/<MINING_STORAGE>
MINING = ["mine-shards", "mine-merge"]
MINING_STORAGE = "multi-node"
LINT_VENV_BIN = REPO / ".venv-lint" / "bin"


def tool(name: str) -> str:
    """Path of a static-check tool: PATH first, then the repository's .venv-lint/bin.

    Missing: the test fails under CI=true (the checks must run there) and is skipped elsewhere."""
    found = shutil.which(name) or shutil.which(name, path=str(LINT_VENV_BIN))
    if found:
        return found
    message = (f"{name} not found on PATH or in {LINT_VENV_BIN}: "
               "python -m venv .venv-lint && .venv-lint/bin/pip install -r requirements/lint.txt")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 300)
    return subprocess.run(args, **kwargs)


def render(overlay_dir: Path) -> list[dict]:
    """`kubectl kustomize DIR` parsed into documents."""
    res = run([tool("kubectl"), "kustomize", str(overlay_dir)])
    assert res.returncode == 0, f"kubectl kustomize {overlay_dir} failed:\n{res.stderr}"
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def pod_templates(doc: dict) -> list[tuple[str, dict]]:
    """(label, pod template) of a workload: a Job's template or each PyTorchJob replica's."""
    if doc["kind"] == "Job":
        return [(doc["metadata"]["name"], doc["spec"]["template"])]
    if doc["kind"] == "PyTorchJob":
        return [(f"{doc['metadata']['name']}/{role}", spec["template"])
                for role, spec in doc["spec"]["pytorchReplicaSpecs"].items()]
    return []


def project_version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def dockerfile_args(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", path.read_text(), flags=re.M))


def pins(path: Path) -> dict[str, str]:
    """{normalized name: version} of a requirements file's `name==version` lines."""
    out = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert m, f"{path.name}: '{line}' is not an exact 'name==version' pin"
        out[normalize(m.group(1))] = m.group(2)
    return out


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def cuda_tag() -> str:
    args = dockerfile_args(REPO / "Dockerfile")
    return f"bgeft:{project_version()}-cuda{args['CUDA_VERSION']}-torch{args['TORCH_VERSION']}"


def npu_tag() -> str:
    args = dockerfile_args(REPO / "Dockerfile.npu")
    torch_npu = pins(REPO / "requirements" / "npu.txt")["torch-npu"]
    return f"bgeft:{project_version()}-cann{args['CANN_VERSION']}-torch_npu{torch_npu}"


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text())
