"""Kubernetes manifests for one recipe, ready for ``kubectl apply -f`` (``bgeft k8s``; its arguments are in
``bgeft.cli.k8s``).

    bgeft k8s my_recipe.yaml --image registry.example.com/ml/bgeft:TAG --storage | kubectl apply -f -   # once
    bgeft k8s my_recipe.yaml --image registry.example.com/ml/bgeft:TAG --nodes 4 --name run-a | kubectl apply -f -

The output is what the kustomize directories in the repository's k8s/ render (tests/deploy checks
that they agree): ``--storage`` gives the namespace, its NetworkPolicy and the PVCs (k8s/storage/*,
applied once, never deleted with a job); without it, the job's own objects (k8s/overlays/*): the
recipe ConfigMap, a Job (one node), an Indexed Job + headless Service + layout ConfigMap (several
nodes) or a Kubeflow PyTorchJob. Every object a job owns carries the job's name, so jobs never
overwrite each other. The recipe goes through the same validator as ``bgeft train`` first.
"""
from __future__ import annotations

import argparse
import copy
import re
from pathlib import Path

from bgeft.config import recipe as recipes
from bgeft.errors import UserError
from bgeft.train.launch import STOP_GRACE_SECONDS

LABELS = {"app.kubernetes.io/name": "bgeft", "app.kubernetes.io/part-of": "bgeft"}
RESOURCE = {"gpu": "nvidia.com/gpu", "npu": "huawei.com/Ascend910"}
MASTER_PORT = {"indexed": 29500, "pytorchjob": 23456}
POD_DIR = "/workspace/job"
RECIPE_PATH = f"{POD_DIR}/recipe.yaml"
# One namespace per kind of job, each at the Pod Security level its pods need (tests/deploy/pss.py):
#   restricted: our own pods;  baseline: the training operator injects an init container without a
#   securityContext into PyTorchJob workers (kubeflow/training-operator
#   pkg/controller.v1/pytorch/initcontainer.go);  privileged: the Ascend driver is a hostPath volume.
NAMESPACE = {"job": "bgeft", "indexed": "bgeft-multi", "pytorchjob": "bgeft-pytorchjob", "npu": "bgeft-npu"}
LEVEL = {"job": "restricted", "indexed": "restricted", "pytorchjob": "baseline", "npu": "privileged"}
# A Service name is an RFC 1035 label (a letter first, at most 63): "<name>-workers" must be one.
NAME_RE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
MAX_NAME = 63 - len("-workers")
SECRET_KEYS = (("model", "token"), ("training", "hub_token"))
CLUSTER_PATHS = (": data.train_data: ", ": launch.deepspeed: ")


