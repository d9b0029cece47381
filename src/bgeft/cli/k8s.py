"""``bgeft k8s RECIPE --image IMAGE [...]``: Kubernetes manifests for one recipe, ready for ``kubectl apply -f``
(the manifests themselves are built in ``bgeft.k8s``)."""
from __future__ import annotations

import argparse
import sys

DESCRIPTION = "Kubernetes manifests for one recipe, ready for `kubectl apply -f`."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="the recipe to train (relative paths resolve from /workspace/job: "
                                  "../data = data PVC, ../outputs = outputs PVC)")
    p.add_argument("--image", required=True, help="the pushed bgeft image, e.g. REGISTRY/bgeft:TAG")
    p.add_argument("--nodes", type=int, default=1, help="number of nodes (default 1)")
    p.add_argument("--per-node", type=int, help="GPUs/NPUs per node (default 1 for one GPU node, else 8)")
    p.add_argument("--device", choices=["gpu", "npu"], default="gpu")
    p.add_argument("--operator", choices=["indexed", "pytorchjob"], default="indexed",
                   help="several nodes: an Indexed Job + headless Service (no operator), or a Kubeflow PyTorchJob")
    p.add_argument("--name", help="job name, a DNS label (default bgeft-single-gpu / bgeft-multi-node / "
                                  "bgeft-pytorchjob / bgeft-npu); every object the job owns carries it")
    p.add_argument("--namespace", help="namespace (default bgeft, bgeft-multi, bgeft-pytorchjob or bgeft-npu, "
                                       "as the k8s/ directories)")
    p.add_argument("--secret", metavar="NAME", help="a Secret holding HF_TOKEN (kubectl create secret generic NAME "
                                                    "--from-literal=HF_TOKEN=...), given to the trainer as HF_TOKEN")
    p.add_argument("--storage", action="store_true",
                   help="print the namespace, NetworkPolicy and PVCs instead of the job (apply once)")
    p.add_argument("--ascend-gid", type=int, default=1000, help="gid of HwHiAiUser on the NPU nodes")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")


def run(args: argparse.Namespace) -> int:
    from bgeft.k8s import render

    if args.output:
        from bgeft.safety import check_output

        check_output(args.output, inputs=[args.recipe])
    docs = render(args)
    import yaml

    text = yaml.safe_dump_all(docs, sort_keys=False, width=1000)
    if args.output:
        from bgeft.io import atomic_write_text

        atomic_write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return 0
