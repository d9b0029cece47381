"""docker-compose.yml: valid against the official Compose Specification schema, and each service
wired as the images and launchers expect."""
from __future__ import annotations

import pytest

from tests.deploy.tools import REPO, cuda_tag, load_yaml, npu_tag, run, tool

SHARED_VOLUMES = [
    "./data:/workspace/data:ro",
    "./custom_data:/workspace/custom_data:ro",
    "./outputs:/workspace/outputs",
    "./cache:/cache",
]


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml(REPO / "docker-compose.yml")


def test_compose_spec_schema():
    # check-jsonschema ships the compose-spec project's schema (vendor.compose-spec)
    res = run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
               str(REPO / "docker-compose.yml")])
    assert res.returncode == 0, res.stdout + res.stderr


def test_compose_schema_rejects_a_broken_file(tmp_path):
    broken = (REPO / "docker-compose.yml").read_text().replace("ipc: host", "ipc: [host]")
    (tmp_path / "docker-compose.yml").write_text(broken)
    res = run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
               str(tmp_path / "docker-compose.yml")])
    assert res.returncode == 1
    assert "ipc" in res.stdout


def test_services_and_profiles(compose):
    services = compose["services"]
    assert set(services) == {"bge-m3-training", "bge-m3-training-npu", "tensorboard"}
    assert "profiles" not in services["bge-m3-training"]          # the default service
    assert services["bge-m3-training-npu"]["profiles"] == ["npu"]
    assert services["tensorboard"]["profiles"] == ["tensorboard"]


def test_cuda_service(compose):
    svc = compose["services"]["bge-m3-training"]
    assert svc["image"] == cuda_tag()
    assert svc["build"] == {"context": ".", "dockerfile": "Dockerfile"}
    assert svc["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert svc["ipc"] == "host"
    assert svc["volumes"] == SHARED_VOLUMES
    _common(svc)


def test_npu_service(compose):
    svc = compose["services"]["bge-m3-training-npu"]
    assert svc["image"] == npu_tag()
    assert svc["build"] == {"context": ".", "dockerfile": "Dockerfile.npu"}
    devices = svc["devices"]
    assert devices[:8] == [f"/dev/davinci{i}" for i in range(8)]
    assert devices[8:] == ["/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc"]
    assert svc["volumes"][:4] == SHARED_VOLUMES
    assert svc["volumes"][4:] == [
        "/usr/local/Ascend/driver:/usr/local/Ascend/driver:ro",
        "/usr/local/dcmi:/usr/local/dcmi:ro",
        "/usr/local/bin/npu-smi:/usr/local/bin/npu-smi:ro",
        "/etc/ascend_install.info:/etc/ascend_install.info:ro",
    ]
    assert svc["group_add"] == ["${ASCEND_GID:-1000}"]
    assert "ASCEND_RT_VISIBLE_DEVICES" in svc["environment"]
    assert "deploy" not in svc
    _common(svc)


def _common(svc):
    """The shared block (a YAML anchor merged into both training services)."""
    assert svc["user"] == "${BGEFT_UID:-1000}:${BGEFT_GID:-1000}"
    assert svc["working_dir"] == "/workspace"
    assert svc["init"] is True
    assert svc["ipc"] == "host"
    assert svc["stop_grace_period"] == "10m"
    assert svc["ulimits"] == {"memlock": -1, "stack": 67108864}
    assert {"HF_TOKEN", "HF_ENDPOINT"} <= set(svc["environment"])


def test_tensorboard_service(compose):
    svc = compose["services"]["tensorboard"]
    assert svc["image"] == cuda_tag()
    assert svc["command"][:3] == ["tensorboard", "--logdir", "/workspace/outputs"]
    assert svc["ports"] == ["127.0.0.1:6006:6006"]
    assert svc["volumes"] == ["./outputs:/workspace/outputs:ro"]


def test_anchor_shares_one_block():
    text = (REPO / "docker-compose.yml").read_text()
    assert text.count("&bgeft-common") == 1
    assert text.count("<<: *bgeft-common") == 2
