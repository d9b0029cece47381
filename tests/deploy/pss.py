"""A checker for the Kubernetes Pod Security Standards ("baseline" and "restricted") over pod specs.

The rules follow the standard as published (kubernetes/website,
content/en/docs/concepts/security/pod-security-standards.md; enforced by the PodSecurity admission
controller, k8s.io/pod-security-admission/policy): only the fields our manifests, the training
operator's injected init container and the RDMA component can set are checked, each as the standard
words it. `violations(pod_spec, level)` lists what the level forbids, [] when the pod is admitted."""
from __future__ import annotations

# baseline: "Adding additional capabilities beyond those listed below must be disallowed"
BASELINE_CAPS = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
                 "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
# restricted: "Volume Types ... only the following volume types" are allowed
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}
LEVELS = ("privileged", "baseline", "restricted")


def _containers(spec: dict):
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(field) or []:
            yield f"{field}[{c.get('name')}]", c


def baseline(spec: dict) -> list[str]:
    out = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            out.append(f"{key}: true (Host Namespaces)")
    for v in spec.get("volumes") or []:
        if "hostPath" in v:
            out.append(f"volume {v['name']}: hostPath (HostPath Volumes)")
    pod_sc = spec.get("securityContext") or {}
    if (pod_sc.get("seccompProfile") or {}).get("type") == "Unconfined":
        out.append("pod seccompProfile Unconfined (Seccomp)")
    for where, c in _containers(spec):
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            out.append(f"{where}: privileged (Privileged Containers)")
        extra = set((sc.get("capabilities") or {}).get("add") or []) - BASELINE_CAPS
        if extra:
            out.append(f"{where}: adds capabilities {sorted(extra)} (Capabilities)")
        if any(p.get("hostPort") for p in c.get("ports") or []):
            out.append(f"{where}: hostPort (Host Ports)")
        if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
            out.append(f"{where}: seccompProfile Unconfined (Seccomp)")
        if sc.get("procMount") not in (None, "Default"):
            out.append(f"{where}: procMount {sc['procMount']} (/proc Mount Type)")
    return out


def restricted(spec: dict) -> list[str]:
    out = baseline(spec)
    for v in spec.get("volumes") or []:
        kinds = set(v) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            out.append(f"volume {v['name']}: type {sorted(kinds)} (Volume Types)")
    pod_sc = spec.get("securityContext") or {}
    for where, c in _containers(spec):
        sc = c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{where}: allowPrivilegeEscalation is not false (Privilege Escalation)")
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            out.append(f"{where}: runAsNonRoot is not true (Running as Non-root)")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            out.append(f"{where}: runAsUser 0 (Running as Non-root user)")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{where}: seccompProfile is {seccomp or 'unset'} (Seccomp)")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{where}: capabilities do not drop ALL (Capabilities)")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append(f"{where}: adds capabilities {sorted(set(caps['add']) - {'NET_BIND_SERVICE'})} (Capabilities)")
    return out


def violations(spec: dict, level: str) -> list[str]:
    assert level in LEVELS, level
    return {"privileged": lambda s: [], "baseline": baseline, "restricted": restricted}[level](spec)


def operator_init_container(job_name: str) -> dict:
    """The init container the Kubeflow training operator (v1) adds to every Worker of a PyTorchJob with a
    Master: its default template, as in kubeflow/training-operator pkg/controller.v1/pytorch/initcontainer.go
    (image from the operator's --pytorch-init-container-image flag; no securityContext at all)."""
    return {"name": "init-pytorch", "image": "alpine:3.10", "imagePullPolicy": "IfNotPresent",
            "resources": {"limits": {"cpu": "100m", "memory": "20Mi"}, "requests": {"cpu": "50m", "memory": "10Mi"}},
            "command": ["sh", "-c", f"until nslookup {job_name}-master-0; do echo waiting for master; sleep 2; done;"]}


def admitted_pods(doc: dict) -> list[tuple[str, dict]]:
    """(label, pod spec) of every pod a workload makes, as the cluster would see it: a PyTorchJob's
    Worker pods with the operator's init container added."""
    import copy

    if doc["kind"] == "Job":
        return [(doc["metadata"]["name"], doc["spec"]["template"]["spec"])]
    if doc["kind"] != "PyTorchJob":
        return []
    pods = []
    specs = doc["spec"]["pytorchReplicaSpecs"]
    for role, replica in specs.items():
        spec = copy.deepcopy(replica["template"]["spec"])
        if role == "Worker" and "Master" in specs:
            spec.setdefault("initContainers", []).append(operator_init_container(doc["metadata"]["name"]))
        pods.append((f"{doc['metadata']['name']}/{role}", spec))
    return pods
