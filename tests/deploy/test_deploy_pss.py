"""Every pod the manifests make is admitted by the Pod Security level of the namespace it runs in
(issue 10 items 2 and 14): the kustomize overlays and `bgeft k8s`, a PyTorchJob's workers with the
init container the training operator injects, one namespace per level so the NPU's "privileged"
never reaches the GPU jobs."""
from __future__ import annotations

import argparse

import pytest

from bgeft import k8s
from bgeft.cli import k8s as k8s_cli
from tests.deploy.pss import admitted_pods, violations
from tests.deploy.tools import MINING, MINING_STORAGE, OVERLAYS, REPO
from tests.helpers.cli import parse

IDS = [f"k8s-{o}" for o in OVERLAYS]
RECIPE = str(REPO / "k8s" / "base" / "recipe.yaml")
IMAGE = "registry.example.com/ml/bgeft:1"
CLI = {"single-gpu": [], "multi-node": ["--nodes", "2"], "multi-node-pytorchjob": ["--nodes", "2", "--operator",
       "pytorchjob"], "npu": ["--device", "npu"]}


def _namespace(docs) -> tuple[str, str]:
    (ns,) = [d for d in docs if d["kind"] == "Namespace"]
    return ns["metadata"]["name"], ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]


@pytest.mark.parametrize("overlay", OVERLAYS, ids=IDS)
def test_kustomize_pods_pass_their_namespace_level(rendered, stored, overlay):
    name, level = _namespace(stored[overlay])
    pods = [p for d in rendered[overlay] for p in admitted_pods(d)]
    assert pods and {d["metadata"]["namespace"] for d in rendered[overlay]} == {name}
    for label, spec in pods:
        assert violations(spec, level) == [], (label, level)
    if level != "privileged":
        return
    # privileged only where baseline would refuse the pod
    assert any(violations(spec, "baseline") for _, spec in pods), overlay


@pytest.mark.parametrize("name", MINING, ids=[f"k8s-{n}" for n in MINING])
def test_mining_pods_pass_their_namespace_level(mining, stored, name):
    ns, level = _namespace(stored[MINING_STORAGE])
    pods = [p for d in mining[name] for p in admitted_pods(d)]
    assert pods and level == "restricted" and {d["metadata"]["namespace"] for d in mining[name]} == {ns}
    for label, spec in pods:
        assert violations(spec, level) == [], (label, level)


@pytest.mark.parametrize("overlay", list(CLI), ids=[f"k8s-{o}" for o in CLI])
def test_bgeft_k8s_pods_pass_their_namespace_level(overlay):
    def render(*extra):
        return k8s.render(parse(k8s_cli, [RECIPE, "--image", IMAGE, *CLI[overlay], *extra]))

    name, level = _namespace(render("--storage"))
    for label, spec in (p for d in render() for p in admitted_pods(d)):
        assert violations(spec, level) == [], (label, level)


def test_the_operator_init_container_needs_baseline(rendered):
    """Before the fix the PyTorchJob ran in a "restricted" namespace: its workers were refused."""
    (ptj,) = [d for d in rendered["multi-node-pytorchjob"] if d["kind"] == "PyTorchJob"]
    pods = dict(admitted_pods(ptj))
    assert violations(pods["bgeft-pytorchjob/Master"], "restricted") == []
    worker = violations(pods["bgeft-pytorchjob/Worker"], "restricted")
    assert "initContainers[init-pytorch]: allowPrivilegeEscalation is not false (Privilege Escalation)" in worker
    assert "initContainers[init-pytorch]: capabilities do not drop ALL (Capabilities)" in worker
    assert violations(pods["bgeft-pytorchjob/Worker"], "baseline") == []


def test_checker_catches_what_the_standard_forbids(rendered):
    (job,) = [d for d in rendered["single-gpu"] if d["kind"] == "Job"]
    spec = job["spec"]["template"]["spec"]
    assert violations(spec, "restricted") == []
    bad = {**spec, "hostNetwork": True, "volumes": [*spec["volumes"], {"name": "h", "hostPath": {"path": "/"}}],
           "containers": [{**spec["containers"][0], "securityContext": {"privileged": True,
                                                                       "capabilities": {"add": ["SYS_ADMIN"]}}}]}
    problems = violations(bad, "baseline")
    assert problems == ["hostNetwork: true (Host Namespaces)", "volume h: hostPath (HostPath Volumes)",
                        "containers[bgeft]: privileged (Privileged Containers)",
                        "containers[bgeft]: adds capabilities ['SYS_ADMIN'] (Capabilities)"]


def test_one_namespace_per_level_and_job(stored):
    """Item 14: the NPU overlay no longer relabels the GPU jobs' namespace; every overlay has its own."""
    names = {o: _namespace(stored[o]) for o in OVERLAYS}
    assert len({n for n, _ in names.values()}) == len(OVERLAYS)
    assert names["single-gpu"] == ("bgeft", "restricted") and names["multi-node"] == ("bgeft-multi", "restricted")
    assert names["multi-node-pytorchjob"] == ("bgeft-pytorchjob", "baseline")
    assert names["npu"] == ("bgeft-npu", "privileged") and names["multi-node-rdma"] == ("bgeft-rdma", "privileged")
    for docs in stored.values():
        (ns,) = [d for d in docs if d["kind"] == "Namespace"]
        assert ns["metadata"]["labels"]["pod-security.kubernetes.io/warn"] in ("restricted", "baseline")


def test_renderer_namespace_follows_the_job_kind():
    args = parse(k8s_cli, [RECIPE, "--image", IMAGE, "--nodes", "2", "--operator", "pytorchjob",
                                          "--namespace", "team-a", "--storage"])
    assert _namespace(k8s.render(args)) == ("team-a", "baseline")
    assert isinstance(args, argparse.Namespace)
