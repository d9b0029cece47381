"""The project's Dockerfile, built for real on the CPU test base; what the image gives a user."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.containers


def test_dockerfile_builds_on_cpu_base_and_verify_step_runs(image):
    log = image["log"]
    # scripts/verify_image.py ran as the last build step, on the CPU pins and a torch without CUDA
    assert "ok  torch build 2.13.0+cpu (expected 2.13.0)" in log, log[-4000:]
    assert "ok  torch CUDA none (expected none)" in log, log[-4000:]
    assert "ok  FlagEmbedding==1.4.2" in log and "ok  faiss-cpu==1.15.1" in log
    assert "BAD" not in log


def test_image_runs_as_non_root_and_bgeft_works(engine, image):
    res = engine.docker("run", "--rm", "--network", "none", image["tag"], "bash", "-c",
                        'id -u; id -g; cd "$HOME" && echo "home=$HOME"; bgeft ls', check=False)
    assert res.returncode == 0, res.stderr
    uid, gid, home, *listing = res.stdout.splitlines()
    assert (uid, gid) == ("1000", "1000")
    assert home == "home=/home/bgeft"
    assert any("demo_cpu_m3" in line for line in listing), res.stdout


def test_entrypoint_default_command_is_help(engine, image):
    res = engine.docker("run", "--rm", "--network", "none", image["tag"], check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: bgeft")
