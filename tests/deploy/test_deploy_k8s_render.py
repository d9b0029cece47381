"""`bgeft k8s`: the manifests it prints are the kustomize overlays' (so the one-command path and the
kustomize path never drift), it adapts to the recipe, and it refuses recipes that cannot resume."""
from __future__ import annotations

import json
import re

import pytest
import yaml

from bgeft import k8s
from bgeft.errors import UserError
from tests.deploy.tools import OVERLAYS, REPO, cuda_tag, npu_tag, pod_templates

RECIPE = str(REPO / "k8s" / "base" / "recipe.yaml")
ARGS = {
    "single-gpu": ["--image", cuda_tag()],
    "multi-node": ["--image", cuda_tag(), "--nodes", "2"],
    "multi-node-pytorchjob": ["--image", cuda_tag(), "--nodes", "2", "--operator", "pytorchjob"],
    "npu": ["--image", npu_tag(), "--device", "npu"],
}


def _canonical(docs: list[dict]) -> dict[tuple[str, str], str]:
    """Documents keyed by (kind, name), with kustomize's ConfigMap hash suffixes removed."""
    text = re.sub(r"\b(bgeft-(?:recipe|layout))-[a-z0-9]{10}\b", r"\1", json.dumps(docs))
    return {(d["kind"], d["metadata"]["name"]): json.dumps(d, sort_keys=True) for d in json.loads(text)}


def _bgeft_k8s(tmp_path, *args) -> list[dict]:
    out = tmp_path / "manifests.yaml"
    assert k8s.main([*args, "-o", str(out)]) == 0
    return [d for d in yaml.safe_load_all(out.read_text()) if d]


@pytest.mark.parametrize("overlay", OVERLAYS, ids=[f"k8s-{o}" for o in OVERLAYS])
def test_renderer_equals_the_kustomize_overlay(rendered, overlay, tmp_path):
    ours = _canonical(_bgeft_k8s(tmp_path, RECIPE, *ARGS[overlay]))
    theirs = _canonical(rendered[overlay])
    assert sorted(ours) == sorted(theirs)
    for key in theirs:
        assert json.loads(ours[key]) == json.loads(theirs[key]), key


def test_renderer_follows_nodes_and_recipe(tmp_path):
    recipe = tmp_path / "reranker.yaml"
    recipe.write_text("task: reranker\ntraining:\n  output_dir: ../outputs/reranker\n")
    docs = _bgeft_k8s(tmp_path, str(recipe), "--image", "reg/bgeft:1", "--nodes", "4", "--per-node", "4",
                      "--name", "book-run")
    job = next(d for d in docs if d["kind"] == "Job")
    assert job["metadata"]["name"] == "book-run"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 4
    layout = next(d for d in docs if d["metadata"]["name"] == "bgeft-layout")["data"]
    assert layout == {"MASTER_ADDR": "book-run-0.book-run-workers", "MASTER_PORT": "29500", "NNODES": "4"}
    (_, tpl), = pod_templates(job)
    assert tpl["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 4
    assert tpl["spec"]["containers"][0]["args"] == ["bgeft", "train", "/workspace/job/recipe.yaml", "--resume"]
    cm = next(d for d in docs if d["metadata"]["name"] == "bgeft-recipe")
    assert cm["data"]["recipe.yaml"] == recipe.read_text()
    # one GPU, a recipe without cross-device negatives: no override for it
    docs = _bgeft_k8s(tmp_path, str(recipe), "--image", "reg/bgeft:1")
    (_, tpl), = pod_templates(next(d for d in docs if d["kind"] == "Job"))
    assert tpl["spec"]["containers"][0]["args"] == [
        "bgeft", "train", "/workspace/job/recipe.yaml", "launch.nproc_per_node=1", "--resume"]


@pytest.mark.parametrize("text, message", [
    ("task: [unclosed\n", "not valid YAML"),
    ("model: {}\n", "not a bgeft recipe (no 'task:' key)"),
    ("task: embedder.m3\ntraining:\n  output_dir: /tmp/run\n",
     "training.output_dir '/tmp/run' is not on the outputs volume: use ../outputs/<run>"),
])
def test_renderer_refuses_bad_recipes(tmp_path, text, message):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    with pytest.raises(UserError, match=re.escape(message)):
        k8s.main([str(recipe), "--image", "x"])
    with pytest.raises(UserError, match=re.escape("cannot read the recipe")):
        k8s.main([str(tmp_path / "missing.yaml"), "--image", "x"])
    with pytest.raises(UserError, match=re.escape("--nodes 0: use 1 or more")):
        k8s.main([RECIPE, "--image", "x", "--nodes", "0"])


def test_cli_dispatch(run_cli):
    code, out, err = run_cli("k8s", RECIPE, "--image", "reg/bgeft:1", "--device", "npu")
    assert code == 0, err
    kinds = [d["kind"] for d in yaml.safe_load_all(out) if d]
    assert kinds[-1] == "Job" and "huawei.com/Ascend910" in out
    code, out, err = run_cli("k8s", "/nonexistent.yaml", "--image", "x")
    assert code == 2 and err.startswith("bgeft: error: /nonexistent.yaml: cannot read the recipe")
