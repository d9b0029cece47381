"""Fixtures of the container suite (marker `containers`, run by `make test-containers`).

* ``engine``   - a private dockerd (tests/containers/engine.py), stopped and deleted at session end.
* ``image``    - the project's own Dockerfile built on the CPU test base (DEVICE=cpu,
                 REQUIREMENTS=requirements/cpu.txt), also tagged with the launcher's default tag so
                 run_docker_training.sh and docker_quick_start.sh find it without building.
* ``checkout`` - a fresh copy of the repository (tracked + new unignored files; no outputs/, cache/).

A plain `pytest` leaves the suite out with one line: it starts a daemon and builds images, which
must not happen by accident on a shared machine; `-m containers` selects it.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.containers.base_image import CACHE, ensure_base
from tests.containers.engine import Engine, why_not

REPO = Path(__file__).resolve().parents[2]
IMAGE = "bgeft-test:cpu"


def selected(config: pytest.Config) -> bool:
    expr = config.getoption("markexpr") or ""
    return "containers" in expr and "not containers" not in expr


def pytest_collection_modifyitems(config, items):
    """Not selected, or cannot run here: ONE skipped test carries the reason, the rest are deselected."""
    ours = [item for item in items if item.get_closest_marker("containers")]
    if not ours:
        return
    if not selected(config):
        reason = "container suite not selected: run it with `make test-containers` (pytest -m containers)"
    else:
        reason = why_not()
        reason = reason and f"container suite cannot run here: {reason}"
    if reason:
        ours[0].add_marker(pytest.mark.skip(reason=reason))
        items[:] = [item for item in items if item not in ours[1:]]
        config.hook.pytest_deselected(items=ours[1:])


@pytest.fixture(scope="session")
def engine(request):
    reuse = os.environ.get("BGEFT_TEST_DOCKER_SOCKET")
    if reuse:  # iterating on the tests: a private daemon you started (never the host's default one)
        eng = Engine.attach(Path(reuse))
        yield eng
        return
    eng = Engine()
    try:
        eng.start()
        yield eng
    finally:
        eng.stop()


def copy_checkout(dest: Path) -> Path:
    """The repository's files as a fresh clone has them (plus new files not yet committed)."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file() or src.is_symlink():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel, follow_symlinks=False)
    return dest


@pytest.fixture
def checkout(tmp_path) -> Path:
    return copy_checkout(tmp_path / "bgeft")


def default_tag(root: Path) -> str:
    res = subprocess.run(
        ["bash", "-c", 'ROOT="$1"; PROG=t; source "$1/scripts/docker_common.sh"; cuda_tag', "-", str(root)],
        capture_output=True,
        text=True,
        check=True,
    )
    return res.stdout.strip()


@pytest.fixture(scope="session")
def image(engine, tmp_path_factory) -> dict:
    """Builds the Dockerfile on the CPU base; returns {"tag", "default_tag", "log"}."""
    if os.environ.get("BGEFT_TEST_IMAGE_BUILT") == IMAGE:  # iterating: the image is already in that daemon
        context = copy_checkout(tmp_path_factory.mktemp("context") / "bgeft")
        engine.docker("tag", IMAGE, default_tag(context))
        return {"tag": IMAGE, "default_tag": default_tag(context), "log": "", "base": ""}
    base = ensure_base(engine, REPO)
    context = copy_checkout(tmp_path_factory.mktemp("context") / "bgeft")
    # the built image is cached too, by the hash of the base and of every file the build can read
    # (a change to any of them builds again; an unchanged tree reuses the proven image and its log)
    digest = hashlib.sha256(base.encode())
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(context)).encode() + b"\0" + path.read_bytes())
    cached = CACHE / f"bgeft-test-cpu-{digest.hexdigest()[:16]}.tar"
    if cached.is_file() and cached.with_suffix(".log").is_file() \
            and engine.docker("load", "-i", str(cached), check=False).returncode == 0:
        log = cached.with_suffix(".log").read_text()
    else:
        # the previous build's layers (same base, unchanged requirements) serve as the build cache
        previous = [p for p in CACHE.glob("bgeft-test-cpu-*.tar")
                    if engine.docker("load", "-i", str(p), check=False).returncode == 0]
        cache_from = ["--cache-from", IMAGE] if previous else []
        res = engine.docker("build", "--network", "host", *cache_from, "--build-arg", f"BASE_IMAGE={base}",
                            "--build-arg", "DEVICE=cpu", "--build-arg", "REQUIREMENTS=requirements/cpu.txt",
                            "--tag", IMAGE, str(context), check=False, timeout=1800)
        log = res.stdout + res.stderr
        assert res.returncode == 0, f"docker build of the Dockerfile on {base} failed:\n{log[-6000:]}"
        for old in CACHE.glob("bgeft-test-cpu-*"):
            old.unlink()
        engine.docker("save", "-o", str(cached.with_suffix(".partial")), IMAGE)
        cached.with_suffix(".log").write_text(log)
        cached.with_suffix(".partial").rename(cached)
    tag = default_tag(context)
    engine.docker("tag", IMAGE, tag)
    return {"tag": IMAGE, "default_tag": tag, "log": log, "base": base}


def run_script(
    engine: Engine, args: list[str], cwd: Path, timeout: float = 900, **kwargs
) -> subprocess.CompletedProcess:
    """A host script (run_docker_training.sh, docker_quick_start.sh) talking to the private daemon."""
    env = dict(engine.env, HF_HUB_OFFLINE="1")
    env.update(kwargs.pop("env", {}))
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kwargs)


def owners(path: Path) -> set[int]:
    """uids owning PATH and everything below it."""
    found = {path.lstat().st_uid}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            found.add(os.lstat(os.path.join(dirpath, name)).st_uid)
    return found
