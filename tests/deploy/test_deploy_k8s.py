"""k8s/: every overlay renders with kustomize, validates against the Kubernetes schemas (and a
PyTorchJob schema), and every training pod keeps the promises of docs/kubernetes.md."""
from __future__ import annotations

import copy
import json
import shutil

import pytest
import yaml

from tests.deploy.tools import (
    MINING,
    MINING_STORAGE,
    OVERLAYS,
    REPO,
    cuda_tag,
    load_yaml,
    npu_tag,
    pod_templates,
    render,
    run,
    tool,
)

PYTORCHJOB_SCHEMA = REPO / "tests" / "deploy" / "schemas" / "pytorchjob-v1.json"
ACCELERATOR = {"single-gpu": ("nvidia.com/gpu", 1), "multi-node": ("nvidia.com/gpu", 8),
               "multi-node-pytorchjob": ("nvidia.com/gpu", 8), "npu": ("huawei.com/Ascend910", 8),
               "multi-node-rdma": ("nvidia.com/gpu", 8)}
SHARED = {"multi-node", "multi-node-pytorchjob", "multi-node-rdma"}
# test ids "k8s-<overlay>": a bare "npu" id would be taken for the npu device marker
IDS = [f"k8s-{name}" for name in OVERLAYS]


def w_name(overlay: str) -> str:
    return {"single-gpu": "bgeft-single-gpu", "npu": "bgeft-npu", "multi-node-pytorchjob": "bgeft-pytorchjob"}.get(
        overlay, "bgeft-multi-node")


def _workloads(docs):
    return [d for d in docs if d["kind"] in ("Job", "PyTorchJob")]


def _kinds(docs):
    return sorted(d["kind"] for d in docs)


