"""run_docker_training.sh on hosts that are not the developer's laptop (issue 10 items 1, 4, 9, 13, 18,
21): run as root, from another directory, on an nvidia-default runtime, without Docker or devices."""
from __future__ import annotations

import shlex

from tests.deploy.test_deploy_launcher import _ascend_host, env, launch, no_docker_path, runs  # noqa: F401
from tests.deploy.tools import cuda_tag

FAKE_ROOT_TOOLS = {
    # `id -u` / `id -g` say root; chown records what it was asked
    "id": '#!/usr/bin/env bash\ncase "$1" in -u|-g) echo 0 ;; *) /usr/bin/id "$@" ;; esac\n',
    "chown": '#!/usr/bin/env bash\necho "$*" >> "$FAKE_CHOWN_LOG"\n',
}


def _as_root(env):
    for name, text in FAKE_ROOT_TOOLS.items():
        (env["bin"] / name).write_text(text)
        (env["bin"] / name).chmod(0o755)
    return {"FAKE_CHOWN_LOG": str(env["tmp"] / "chown.log")}


def test_root_on_a_fresh_checkout_gives_the_dirs_to_the_container_user(env):
    """Item 4: as root the container still runs as 1000:1000, so the mount sources it writes must be
    created (not left to docker, which makes them root's) and given to 1000:1000."""
    root = env["root"]
    res = launch(env, "multi", **_as_root(env))
    assert res.returncode == 0, res.stderr
    (run,) = runs(env)
    assert run[run.index("--user") + 1] == "1000:1000"
    chowned = (env["tmp"] / "chown.log").read_text().splitlines()
    assert chowned == [f"1000:1000 {root}/{d}" for d in ("data", "custom_data", "outputs", "cache")]
    assert all((root / d).is_dir() for d in ("data", "custom_data", "outputs", "cache"))


def test_default_recipe_resolves_next_to_the_script(env):
    """Item 13: run from another directory, the default recipe is still the repository's file (mounted,
    so the host copy is the one trained), not the image's copy."""
    elsewhere = env["tmp"] / "elsewhere"
    elsewhere.mkdir()
    res = launch(env, "single", "--dry-run", cwd=elsewhere)
    assert res.returncode == 0, res.stderr
    words = shlex.split(res.stdout)
    assert f"{env['root']}/recipes:/workspace/custom_recipes:ro" in words
    assert words[-2:] == ["/workspace/custom_recipes/bge-m3_unified.yaml", "launch.nproc_per_node=1"]
    assert "is not a file here" not in res.stderr


def test_cpu_mode_hides_gpus_and_npu_autoload(env):
    """Item 18: NVIDIA_VISIBLE_DEVICES=void in cpu mode (an nvidia default runtime would inject every
    GPU); item 1: the Ascend image without the driver must not autoload torch_npu."""
    cpu = shlex.split(launch(env, "cpu", "--dry-run").stdout)
    assert "NVIDIA_VISIBLE_DEVICES=void" in cpu and "TORCH_DEVICE_BACKEND_AUTOLOAD=0" not in cpu
    cpu_npu = shlex.split(launch(env, "cpu", "--npu", "--dry-run").stdout)
    assert "TORCH_DEVICE_BACKEND_AUTOLOAD=0" in cpu_npu and "--device" not in cpu_npu
    host = _ascend_host(env)
    npu = shlex.split(launch(env, "npu", "--dry-run", BGEFT_HOST_ROOT=str(host)).stdout)
    assert "TORCH_DEVICE_BACKEND_AUTOLOAD=0" not in npu and "NVIDIA_VISIBLE_DEVICES=void" not in npu
    quick = launch(env, "--npu", "--dry-run", script="scripts/docker_quick_start.sh", BGEFT_HOST_ROOT=str(host))
    assert quick.returncode == 0, quick.stderr
    demo, train = [shlex.split(line) for line in quick.stdout.splitlines()]
    assert "TORCH_DEVICE_BACKEND_AUTOLOAD=0" in demo and "TORCH_DEVICE_BACKEND_AUTOLOAD=0" in train


def test_stop_timeout_is_the_grace_period(env):
    """Item 9: docker waits the grace period (not its default 10 s) and bgeft inside knows it."""
    words = shlex.split(launch(env, "multi", "--dry-run").stdout)
    assert words[words.index("--stop-timeout") + 1] == "900"
    assert "BGEFT_STOP_GRACE_SECONDS=900" in words
    words = shlex.split(launch(env, "multi", "--dry-run", BGEFT_STOP_GRACE_SECONDS="300").stdout)
    assert words[words.index("--stop-timeout") + 1] == "300" and "BGEFT_STOP_GRACE_SECONDS=300" in words


def test_dry_run_anywhere_and_without_prerequisites(env):
    """Item 21: --dry-run before the mode, and on a host without docker, the NVIDIA toolkit or NPUs it
    still prints every command, listing what is missing as warnings."""
    res = launch(env, "--dry-run", "multi", PATH=str(no_docker_path(env)))
    assert res.returncode == 0, res.stderr
    assert "warning: docker not found on PATH: install Docker Engine" in res.stderr
    assert "(--dry-run: printing the commands anyway)" in res.stderr
    build, run = [shlex.split(line) for line in res.stdout.splitlines()]
    assert build[:2] == ["docker", "build"] and run[:2] == ["docker", "run"] and cuda_tag() in run
    res = launch(env, "--dry-run", "single", FAKE_DOCKER_RUNTIMES='{"runc":{}}')
    assert res.returncode == 0 and "warning: the NVIDIA Container Toolkit is missing" in res.stderr
    empty_host = env["tmp"] / "no-ascend"
    empty_host.mkdir()
    res = launch(env, "npu", "--dry-run", BGEFT_HOST_ROOT=str(empty_host))
    assert res.returncode == 0, res.stderr
    for missing in ("npu-smi not found on PATH", f"{empty_host}/usr/local/Ascend/driver not found",
                    f"no {empty_host}/dev/davinci[0-9]* devices found"):
        assert f"warning: {missing}" in res.stderr
    assert shlex.split(res.stdout.splitlines()[-1])[0] == "docker"
    assert runs(env) == []

