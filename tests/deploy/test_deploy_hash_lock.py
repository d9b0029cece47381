"""requirements/{cuda,npu}.lock (hash-locked, what the images install with --require-hashes) agree with
the pins in requirements/{cuda,npu}.txt: same version for every pinned name, sha256 hashes on every line."""
from __future__ import annotations

import importlib.util
import re

import pytest

from tests.deploy.tools import REPO, pins

spec = importlib.util.spec_from_file_location("lock_requirements", REPO / "scripts" / "lock_requirements.py")
lock_requirements = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lock_requirements)


@pytest.mark.parametrize("image", ["cuda", "npu"], ids=["cuda-image", "ascend-image"])
def test_lock_agrees_with_pins(image):
    pinned = pins(REPO / "requirements" / f"{image}.txt")
    locked = lock_requirements.read_lock(REPO / "requirements" / f"{image}.lock")
    elsewhere = re.compile(lock_requirements.FROM_ELSEWHERE[image])
    wanted = {n: v for n, v in pinned.items() if not elsewhere.fullmatch(n)}
    assert {n: (v, locked.get(n, ("missing",))[0]) for n, v in wanted.items() if locked.get(n, ("",))[0] != v} == {}, \
        f"requirements/{image}.lock is stale: python scripts/lock_requirements.py requirements/{image}.txt"
    assert not [n for n in locked if elsewhere.fullmatch(n)], "the lock holds packages the image gets elsewhere"
    for name, (version, hashes) in locked.items():
        assert re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version), (name, version)
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), name


def test_read_lock_round_trips_render(tmp_path):
    text = lock_requirements.render(REPO / "requirements" / "x.txt", {"a-b": "1.0", "c": "2"},
                                    {"a-b": ["1" * 64, "2" * 64], "c": ["3" * 64]})
    path = tmp_path / "x.lock"
    path.write_text(text)
    assert lock_requirements.read_lock(path) == {"a-b": ("1.0", ["1" * 64, "2" * 64]), "c": ("2", ["3" * 64])}