def test_overlay_contents(rendered, stored):
    """Job overlays hold only what the job owns; namespace, NetworkPolicy and PVCs are in k8s/storage
    (item 7: `kubectl delete -k k8s/overlays/X` never deletes the namespace or the checkpoints)."""
    assert _kinds(rendered["single-gpu"]) == ["ConfigMap", "Job"]
    assert _kinds(rendered["multi-node"]) == ["ConfigMap", "ConfigMap", "Job", "Service"]
    assert _kinds(rendered["multi-node-rdma"]) == ["ConfigMap", "ConfigMap", "Job", "Service"]
    assert _kinds(rendered["multi-node-pytorchjob"]) == ["ConfigMap", "PyTorchJob"]
    assert _kinds(rendered["npu"]) == ["ConfigMap", "Job"]
    for overlay, docs in stored.items():
        assert _kinds(docs) == ["Namespace", "NetworkPolicy", "PersistentVolumeClaim", "PersistentVolumeClaim",
                                "PersistentVolumeClaim"], overlay
        (ns,) = [d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"]
        assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {ns}
        assert {d["metadata"]["namespace"] for d in rendered[overlay]} == {ns}


def _validate(tmp_path, name, docs):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    res = run([tool("kubernetes-validate"), "--strict", "--quiet", str(path)])
    assert res.returncode == 0, res.stdout + res.stderr
    return res


@pytest.mark.parametrize("overlay", OVERLAYS, ids=IDS)
def test_schema_valid(rendered, stored, overlay, tmp_path):
    docs = rendered[overlay] + stored[overlay]
    core = [d for d in docs if d["kind"] != "PyTorchJob"]
    _validate(tmp_path, overlay, core)
    for doc in docs:
        if doc["kind"] != "PyTorchJob":
            continue
        path = tmp_path / "pytorchjob.json"
        path.write_text(json.dumps(doc))
        res = run([tool("check-jsonschema"), "--schemafile", str(PYTORCHJOB_SCHEMA), str(path)])
        assert res.returncode == 0, res.stdout + res.stderr
        # each replica's pod template against the Kubernetes PodTemplateSpec schema (inside a Job)
        jobs = [{"apiVersion": "batch/v1", "kind": "Job",
                 "metadata": {"name": label.replace("/", "-").lower(), "namespace": "bgeft"},
                 "spec": {"template": tpl}} for label, tpl in pod_templates(doc)]
        _validate(tmp_path, f"{overlay}-pods", jobs)


def test_schemas_catch_mistakes(rendered, tmp_path):
    job = copy.deepcopy(_workloads(rendered["single-gpu"])[0])
    job["spec"]["template"]["spec"]["containers"][0]["resource"] = {}        # typo
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(job))
    assert run([tool("kubernetes-validate"), "--strict", "--quiet", str(path)]).returncode != 0
    ptj = copy.deepcopy(_workloads(rendered["multi-node-pytorchjob"])[0])
    for mutate in (lambda s: s["pytorchReplicaSpecs"]["Worker"].update(restartPolicy="Sometimes"),
                   lambda s: s["pytorchReplicaSpecs"]["Master"].update(replicas=2),
                   lambda s: s.update(pytorchReplicaSpec=s.pop("pytorchReplicaSpecs")),
                   lambda s: s["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
                   .update(name="trainer")):
        bad = copy.deepcopy(ptj)
        mutate(bad["spec"])
        path.write_text(json.dumps(bad))
        res = run([tool("check-jsonschema"), "--schemafile", str(PYTORCHJOB_SCHEMA), str(path)])
        assert res.returncode == 1, bad["spec"]


@pytest.mark.parametrize("overlay", OVERLAYS, ids=IDS)
def test_every_pod_is_hardened_and_resumable(rendered, overlay):
    pods = [p for w in _workloads(rendered[overlay]) for p in pod_templates(w)]
    assert pods
    resource, count = ACCELERATOR[overlay]
    for label, tpl in pods:
        spec = tpl["spec"]
        assert tpl["metadata"]["labels"]["app.kubernetes.io/name"] == "bgeft", label
        assert spec["terminationGracePeriodSeconds"] >= 600, label
        assert spec["automountServiceAccountToken"] is False
        sc = spec["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 1000 and sc["fsGroup"] == 1000
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        (container,) = spec["containers"]
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"], **({"add": ["IPC_LOCK"]} if overlay == "multi-node-rdma" else {})}}
        assert container["imagePullPolicy"] == "IfNotPresent"   # item 12: never Always for a local tag
        assert {"name": "BGEFT_STOP_GRACE_SECONDS", "value": str(spec["terminationGracePeriodSeconds"])} \
            in container["env"]
        # the image's entrypoint must run (it sources CANN's env): args only, never command
        assert "command" not in container
        args = container["args"]
        assert args[:3] == ["bgeft", "train", "/workspace/job/recipe.yaml"] and args[-1] == "--resume"
        assert container["image"] == (npu_tag() if overlay == "npu" else cuda_tag())
        res = container["resources"]
        assert res["requests"] == res["limits"], label
        assert res["limits"][resource] == count
        assert tpl["metadata"]["labels"]["app.kubernetes.io/instance"] == w_name(overlay)
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        shm = volumes[mounts["/dev/shm"]["name"]]["emptyDir"]
        assert shm["medium"] == "Memory" and shm["sizeLimit"].endswith("Gi")
        assert mounts["/workspace/job/recipe.yaml"]["subPath"] == "recipe.yaml"
        assert volumes[mounts["/workspace/job/recipe.yaml"]["name"]]["configMap"]["name"].startswith("bgeft-recipe-")
        assert mounts["/workspace/data"]["readOnly"] is True
        claims = {m: volumes[mounts[m]["name"]]["persistentVolumeClaim"]["claimName"]
                  for m in ("/workspace/data", "/workspace/outputs", "/cache")}
        prefix = "bgeft-shared" if overlay in SHARED else "bgeft"
        assert claims == {"/workspace/data": f"{prefix}-data", "/workspace/outputs": f"{prefix}-outputs",
                          "/cache": f"{prefix}-cache"}
        for path in ("/tmp", "/home/bgeft"):  # writable places on a read-only root filesystem
            assert "emptyDir" in volumes[mounts[path]["name"]]


def test_npu_pod_mounts_the_driver_read_only(rendered):
    (_, tpl), = pod_templates(_workloads(rendered["npu"])[0])
    mounts = {m["mountPath"]: m for m in tpl["spec"]["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in tpl["spec"]["volumes"]}
    driver = mounts["/usr/local/Ascend/driver"]
    assert driver["readOnly"] is True
    assert volumes[driver["name"]]["hostPath"] == {"path": "/usr/local/Ascend/driver", "type": "Directory"}
    assert tpl["spec"]["securityContext"]["supplementalGroups"] == [1000]


def _pvc_modes(docs):
    return {d["metadata"]["name"]: d["spec"]["accessModes"] for d in docs if d["kind"] == "PersistentVolumeClaim"}


def test_storage_shared_across_nodes_under_other_names(stored):
    """Item 7: a PVC's access modes are immutable, so ReadWriteOnce and ReadWriteMany claims never share
    a name (even if two storage kustomizations were pointed at one namespace)."""
    rwo, rwx = {}, {}
    for overlay, docs in stored.items():
        modes = _pvc_modes(docs)
        (rwx if overlay in SHARED else rwo).update(modes)
        assert set(map(tuple, modes.values())) == {("ReadWriteMany",) if overlay in SHARED else ("ReadWriteOnce",)}
    assert set(rwo) == {"bgeft-data", "bgeft-outputs", "bgeft-cache"}
    assert set(rwx) == {"bgeft-shared-data", "bgeft-shared-outputs", "bgeft-shared-cache"}


def _layout(docs):
    cm = next(d for d in docs if d["kind"] == "ConfigMap"
              and d["metadata"]["name"].startswith("bgeft-multi-node-layout-"))
    return cm


def test_indexed_job_layout(rendered):
    docs = rendered["multi-node"]
    job = next(d for d in docs if d["kind"] == "Job")
    svc = next(d for d in docs if d["kind"] == "Service")
    layout = _layout(docs)["data"]
    nnodes = int(layout["NNODES"])
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == nnodes == 2
    pod = job["spec"]["template"]["spec"]
    assert pod["subdomain"] == svc["metadata"]["name"]
    # MASTER_ADDR is pod 0's DNS name through the headless Service
    assert layout["MASTER_ADDR"] == f"{job['metadata']['name']}-0.{svc['metadata']['name']}"
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["selector"] == {"batch.kubernetes.io/job-name": job["metadata"]["name"]}
    port = int(layout["MASTER_PORT"])
    assert svc["spec"]["ports"][0]["port"] == port
    assert pod["containers"][0]["ports"] == [{"name": "rendezvous", "containerPort": port}]
    assert pod["containers"][0]["envFrom"] == [{"configMapRef": {"name": _layout(docs)["metadata"]["name"]}}]


def test_node_count_is_one_edit(tmp_path):
    """Changing NNODES alone in the overlay moves completions and parallelism with it."""
    shutil.copytree(REPO / "k8s", tmp_path / "k8s")
    kfile = tmp_path / "k8s" / "overlays" / "multi-node" / "kustomization.yaml"
    text = kfile.read_text()
    assert text.count("NNODES=2") == 1
    kfile.write_text(text.replace("NNODES=2", "NNODES=5"))
    docs = render(tmp_path / "k8s" / "overlays" / "multi-node")
    job = next(d for d in docs if d["kind"] == "Job")
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 5
    assert _layout(docs)["data"]["NNODES"] == "5"


def test_pytorchjob_layout(rendered):
    ptj = _workloads(rendered["multi-node-pytorchjob"])[0]
    specs = ptj["spec"]["pytorchReplicaSpecs"]
    assert specs["Master"]["replicas"] == 1 and specs["Worker"]["replicas"] >= 1
    assert specs["Master"]["template"] == specs["Worker"]["template"]
    container = specs["Master"]["template"]["spec"]["containers"][0]
    assert container["name"] == "pytorch"
    assert container["ports"] == [{"name": "pytorchjob-port", "containerPort": 23456}]
    assert ptj["spec"]["nprocPerNode"] == "auto"


def test_image_edit_reaches_every_pod(tmp_path):
    shutil.copytree(REPO / "k8s", tmp_path / "k8s")
    for overlay in ("multi-node-pytorchjob", "npu"):
        kfile = tmp_path / "k8s" / "overlays" / overlay / "kustomization.yaml"
        assert kfile.read_text().count("newName: bgeft ") == 1
        kfile.write_text(kfile.read_text().replace("newName: bgeft ", "newName: registry.example.com/ml/bgeft "))
        docs = render(kfile.parent)
        images = {tpl["spec"]["containers"][0]["image"] for w in _workloads(docs) for _, tpl in pod_templates(w)}
        assert len(images) == 1 and images.pop().startswith("registry.example.com/ml/bgeft:0.1.0-")


def test_cluster_recipe_matches_shipped_recipe():
    """k8s/base/recipe.yaml is recipes/bge-m3_unified.yaml with the data on the data PVC."""
    cluster = load_yaml(REPO / "k8s" / "base" / "recipe.yaml")
    shipped = load_yaml(REPO / "recipes" / "bge-m3_unified.yaml")
    assert cluster["data"].pop("train_data") == ["../data/train"]
    shipped["data"].pop("train_data")
    assert cluster == shipped
    assert cluster["training"]["output_dir"].startswith("../outputs/")


def test_every_kustomization_is_checked():
    """Each directory under k8s/overlays is a training overlay or a mining job: the checks here, in
    test_deploy_pss.py and test_deploy_static.py (checkov) cover it."""
    assert sorted(p.name for p in (REPO / "k8s" / "overlays").iterdir() if p.is_dir()) == sorted(OVERLAYS + MINING)


@pytest.mark.parametrize("name", MINING, ids=[f"k8s-{n}" for n in MINING])
def test_mining_jobs_are_valid_and_hardened(mining, stored, name, tmp_path):
    docs = mining[name]
    _validate(tmp_path, name, docs + stored[MINING_STORAGE])
    (ns,) = [d["metadata"]["name"] for d in stored[MINING_STORAGE] if d["kind"] == "Namespace"]
    assert {d["metadata"]["namespace"] for d in docs} == {ns}
    assert _kinds(docs) == (["ConfigMap", "Job"] if name == "mine-shards" else ["Job"])
    (job,) = _workloads(docs)
    tpl = job["spec"]["template"]
    spec = tpl["spec"]
    assert tpl["metadata"]["labels"]["app.kubernetes.io/instance"] == f"bgeft-{name}"
    assert spec["automountServiceAccountToken"] is False and spec["restartPolicy"] == "Never"
    sc = spec["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 1000 and sc["fsGroup"] == 1000
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = spec["containers"]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    assert container["imagePullPolicy"] == "IfNotPresent" and "command" not in container
    assert container["image"] == cuda_tag()
    assert {"name": "BGEFT_STOP_GRACE_SECONDS", "value": str(spec["terminationGracePeriodSeconds"])} \
        in container["env"]
    res = container["resources"]
    assert res["requests"] == res["limits"] and res["limits"]["nvidia.com/gpu"] == 1
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert mounts["/workspace/data"]["readOnly"] is True
    claims = {m: volumes[mounts[m]["name"]]["persistentVolumeClaim"]["claimName"]
              for m in ("/workspace/data", "/workspace/outputs", "/cache")}
    assert claims == {"/workspace/data": "bgeft-shared-data", "/workspace/outputs": "bgeft-shared-outputs",
                      "/cache": "bgeft-shared-cache"}   # rwx: every part writes where the merge reads
    for path in ("/tmp", "/home/bgeft"):
        assert "emptyDir" in volumes[mounts[path]["name"]]


def _mine_args(args: list[str], index: int | None = None, shards: str | None = None):
    from bgeft.data import mine
    from bgeft.data.shards import shard_mode
    from tests.helpers.cli import parse

    assert args[:3] == ["bgeft", "data", "mine"]
    words = [a.replace("$(JOB_COMPLETION_INDEX)", str(index)).replace("$(SHARDS)", str(shards)) for a in args[3:]]
    parsed = parse(mine, words)
    return parsed, shard_mode(parsed)


def test_mining_parts_and_merge_agree(mining):
    """Pod i runs --shard i/SHARDS; the merge reads that directory with the same model, files and one GPU."""
    shards_job = _workloads(mining["mine-shards"])[0]
    (merge_job,) = _workloads(mining["mine-merge"])
    (layout,) = [d for d in mining["mine-shards"] if d["kind"] == "ConfigMap"]
    n = int(layout["data"]["SHARDS"])
    assert shards_job["spec"]["completionMode"] == "Indexed"
    assert shards_job["spec"]["completions"] == shards_job["spec"]["parallelism"] == n == 8
    part = shards_job["spec"]["template"]["spec"]["containers"][0]
    merge = merge_job["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "SHARDS", "valueFrom": {"configMapKeyRef": {"name": layout["metadata"]["name"],
                                                                "key": "SHARDS"}}} in part["env"]
    assert "$(JOB_COMPLETION_INDEX)/$(SHARDS)" in part["args"]   # the Job controller sets JOB_COMPLETION_INDEX
    for i in (0, n - 1):
        parsed, shard = _mine_args(part["args"], i, layout["data"]["SHARDS"])
        assert shard == (i, n) and parsed.output is None
    merged, shard = _mine_args(merge["args"])
    assert shard is None and merged.output.startswith("/workspace/outputs/")
    assert merged.from_shards == parsed.shard_dir and parsed.shard_dir.startswith("/workspace/outputs/")
    for key in ("input", "model", "corpus", "passage_max_length", "pooling", "model_class", "fp32", "device"):
        assert getattr(merged, key) == getattr(parsed, key), key
    assert merge["resources"] == part["resources"]   # same GPU kind and count: the same precision


def test_shard_count_is_one_edit(tmp_path):
    shutil.copytree(REPO / "k8s", tmp_path / "k8s")
    kfile = tmp_path / "k8s" / "overlays" / "mine-shards" / "kustomization.yaml"
    assert kfile.read_text().count("SHARDS=8") == 1
    kfile.write_text(kfile.read_text().replace("SHARDS=8", "SHARDS=3"))
    docs = render(kfile.parent)
    job = next(d for d in docs if d["kind"] == "Job")
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 3
