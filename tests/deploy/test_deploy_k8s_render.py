"""`bgeft k8s`: the manifests it prints are the kustomize overlays' (so the one-command path and the
kustomize path never drift), it adapts to the recipe, and it refuses recipes that cannot resume."""
from __future__ import annotations

import json
import re

import pytest
import yaml

from bgeft.cli import k8s as k8s_cli
from bgeft.errors import UserError
from tests.deploy.tools import REPO, pod_templates
from tests.helpers.cli import call

RECIPE = str(REPO / "k8s" / "base" / "recipe.yaml")
ARGS = {
    "single-gpu": [],
    "multi-node": ["--nodes", "2"],
    "multi-node-pytorchjob": ["--nodes", "2", "--operator", "pytorchjob"],
    "npu": ["--device", "npu"],
}
IMAGE = "registry.example.com/ml/bgeft:1"


def _canonical(docs: list[dict]) -> dict[tuple[str, str], str]:
    """Documents keyed by (kind, name), with kustomize's ConfigMap hash suffixes removed, the recipe
    ConfigMap under one name (kustomize: bgeft-recipe-<hash>; bgeft k8s: <job>-recipe) and one image."""
    text = re.sub(r"\b(bgeft-[a-z-]*(?:recipe|layout))-[a-z0-9]{10}\b", r"\1", json.dumps(docs))
    text = re.sub(r"\bbgeft-[a-z-]+-recipe\b", "bgeft-recipe", text)
    text = re.sub(r'"image": "[^"]+"', '"image": "IMAGE"', text)
    return {(d["kind"], d["metadata"]["name"]): json.dumps(d, sort_keys=True) for d in json.loads(text)}


def _bgeft_k8s(tmp_path, *args) -> list[dict]:
    out = tmp_path / "manifests.yaml"
    assert call(k8s_cli, [*args, "-o", str(out)]) == 0
    return [d for d in yaml.safe_load_all(out.read_text()) if d]


@pytest.mark.parametrize("overlay", list(ARGS), ids=[f"k8s-{o}" for o in ARGS])
def test_renderer_equals_the_kustomize_overlay(rendered, stored, overlay, tmp_path):
    ours = _canonical(_bgeft_k8s(tmp_path, RECIPE, "--image", IMAGE, *ARGS[overlay])
                      + _bgeft_k8s(tmp_path, RECIPE, "--image", IMAGE, *ARGS[overlay], "--storage"))
    theirs = _canonical(rendered[overlay] + stored[overlay])
    assert sorted(ours) == sorted(theirs)
    for key in theirs:
        assert json.loads(ours[key]) == json.loads(theirs[key]), key


RERANKER = ("task: reranker.base\nmodel: {model_name_or_path: BAAI/bge-reranker-v2-m3}\n"
            "data: {train_data: [../data/rerank]}\ntraining: {output_dir: ../outputs/reranker, "
            "dataloader_drop_last: true}\n")


