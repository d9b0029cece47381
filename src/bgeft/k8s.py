"""``bgeft k8s``: Kubernetes manifests for one recipe, ready for ``kubectl apply -f``.

    bgeft k8s my_recipe.yaml --image registry.example.com/ml/bgeft:0.1.0-cuda12.6-torch2.13.0 --nodes 4 \
        | kubectl apply -f -

The output is what the kustomize overlays in the repository's k8s/ render (tests/deploy checks that
they agree): a namespace, the data/outputs/cache PVCs, a NetworkPolicy, the recipe as a ConfigMap,
and a Job (one node), an Indexed Job + headless Service (several nodes), or a Kubeflow PyTorchJob.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from .errors import UserError
from .io import atomic_write_text
from .safety import check_output

LABELS = {"app.kubernetes.io/name": "bgeft", "app.kubernetes.io/part-of": "bgeft"}
RESOURCE = {"gpu": "nvidia.com/gpu", "npu": "huawei.com/Ascend910"}
MASTER_PORT = {"indexed": 29500, "pytorchjob": 23456}
RECIPE_PATH = "/workspace/job/recipe.yaml"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bgeft k8s", description=__doc__.split("\n\n")[0])
    p.add_argument("recipe", help="the recipe to train (relative paths resolve from /workspace/job: "
                                  "../data = data PVC, ../outputs = outputs PVC)")
    p.add_argument("--image", required=True, help="the pushed bgeft image, e.g. REGISTRY/bgeft:TAG")
    p.add_argument("--nodes", type=int, default=1, help="number of nodes (default 1)")
    p.add_argument("--per-node", type=int, help="GPUs/NPUs per node (default 1 for one GPU node, else 8)")
    p.add_argument("--device", choices=["gpu", "npu"], default="gpu")
    p.add_argument("--operator", choices=["indexed", "pytorchjob"], default="indexed",
                   help="several nodes: an Indexed Job + headless Service (no operator), or a Kubeflow PyTorchJob")
    p.add_argument("--name", help="job name (default bgeft-single-gpu / bgeft-multi-node / bgeft-pytorchjob / bgeft-npu)")
    p.add_argument("--namespace", default="bgeft")
    p.add_argument("--ascend-gid", type=int, default=1000, help="gid of HwHiAiUser on the NPU nodes")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.output:
        check_output(args.output, [args.recipe])
    docs = render(args)
    text = yaml.safe_dump_all(docs, sort_keys=False, width=1000)
    if args.output:
        atomic_write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


def load_recipe(path: str) -> tuple[str, dict]:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read the recipe ({exc.strerror})") from None
    try:
        recipe = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(recipe, dict) or "task" not in recipe:
        raise UserError(f"{path}: not a bgeft recipe (no 'task:' key); start from `bgeft cp NAME {path}`")
    out = str((recipe.get("training") or {}).get("output_dir", ""))
    if not (out.startswith("../outputs/") or out.startswith("/workspace/outputs/")):
        raise UserError(f"{path}: training.output_dir '{out}' is not on the outputs volume: use "
                        "../outputs/<run> (the PVC at /workspace/outputs, where restarts find the checkpoints)")
    return text, recipe


def render(args: argparse.Namespace) -> list[dict]:
    if args.nodes < 1:
        raise UserError(f"--nodes {args.nodes}: use 1 or more")
    text, recipe = load_recipe(args.recipe)
    single = args.nodes == 1
    per_node = args.per_node or (1 if single and args.device == "gpu" else 8)
    if per_node < 1:
        raise UserError(f"--per-node {per_node}: use 1 or more")
    kind = "job" if single else args.operator
    name = args.name or _default_name(args.device, kind)
    ns = args.namespace
    docs = [_namespace(ns, args.device), *_pvcs(ns, shared=not single), _network_policy(ns),
            _meta("v1", "ConfigMap", "bgeft-recipe", ns, data={"recipe.yaml": text})]
    pod = _pod(args, per_node, single, _train_args(recipe, single, per_node))
    if kind == "indexed":
        service = f"{name}-workers"
        docs.append(_meta("v1", "ConfigMap", "bgeft-layout", ns, data={
            "MASTER_ADDR": f"{name}-0.{service}", "MASTER_PORT": str(MASTER_PORT["indexed"]),
            "NNODES": str(args.nodes)}))
        docs.append(_meta("v1", "Service", service, ns, spec={
            "clusterIP": "None", "ports": [{"name": "rendezvous", "port": 29500, "targetPort": 29500}],
            "publishNotReadyAddresses": True, "selector": {"batch.kubernetes.io/job-name": name}}))
        pod["spec"]["subdomain"] = service
        container = pod["spec"]["containers"][0]
        container["envFrom"] = [{"configMapRef": {"name": "bgeft-layout"}}]
        container["ports"] = [{"name": "rendezvous", "containerPort": 29500}]
        docs.append(_job(name, ns, pod, {"completionMode": "Indexed", "completions": args.nodes,
                                         "parallelism": args.nodes, "backoffLimit": 8}))
    elif kind == "pytorchjob":
        container = pod["spec"]["containers"][0]
        container["name"] = "pytorch"
        container["ports"] = [{"name": "pytorchjob-port", "containerPort": MASTER_PORT["pytorchjob"]}]
        pod["spec"].pop("restartPolicy")
        replica = {"restartPolicy": "OnFailure", "template": pod}
        docs.append(_meta("kubeflow.org/v1", "PyTorchJob", name, ns, spec={
            "nprocPerNode": "auto",
            "runPolicy": {"cleanPodPolicy": "None", "backoffLimit": 8, "ttlSecondsAfterFinished": 604800},
            "pytorchReplicaSpecs": {"Master": {"replicas": 1, **replica},
                                    "Worker": {"replicas": args.nodes - 1, **replica}}}))
    else:
        docs.append(_job(name, ns, pod, {"backoffLimit": 4}))
    return docs


def _default_name(device: str, kind: str) -> str:
    if device == "npu" and kind == "job":
        return "bgeft-npu"
    return {"job": "bgeft-single-gpu", "indexed": "bgeft-multi-node", "pytorchjob": "bgeft-pytorchjob"}[kind]


def _train_args(recipe: dict, single: bool, per_node: int) -> list[str]:
    args = ["bgeft", "train", RECIPE_PATH]
    if single and per_node == 1:
        args.append("launch.nproc_per_node=1")
        if (recipe.get("training") or {}).get("negatives_cross_device"):
            args.append("training.negatives_cross_device=false")  # needs more than one process
    return args + ["--resume"]


def _meta(api: str, kind: str, name: str, ns: str | None, **body) -> dict:
    meta = {"name": name, "labels": dict(LABELS)}
    if ns and kind != "Namespace":
        meta["namespace"] = ns
    return {"apiVersion": api, "kind": kind, "metadata": meta, **body}


def _namespace(ns: str, device: str) -> dict:
    doc = _meta("v1", "Namespace", ns, None)
    # the NPU pod mounts the driver from the node (hostPath), which only "privileged" admits
    doc["metadata"]["labels"].update({"pod-security.kubernetes.io/enforce": "privileged"} if device == "npu" else
                                     {"pod-security.kubernetes.io/enforce": "restricted",
                                      "pod-security.kubernetes.io/warn": "restricted"})
    return doc


def _pvcs(ns: str, shared: bool) -> list[dict]:
    mode = "ReadWriteMany" if shared else "ReadWriteOnce"
    return [_meta("v1", "PersistentVolumeClaim", f"bgeft-{n}", ns, spec={
        "accessModes": [mode], "resources": {"requests": {"storage": size}}})
        for n, size in (("cache", "100Gi"), ("data", "50Gi"), ("outputs", "200Gi"))]


def _network_policy(ns: str) -> dict:
    select = {"matchLabels": {"app.kubernetes.io/name": "bgeft"}}
    return _meta("networking.k8s.io/v1", "NetworkPolicy", "bgeft-trainers", ns, spec={
        "ingress": [{"from": [{"podSelector": select}]}], "podSelector": select, "policyTypes": ["Ingress"]})


def _job(name: str, ns: str, pod: dict, spec: dict) -> dict:
    return _meta("batch/v1", "Job", name, ns, spec={**spec, "ttlSecondsAfterFinished": 604800, "template": pod})


def _pod(args: argparse.Namespace, per_node: int, single: bool, train_args: list[str]) -> dict:
    small = single and per_node == 1
    cpu, memory, shm, tmp = ("8", "64Gi", "16Gi", "10Gi") if small else ("32", "256Gi", "64Gi", "20Gi")
    amount = {"cpu": cpu, "memory": memory, RESOURCE[args.device]: per_node}
    mounts = [("recipe", RECIPE_PATH), ("data", "/workspace/data"), ("outputs", "/workspace/outputs"),
              ("cache", "/cache"), ("dshm", "/dev/shm"), ("tmp", "/tmp"), ("home", "/home/bgeft")]
    volume_mounts = [{"name": n, "mountPath": p} for n, p in mounts]
    volume_mounts[0].update(subPath="recipe.yaml", readOnly=True)
    volume_mounts[1]["readOnly"] = True
    volumes = [{"name": "recipe", "configMap": {"name": "bgeft-recipe"}},
               {"name": "data", "persistentVolumeClaim": {"claimName": "bgeft-data", "readOnly": True}},
               {"name": "outputs", "persistentVolumeClaim": {"claimName": "bgeft-outputs"}},
               {"name": "cache", "persistentVolumeClaim": {"claimName": "bgeft-cache"}},
               {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm}},
               {"name": "tmp", "emptyDir": {"sizeLimit": tmp}},
               {"name": "home", "emptyDir": {"sizeLimit": "1Gi"}}]
    security = {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
                "fsGroupChangePolicy": "OnRootMismatch", "seccompProfile": {"type": "RuntimeDefault"}}
    if args.device == "npu":
        volume_mounts += [{"name": "ascend-driver", "mountPath": "/usr/local/Ascend/driver", "readOnly": True},
                          {"name": "ascend-install-info", "mountPath": "/etc/ascend_install.info", "readOnly": True}]
        volumes += [{"name": "ascend-driver", "hostPath": {"path": "/usr/local/Ascend/driver", "type": "Directory"}},
                    {"name": "ascend-install-info", "hostPath": {"path": "/etc/ascend_install.info", "type": "File"}}]
        security["supplementalGroups"] = [args.ascend_gid]
    container = {
        "name": "bgeft", "image": args.image, "imagePullPolicy": "Always",
        "args": train_args,  # args, not command: the image's entrypoint sets up the environment
        "resources": {"requests": dict(amount), "limits": dict(amount)},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": volume_mounts}
    return {"metadata": {"labels": {"app.kubernetes.io/component": "trainer", **LABELS}},
            "spec": {"restartPolicy": "OnFailure", "terminationGracePeriodSeconds": 900,
                     "automountServiceAccountToken": False, "securityContext": security,
                     "containers": [container], "volumes": volumes}}
