"""docker-compose.yml: valid against the official Compose Specification schema, and each service
wired as the images and launchers expect."""
from __future__ import annotations

import pytest

from tests.deploy.tools import REPO, cuda_tag, load_yaml, npu_tag, run, tool

NO_CREATE = {"create_host_path": False}
SHARED_VOLUMES = [
    {"type": "bind", "source": "./data", "target": "/workspace/data", "read_only": True, "bind": NO_CREATE},
    {"type": "bind", "source": "./custom_data", "target": "/workspace/custom_data", "read_only": True,
     "bind": NO_CREATE},
    {"type": "bind", "source": "./outputs", "target": "/workspace/outputs", "bind": NO_CREATE},
    {"type": "bind", "source": "./cache", "target": "/cache", "bind": NO_CREATE},
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
        {"type": "bind", "source": "/usr/local/bin/npu-smi", "target": "/usr/local/bin/npu-smi", "read_only": True,
         "bind": NO_CREATE},
        {"type": "bind", "source": "/etc/ascend_install.info", "target": "/etc/ascend_install.info",
         "read_only": True, "bind": NO_CREATE},
    ]
    assert svc["group_add"] == ["${ASCEND_GID:-1000}", "1000"]
    assert "ASCEND_RT_VISIBLE_DEVICES" in svc["environment"]
    assert "deploy" not in svc
    _common(svc)


def _common(svc):
    """The shared block (a YAML anchor merged into both training services)."""
    assert svc["user"] == "${BGEFT_UID:-1000}:${BGEFT_GID:-1000}"
    assert svc["working_dir"] == "/workspace"
    assert svc["init"] is True
    assert svc["ipc"] == "host"
    assert svc["stop_grace_period"] == "${BGEFT_STOP_GRACE_SECONDS:-900}s"
    assert "BGEFT_STOP_GRACE_SECONDS" in svc["environment"]
    assert svc["ulimits"] == {"memlock": -1, "stack": 67108864}
    assert svc["security_opt"] == ["no-new-privileges:true"] and "1000" in svc["group_add"]
    assert {"HF_TOKEN", "HF_ENDPOINT"} <= set(svc["environment"])


def test_tensorboard_service(compose):
    svc = compose["services"]["tensorboard"]
    assert svc["image"] == cuda_tag()
    assert svc["command"][:3] == ["tensorboard", "--logdir", "/workspace/outputs"]
    assert svc["ports"] == ["127.0.0.1:6006:6006"]
    assert svc["volumes"] == [{"type": "bind", "source": "./outputs", "target": "/workspace/outputs",
                               "read_only": True, "bind": NO_CREATE}]


def test_anchor_shares_one_block():
    text = (REPO / "docker-compose.yml").read_text()
    assert text.count("&bgeft-common") == 1
    assert text.count("<<: *bgeft-common") == 2


def test_nothing_is_pulled_and_no_host_path_is_created(compose):
    """Issue 10 item 17: every service builds its local tag (none can pull docker.io/library/bgeft), and no
    bind mount lets Docker create a missing host path (as root, and a directory where a file belongs)."""
    for name, svc in compose["services"].items():
        assert svc["build"]["context"] == ".", name
        assert svc.get("pull_policy") in (None, "build", "never"), name
        for volume in svc["volumes"]:
            if isinstance(volume, dict):
                assert volume["bind"] == NO_CREATE, (name, volume)
            else:   # short syntax only for directories the Ascend driver installer always creates
                assert volume.split(":")[0] in ("/usr/local/Ascend/driver", "/usr/local/dcmi"), (name, volume)