def test_renderer_follows_nodes_and_recipe(tmp_path):
    recipe = tmp_path / "reranker.yaml"
    recipe.write_text(RERANKER)
    docs = _bgeft_k8s(tmp_path, str(recipe), "--image", "reg/bgeft:1", "--nodes", "4", "--per-node", "4",
                      "--name", "book-run")
    job = next(d for d in docs if d["kind"] == "Job")
    assert job["metadata"]["name"] == "book-run"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 4
    layout = next(d for d in docs if d["metadata"]["name"] == "book-run-layout")["data"]
    assert layout == {"MASTER_ADDR": "book-run-0.book-run-workers", "MASTER_PORT": "29500", "NNODES": "4"}
    (_, tpl), = pod_templates(job)
    assert tpl["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 4
    assert tpl["spec"]["containers"][0]["args"] == ["bgeft", "train", "/workspace/job/recipe.yaml", "--resume"]
    cm = next(d for d in docs if d["metadata"]["name"] == "book-run-recipe")
    assert cm["data"]["recipe.yaml"] == recipe.read_text()
    # one GPU: only "one process"; bgeft train in the pod switches off what needs several
    docs = _bgeft_k8s(tmp_path, str(recipe), "--image", "reg/bgeft:1")
    (_, tpl), = pod_templates(next(d for d in docs if d["kind"] == "Job"))
    assert tpl["spec"]["containers"][0]["args"] == [
        "bgeft", "train", "/workspace/job/recipe.yaml", "launch.nproc_per_node=1", "--resume"]


def test_two_jobs_share_no_owned_object(tmp_path):
    """Item 3: applying job B never rewrites job A's recipe or layout; only the namespace's storage
    (identical in both renders, and printed only with --storage) is shared."""
    recipe = tmp_path / "reranker.yaml"
    recipe.write_text(RERANKER)
    for extra in ([], ["--nodes", "3"], ["--nodes", "3", "--operator", "pytorchjob"], ["--device", "npu"]):
        a = _bgeft_k8s(tmp_path, str(recipe), "--image", "reg/bgeft:1", "--name", "run-a", *extra)
        b = _bgeft_k8s(tmp_path, RECIPE, "--image", "reg/bgeft:1", "--name", "run-b", *extra)
        keys = lambda docs: {(d["kind"], d["metadata"]["namespace"], d["metadata"]["name"]) for d in docs}  # noqa: E731
        assert not keys(a) & keys(b), extra
        for doc in a:
            assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == "run-a"
            assert doc["metadata"]["name"].startswith("run-a")
        sa = _bgeft_k8s(tmp_path, str(recipe), "--image", "reg/bgeft:1", "--name", "run-a", "--storage", *extra)
        sb = _bgeft_k8s(tmp_path, RECIPE, "--image", "reg/bgeft:1", "--name", "run-b", "--storage", *extra)
        assert sa == sb


def _refused(tmp_path, *args, text=None):
    recipe = tmp_path / "r.yaml"
    if text is not None:
        recipe.write_text(text)
    with pytest.raises(UserError) as info:
        call(k8s_cli, [str(recipe) if text is not None else RECIPE, *args])
    return str(info.value)


@pytest.mark.parametrize("text, message", [
    ("task: [unclosed\n", "not valid YAML"),
    ("model: {}\n", "task: missing; set it to one of embedder.m3"),
    ("task: embedder.m3\ntraining:\n  output_dir: /tmp/run\n",
     "training.output_dir '/tmp/run' is not on the outputs volume: use ../outputs/<run>"),
    # issue 12: the recipe shipped to the cluster goes through bgeft's validator first
    (RERANKER.replace("dataloader_drop_last: true", "learning_rat: 1e-5"),
     "training.learning_rat: unknown key (did you mean learning_rate?)"),
    (RERANKER.replace("dataloader_drop_last: true", "dataloader_drop_last: false"),
     "training.dataloader_drop_last: must be true for rerankers"),
    ("task: embedder.m3\nmodel: {model_name_or_path: m}\ndata: {train_data: [../data/t]}\n"
     "training: {output_dir: ../outputs/x, num_train_epochs: many}\n", "training.num_train_epochs:"),
])
def test_renderer_refuses_bad_recipes(tmp_path, text, message):
    assert message in _refused(tmp_path, "--image", "reg/bgeft:1", text=text)
    with pytest.raises(UserError, match=re.escape("cannot read the recipe")):
        call(k8s_cli, [str(tmp_path / "missing.yaml"), "--image", "reg/bgeft:1"])
    with pytest.raises(UserError, match=re.escape("--nodes 0: use 1 or more")):
        call(k8s_cli, [RECIPE, "--image", "reg/bgeft:1", "--nodes", "0"])


@pytest.mark.parametrize("image", ["bgeft:0.1.0-cuda12.8-torch2.13.0", "bgeft", "--privileged", "a b/c:1"])
def test_placeholder_image_is_refused(tmp_path, image):
    """Item 12: the unqualified local tag would make the cluster pull docker.io/library/bgeft."""
    message = _refused(tmp_path, f"--image={image}")
    assert f"--image {image!r}: the cluster pulls the image from a registry" in message
    assert "pass REGISTRY/bgeft:TAG" in message


@pytest.mark.parametrize("name", ["Bgeft", "run_1", "1run", "run-", "x" * 56, "a.b"])
def test_job_names_must_be_dns_labels(tmp_path, name):
    """Issue 9 item 17: a name Kubernetes would refuse is one message, not a traceback or a failed apply."""
    message = _refused(tmp_path, "--image", "reg/bgeft:1", "--name", name)
    assert message.startswith(f"--name {name!r}: a job name must be a DNS label of at most 55 characters")
    assert "--namespace 'Team'" in _refused(tmp_path, "--image", "reg/bgeft:1", "--namespace", "Team")


def test_output_file(tmp_path):
    """Issue 9 item 17: -o into a missing directory is created; -o onto the recipe or a directory is refused."""
    out = tmp_path / "missing" / "dir" / "job.yaml"
    assert call(k8s_cli, [RECIPE, "--image", "reg/bgeft:1", "-o", str(out)]) == 0
    assert [d["kind"] for d in yaml.safe_load_all(out.read_text())] == ["ConfigMap", "Job"]
    recipe = tmp_path / "r.yaml"
    recipe.write_text((REPO / "k8s" / "base" / "recipe.yaml").read_text())
    with pytest.raises(UserError, match="is also an input"):
        call(k8s_cli, [str(recipe), "--image", "reg/bgeft:1", "-o", str(recipe)])
    with pytest.raises(UserError, match="is a directory; give an output file path"):
        call(k8s_cli, [RECIPE, "--image", "reg/bgeft:1", "-o", str(tmp_path)])
    assert recipe.read_text() == (REPO / "k8s" / "base" / "recipe.yaml").read_text()


def test_cli_dispatch(run_cli):
    code, out, err = run_cli("k8s", RECIPE, "--image", "reg/bgeft:1", "--device", "npu")
    assert code == 0, err
    kinds = [d["kind"] for d in yaml.safe_load_all(out) if d]
    assert kinds[-1] == "Job" and "huawei.com/Ascend910" in out
    code, out, err = run_cli("k8s", "/nonexistent.yaml", "--image", "reg/bgeft:1")
    assert code == 2 and err.startswith("bgeft: error: /nonexistent.yaml: cannot read the recipe")
    code, out, err = run_cli("k8s", RECIPE, "--image", "reg/bgeft:1", "--name", "Bad_Name")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
