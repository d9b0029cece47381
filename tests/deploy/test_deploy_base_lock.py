"""The base image pinned by digest: run_docker_training.sh build resolves the Dockerfile's base tag on
the host (fake `docker buildx imagetools inspect`), records it in docker/base-images.lock, reuses it,
moves it only with --refresh-base, and stops when it has neither a lock entry nor a registry."""
from __future__ import annotations

import json
import re
import subprocess
import sys

from tests.deploy.test_deploy_launcher import FAKE_DIGEST, build_argv, calls, env, launch, runs  # noqa: F401
from tests.deploy.tools import REPO, cuda_tag

OTHER_DIGEST = "sha256:" + "cd" * 32


def _base_tag(root) -> str:
    return re.search(r"^ARG BASE_IMAGE=(.+)$", (root / "Dockerfile").read_text(), re.M)[1]


def _entries(root) -> list[list[str]]:
    text = (root / "docker" / "base-images.lock").read_text()
    return [line.split() for line in text.splitlines() if line and not line.startswith("#")]


def _asked_registry(env) -> bool:
    return any(c[:3] == ["buildx", "imagetools", "inspect"] for c in calls(env))


def test_first_build_records_the_digest_then_reuses_it_offline(env):
    root, tag = env["root"], _base_tag(env["root"])
    assert _entries(root) == []   # the shipped lock holds no digest nobody resolved
    res = launch(env, "build")
    assert res.returncode == 0, res.stderr
    assert runs(env) == [build_argv(root, "Dockerfile", cuda_tag())]
    (entry,) = _entries(root)
    assert entry[:2] == [tag, FAKE_DIGEST]
    assert f"base image {tag} -> {FAKE_DIGEST} (recorded in docker/base-images.lock" in res.stderr
    # the registry is gone: the recorded digest is used, the registry is not asked
    env["log"].unlink()
    res = launch(env, "build", FAKE_DOCKER_DIGEST="")
    assert res.returncode == 0, res.stderr
    assert runs(env) == [build_argv(root, "Dockerfile", cuda_tag())]
    assert not _asked_registry(env)


def test_refresh_base_moves_the_lock_entry(env):
    root, tag = env["root"], _base_tag(env["root"])
    assert launch(env, "build").returncode == 0
    res = launch(env, "build", "--refresh-base", FAKE_DOCKER_DIGEST=OTHER_DIGEST)
    assert res.returncode == 0, res.stderr
    assert [e[:2] for e in _entries(root)] == [[tag, OTHER_DIGEST]]
    assert f"BASE_IMAGE={tag}@{OTHER_DIGEST}" in runs(env)[-1]


def test_neither_lock_nor_registry_stops(env):
    root, tag = env["root"], _base_tag(env["root"])
    before = (root / "docker" / "base-images.lock").read_text()
    res = launch(env, "build", FAKE_DOCKER_DIGEST="")
    assert res.returncode == 1
    assert (f"run_docker_training.sh: error: cannot pin the base image {tag}: docker/base-images.lock has no "
            "entry for it and the registry cannot be asked") in res.stderr
    assert runs(env) == []
    assert (root / "docker" / "base-images.lock").read_text() == before


def test_a_registry_answer_that_is_not_a_digest_is_never_recorded(env):
    res = launch(env, "build", FAKE_DOCKER_DIGEST="latest")
    assert res.returncode == 1 and "cannot pin the base image" in res.stderr
    assert _entries(env["root"]) == []


def test_a_corrupt_lock_entry_stops(env):
    root, tag = env["root"], _base_tag(env["root"])
    with open(root / "docker" / "base-images.lock", "a") as f:
        f.write(f"{tag} sha256:nothex 2026-01-01T00:00:00Z\n")
    res = launch(env, "build")
    assert res.returncode == 1
    assert (f"docker/base-images.lock: the entry for {tag} is not a sha256 digest ('sha256:nothex'): "
            "delete the line and build with --refresh-base") in res.stderr
    assert runs(env) == []


def test_dry_run_resolves_but_writes_nothing(env):
    res = launch(env, "build", "--dry-run")
    assert res.returncode == 0, res.stderr
    assert f"would record {_base_tag(env['root'])} -> {FAKE_DIGEST}" in res.stderr
    assert _entries(env["root"]) == [] and runs(env) == []


def test_dockerfiles_label_and_record_the_image():
    for name, flavor, lock in (
        ("Dockerfile", '"${DEVICE}"', '"${lock}"'),
        ("Dockerfile.npu", "npu", "requirements/npu.lock"),
    ):
        text = (REPO / name).read_text()
        for label in ("version", "revision", "source", "created", "base.digest"):
            assert f"org.opencontainers.image.{label}=" in text, (name, label)
        assert "--require-hashes" in text and f"-r {lock}" in text
        assert f"scripts/image_record.py /etc/bgeft-image.json --flavor {flavor}" in text
        # FROM uses the pinned reference the launcher passes in
        assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)


def test_image_record_script(tmp_path):
    dest = tmp_path / "bgeft-image.json"
    res = subprocess.run([sys.executable, str(REPO / "scripts/image_record.py"), str(dest), "--flavor", "cuda",
                          "--base-image", f"a/b:1@{FAKE_DIGEST}", "--base-digest", FAKE_DIGEST, "--version", "0.1.0",
                          "--revision", "abc", "--source", "unknown", "--created", "2026-01-01T00:00:00Z"],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert json.loads(dest.read_text()) == {
        "flavor": "cuda", "base_image": f"a/b:1@{FAKE_DIGEST}", "base_digest": FAKE_DIGEST, "version": "0.1.0",
        "revision": "abc", "source": "unknown", "created": "2026-01-01T00:00:00Z"}