def load_recipe(path: str, overrides: list[str]) -> tuple[str, recipes.Recipe]:
    """The recipe's text (shipped as is) and the recipe as the pod sees it, validated like `bgeft train`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the recipe ({getattr(exc, 'strerror', None) or exc})") from None
    recipe = recipes.load(path)
    for sec, key in SECRET_KEYS:
        if recipe.section(sec).get(key) not in (None, ""):
            raise UserError(f"{recipe.where(f'{sec}.{key}')}: {sec}.{key}: a secret cannot go to the cluster in a "
                            "ConfigMap; delete it from the recipe, store it with `kubectl create secret generic "
                            "hf-token --from-literal=HF_TOKEN=...` and pass --secret hf-token")
    recipe = recipes.apply_overrides(recipe, overrides, base_dir=Path(POD_DIR))
    # paths resolve as in the pod (the recipe is mounted in /workspace/job), messages name the local file
    pod = copy.deepcopy(recipe)
    pod.path = Path(RECIPE_PATH)
    pod = recipes.resolve_paths(pod)
    pod.path = recipe.path
    checked, errors = recipes.check(pod)
    # data and DeepSpeed configs live on the cluster's volumes and image: the pod's `bgeft train` checks them
    errors = [e for e in errors if not (any(k in e for k in CLUSTER_PATHS) and "does not exist" in e)]
    out = str(checked.section("training").get("output_dir", ""))
    if not out.startswith("/workspace/outputs/"):
        errors.append(f"{recipe.where('training.output_dir')}: training.output_dir "
                      f"'{recipe.section('training').get('output_dir', '')}' is not on the outputs volume: use "
                      "../outputs/<run> (the PVC at /workspace/outputs, where restarts find the checkpoints)")
    if errors:
        raise UserError(f"{len(errors)} problem(s) in {path}:\n  " + "\n  ".join(errors))
    return text, checked


def _check_args(args: argparse.Namespace, kind: str) -> tuple[str, str]:
    if args.nodes < 1:
        raise UserError(f"--nodes {args.nodes}: use 1 or more")
    if args.per_node is not None and args.per_node < 1:
        raise UserError(f"--per-node {args.per_node}: use 1 or more")
    name = args.name or _default_name(args.device, kind)
    if len(name) > MAX_NAME or not NAME_RE.fullmatch(name):
        raise UserError(f"--name {name!r}: a job name must be a DNS label of at most {MAX_NAME} characters "
                        "(lower-case letters, digits and '-', starting with a letter, ending with a letter or "
                        "digit), e.g. bge-m3-run1")
    ns = args.namespace or NAMESPACE["npu" if args.device == "npu" else kind]
    if len(ns) > 63 or not NAME_RE.fullmatch(ns):
        raise UserError(f"--namespace {ns!r}: a namespace must be a DNS label (lower-case letters, digits and '-', "
                        "at most 63 characters), e.g. bgeft")
    if args.secret is not None and not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", args.secret):
        raise UserError(f"--secret {args.secret!r}: a Secret name is lower-case letters, digits, '-' and '.'")
    image = args.image
    if "/" not in image.split("@")[0].rsplit(":", 1)[0] or image.startswith("-") or " " in image:
        raise UserError(f"--image {image!r}: the cluster pulls the image from a registry, and a name without one "
                        "means docker.io/library/...; push the image (docker tag IMAGE REGISTRY/bgeft:TAG && "
                        "docker push REGISTRY/bgeft:TAG) and pass REGISTRY/bgeft:TAG")
    return name, ns


def render(args: argparse.Namespace) -> list[dict]:
    single = args.nodes == 1
    kind = "job" if single else args.operator
    name, ns = _check_args(args, kind)
    per_node = args.per_node or (1 if single and args.device == "gpu" else 8)
    overrides = ["launch.nproc_per_node=1"] if single and per_node == 1 else []
    text, _ = load_recipe(args.recipe, overrides)
    if args.storage:
        return storage(ns, LEVEL["npu" if args.device == "npu" else kind], shared=not single)
    owned = {**LABELS, "app.kubernetes.io/instance": name}
    docs = [_meta("v1", "ConfigMap", f"{name}-recipe", ns, labels=owned, data={"recipe.yaml": text})]
    pod = _pod(args, name, per_node, single, ["bgeft", "train", RECIPE_PATH, *overrides, "--resume"])
    pod["metadata"]["labels"].update(owned)
    container = pod["spec"]["containers"][0]
    if kind == "indexed":
        service = f"{name}-workers"
        docs.append(_meta("v1", "ConfigMap", f"{name}-layout", ns, labels=owned, data={
            "MASTER_ADDR": f"{name}-0.{service}", "MASTER_PORT": str(MASTER_PORT["indexed"]),
            "NNODES": str(args.nodes)}))
        docs.append(_meta("v1", "Service", service, ns, labels=owned, spec={
            "clusterIP": "None", "ports": [{"name": "rendezvous", "port": 29500, "targetPort": 29500}],
            "publishNotReadyAddresses": True, "selector": {"batch.kubernetes.io/job-name": name}}))
        pod["spec"]["subdomain"] = service
        container["envFrom"] = [{"configMapRef": {"name": f"{name}-layout"}}]
        container["ports"] = [{"name": "rendezvous", "containerPort": 29500}]
        docs.append(_job(name, ns, owned, pod, {"completionMode": "Indexed", "completions": args.nodes,
                                                "parallelism": args.nodes, "backoffLimit": 8}))
    elif kind == "pytorchjob":
        container["name"] = "pytorch"
        container["ports"] = [{"name": "pytorchjob-port", "containerPort": MASTER_PORT["pytorchjob"]}]
        pod["spec"].pop("restartPolicy")
        replica = {"restartPolicy": "OnFailure", "template": pod}
        docs.append(_meta("kubeflow.org/v1", "PyTorchJob", name, ns, labels=owned, spec={
            "nprocPerNode": "auto",
            "runPolicy": {"cleanPodPolicy": "None", "backoffLimit": 8, "ttlSecondsAfterFinished": 604800},
            "pytorchReplicaSpecs": {"Master": {"replicas": 1, **replica},
                                    "Worker": {"replicas": args.nodes - 1, **replica}}}))
    else:
        docs.append(_job(name, ns, owned, pod, {"backoffLimit": 4}))
    return docs


def _default_name(device: str, kind: str) -> str:
    if device == "npu" and kind == "job":
        return "bgeft-npu"
    return {"job": "bgeft-single-gpu", "indexed": "bgeft-multi-node", "pytorchjob": "bgeft-pytorchjob"}[kind]


def _meta(api: str, kind: str, name: str, ns: str | None, labels: dict | None = None, **body) -> dict:
    meta = {"name": name, "labels": dict(labels or LABELS)}
    if ns and kind != "Namespace":
        meta["namespace"] = ns
    return {"apiVersion": api, "kind": kind, "metadata": meta, **body}


def storage(ns: str, level: str, shared: bool) -> list[dict]:
    """The namespace (at its Pod Security level), the NetworkPolicy and the PVCs: k8s/storage/*."""
    doc = _meta("v1", "Namespace", ns, None)
    doc["metadata"]["labels"].update({"pod-security.kubernetes.io/enforce": level,
                                      "pod-security.kubernetes.io/warn": "restricted" if level != "privileged"
                                      else "baseline"})
    select = {"matchLabels": {"app.kubernetes.io/name": "bgeft"}}
    policy = _meta("networking.k8s.io/v1", "NetworkPolicy", "bgeft-trainers", ns, spec={
        "ingress": [{"from": [{"podSelector": select}]}], "podSelector": select, "policyTypes": ["Ingress"]})
    mode = "ReadWriteMany" if shared else "ReadWriteOnce"
    pvcs = [_meta("v1", "PersistentVolumeClaim", claim(n, shared), ns, spec={
        "accessModes": [mode], "resources": {"requests": {"storage": size}}})
        for n, size in (("data", "50Gi"), ("outputs", "200Gi"), ("cache", "100Gi"))]
    return [doc, policy, *pvcs]


def claim(volume: str, shared: bool) -> str:
    """PVC names: ReadWriteMany claims of multi-node jobs never share a name with ReadWriteOnce ones
    (a PVC's access modes are immutable)."""
    return f"bgeft-shared-{volume}" if shared else f"bgeft-{volume}"


def _job(name: str, ns: str, labels: dict, pod: dict, spec: dict) -> dict:
    return _meta("batch/v1", "Job", name, ns, labels=labels,
                 spec={**spec, "ttlSecondsAfterFinished": 604800, "template": pod})


def _pod(args: argparse.Namespace, name: str, per_node: int, single: bool, train_args: list[str]) -> dict:
    small = single and per_node == 1
    cpu, memory, shm, tmp = ("8", "64Gi", "16Gi", "10Gi") if small else ("32", "256Gi", "64Gi", "20Gi")
    amount = {"cpu": cpu, "memory": memory, RESOURCE[args.device]: per_node}
    mounts = [("recipe", RECIPE_PATH), ("data", "/workspace/data"), ("outputs", "/workspace/outputs"),
              ("cache", "/cache"), ("dshm", "/dev/shm"), ("tmp", "/tmp"), ("home", "/home/bgeft")]
    volume_mounts = [{"name": n, "mountPath": p} for n, p in mounts]
    volume_mounts[0].update(subPath="recipe.yaml", readOnly=True)
    volume_mounts[1]["readOnly"] = True
    volumes = [{"name": "recipe", "configMap": {"name": f"{name}-recipe"}},
               {"name": "data", "persistentVolumeClaim": {"claimName": claim("data", not single), "readOnly": True}},
               {"name": "outputs", "persistentVolumeClaim": {"claimName": claim("outputs", not single)}},
               {"name": "cache", "persistentVolumeClaim": {"claimName": claim("cache", not single)}},
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
        "name": "bgeft", "image": args.image, "imagePullPolicy": "IfNotPresent",
        "args": train_args,  # args, not command: the image's entrypoint sets up the environment
        "env": [{"name": "BGEFT_STOP_GRACE_SECONDS", "value": str(STOP_GRACE_SECONDS)}],
        "resources": {"requests": dict(amount), "limits": dict(amount)},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": volume_mounts}
    if args.secret:
        container["env"].append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": args.secret,
                                                                                     "key": "HF_TOKEN"}}})
    return {"metadata": {"labels": {"app.kubernetes.io/component": "trainer", **LABELS}},
            "spec": {"restartPolicy": "OnFailure", "terminationGracePeriodSeconds": STOP_GRACE_SECONDS,
                     "automountServiceAccountToken": False, "securityContext": security,
                     "containers": [container], "volumes": volumes}}
