"""Issue 9 item 8: `run_docker_training.sh --image VALUE` must never turn VALUE into a docker option.
Image references are checked against docker's reference grammar, and IMAGE goes after `--`."""
from __future__ import annotations

import shlex

import pytest

from tests.deploy.test_deploy_launcher import env, launch, runs  # noqa: F401

MESSAGE = "is not an image reference: use NAME[:TAG] or REGISTRY/NAME[:TAG][@sha256:DIGEST]"


@pytest.mark.parametrize("image", [
    "--privileged", "-v/:/host", "--volume=/:/host", "bgeft --privileged", "Bgeft:1", "bgeft:tag with space",
    "bgeft:$(id)", "", "bgeft@sha256:short", "reg.example.com/../etc:1", "bgeft:" + "x" * 200,
], ids=["privileged", "short-volume", "long-volume", "space-option", "upper-case", "space-tag", "subshell",
        "empty", "short-digest", "dot-dot", "long-tag"])
@pytest.mark.parametrize("mode", ["multi", "shell", "build", "cpu"])
def test_hostile_image_is_refused_before_docker_runs(env, tree_guard, image, mode):
    guard = tree_guard(env["root"])
    res = launch(env, mode, f"--image={image}")
    assert res.returncode == 1, res.stderr
    assert f"run_docker_training.sh: error: --image '{image}' {MESSAGE}" in res.stderr
    assert runs(env) == []          # docker was never asked to run or build anything
    guard.assert_only()             # and nothing was created next to the script


@pytest.mark.parametrize("image", [
    "bgeft:0.1.0-cuda12.8-torch2.13.0", "registry.example.com:5000/ml/bgeft:1",
    "localhost/bgeft", "ghcr.io/org/bgeft@sha256:" + "a" * 64, "reg.io/a__b/c-d.e:v1.2_3"])
def test_real_references_pass_and_follow_the_options_terminator(env, image):
    res = launch(env, "multi", "--image", image)
    assert res.returncode == 0, res.stderr
    (run,) = runs(env)
    at = run.index(image)
    assert run[at - 1] == "--" and run[at + 1:at + 3] == ["bgeft", "train"]
    # nothing after "--" starts with "-" except bgeft's own arguments
    dry = shlex.split(launch(env, "multi", "--image", image, "--dry-run").stdout)
    assert dry[dry.index("--") + 1] == image
