"""docker-compose.yml and scripts/docker_quick_start.sh on the real engine."""
from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.containers.conftest import owners, run_script

pytestmark = pytest.mark.containers


def _without(node, key: str):
    if isinstance(node, dict):
        return {k: _without(v, key) for k, v in node.items() if k != key}
    if isinstance(node, list):
        return [_without(v, key) for v in node]
    return node


def compose(engine, checkout, *args: str) -> subprocess.CompletedProcess:
    return run_script(engine, [shutil.which("docker-compose"), *args], cwd=checkout, timeout=600)


def test_compose_run_bgeft_env(engine, image, checkout):
    """Debian 12's docker-compose (v1.29) runs the shipped service with these changes: the v2-only
    `create_host_path` key (which v1 rejects, asserted) is left out, the other services are dropped,
    and the NVIDIA device reservation, which a CPU engine cannot satisfy, is removed. Everything else
    of the service is the file's."""
    for name in ("data", "custom_data", "outputs", "cache"):
        (checkout / name).mkdir()
        shutil.chown(checkout / name, 1000, 1000)
    shipped = compose(engine, checkout, "config", "-q")
    if shipped.returncode != 0:  # v1 cannot read the long-syntax option; compose v2 can
        assert "contains unsupported option: 'create_host_path'" in shipped.stderr, shipped.stderr
    spec = _without(yaml.safe_load((checkout / "docker-compose.yml").read_text()), "create_host_path")
    # v1 validates every service, inactive profiles too (the NPU service's default group_add
    # ["1000", "1000"] is "non-unique" to it): keep the one service this test runs
    spec["services"] = {"bge-m3-training": spec["services"]["bge-m3-training"]}
    service = spec["services"]["bge-m3-training"]
    assert service["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    del service["deploy"]
    service["image"] = image["tag"]
    service["network_mode"] = "none"
    if engine.memlock_capped:  # see Engine.cap_memlock: this host cannot raise RLIMIT_MEMLOCK
        service["ulimits"]["memlock"] = engine.memlock_capped
    (checkout / "docker-compose.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    res = compose(engine, checkout, "run", "--rm", "-T", "bge-m3-training", "bash", "-c",
                  'bgeft env && id -u && touch /workspace/outputs/from-compose')
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "FlagEmbedding" in res.stdout and res.stdout.split()[-1] == "1000"
    assert (checkout / "outputs/from-compose").stat().st_uid == 1000
    # nothing of the project is left behind (no network was created: every service runs without one)
    assert engine.docker("ps", "-aq").stdout.split() == []
    assert not [n for n in engine.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
                if n not in ("host", "none", "bridge")]


def test_quick_start_trains_demo_on_fresh_checkout(engine, image, checkout):
    res = run_script(engine, [str(checkout / "scripts/docker_quick_start.sh")], cwd=checkout, timeout=1200)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "no NVIDIA runtime in docker: the demo runs on the CPU" in res.stderr
    assert "Compose found: docker-compose" in res.stderr or "Compose found: docker compose" in res.stderr
    assert (checkout / "cache/models/minilm-m3/config.json").is_file()
    out = checkout / "outputs/demo"
    assert (out / "config.json").is_file() and (out / "train.log").is_file()
    assert 0 not in owners(checkout / "outputs") | owners(checkout / "cache")
