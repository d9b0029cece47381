#!/usr/bin/env python3
"""Last build step of the images: prove the environment is the one the requirements file pins.

    python scripts/verify_image.py requirements/cuda.txt --torch 2.13.0 --cuda 12.6 \
        --import torch FlagEmbedding deepspeed faiss bgeft

Checks every ``name==version`` line of REQUIREMENTS against the installed distribution, the torch
build (version, CUDA version) and that each module imports. Prints one line per check and exits 1
listing every mismatch, so a build that drifted fails instead of producing a subtly different image.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata as metadata
import sys
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import Version


def pinned(path: Path) -> list[Requirement]:
    """The ``name==version`` requirements of a pip requirements file (comments and options skipped)."""
    reqs = []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise SystemExit(f"{path}:{lineno}: not a requirement: {line!r} ({exc})") from None
        pins = [s for s in req.specifier if s.operator == "=="]
        if len(pins) != 1:
            raise SystemExit(f"{path}:{lineno}: {req.name} is not pinned with '==': pin an exact version")
        reqs.append(req)
    return reqs


def check_pins(reqs: list[Requirement]) -> list[str]:
    problems = []
    for req in reqs:
        try:
            installed = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{req.name}: not installed (pinned {req.specifier})")
            continue
        ok = req.specifier.contains(installed, prereleases=True)
        print(f"{'ok ' if ok else 'BAD'} {req.name}=={installed} (pinned {req.specifier})")
        if not ok:
            problems.append(f"{req.name}: installed {installed}, pinned {req.specifier}")
    return problems


def check_torch(version: str | None, cuda: str | None) -> list[str]:
    if version is None and cuda is None:
        return []
    import torch

    problems = []
    found = Version(torch.__version__).public
    if version is not None:
        print(f"{'ok ' if found == version else 'BAD'} torch build {torch.__version__} (expected {version})")
        if found != version:
            problems.append(f"torch: found {torch.__version__}, expected {version}")
    if cuda is not None:
        built = torch.version.cuda or "none"
        good = built == cuda or built.startswith(cuda + ".")
        print(f"{'ok ' if good else 'BAD'} torch CUDA {built} (expected {cuda})")
        if not good:
            problems.append(f"torch: built for CUDA {built}, expected {cuda}")
    return problems


def check_arch(required: list[str]) -> list[str]:
    """Print the GPU architectures torch was compiled for; each of ``required`` must be among them.

    PyTorch's CUDA 12.6 builds stop at sm_90 (Hopper); Blackwell (B200/GB200 sm_100, RTX 50xx sm_120)
    needs a CUDA 12.8+ build (PyTorch release notes, 2.7: CUDA 12.8 wheels with Blackwell support)."""
    import torch

    archs = torch.cuda.get_arch_list()
    print(f"ok  torch CUDA architectures: {' '.join(archs) or 'none'}")
    missing = [a for a in required if a not in archs]
    if missing:
        print(f"BAD torch has no kernels for {' '.join(missing)}")
        return [f"torch: built without {', '.join(missing)} (architectures: {' '.join(archs) or 'none'}); "
                "use a base image with a newer CUDA"]
    return []


def check_ops(builders: list[str]) -> list[str]:
    """Build (JIT) and load DeepSpeed ops now, so a missing compiler or CUDA_HOME fails the image
    build instead of the first training step (fused_adam is built on the first optimizer step)."""
    problems = []
    for name in builders:
        try:
            from deepspeed.accelerator import get_accelerator

            builder = get_accelerator().create_op_builder(name)
            if builder is None:
                raise ValueError(f"DeepSpeed's {get_accelerator()._name} accelerator has no {name}")
            builder.load(verbose=False)
        except Exception as exc:
            print(f"BAD op {name}: {type(exc).__name__}: {exc}")
            problems.append(f"DeepSpeed op {name}: {type(exc).__name__}: {exc}")
        else:
            print(f"ok  op {name} built and loaded")
    return problems


def check_imports(modules: list[str]) -> list[str]:
    problems = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:
            print(f"BAD import {name}: {type(exc).__name__}: {exc}")
            problems.append(f"import {name}: {type(exc).__name__}: {exc}")
        else:
            print(f"ok  import {name}")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="verify_image.py", description=__doc__.split("\n\n")[0])
    p.add_argument("requirements", type=Path)
    p.add_argument("--torch", metavar="VERSION", help="expected torch version (public part)")
    p.add_argument("--cuda", metavar="VERSION", help="expected CUDA version torch was built with (none: a CPU build)")
    p.add_argument("--require-arch", nargs="*", default=[], metavar="SM",
                   help="GPU architectures torch must have kernels for, e.g. sm_90 sm_100 sm_120")
    p.add_argument("--load-op", dest="ops", nargs="*", default=[], metavar="BUILDER",
                   help="DeepSpeed op builders to build and load now, e.g. FusedAdamBuilder")
    p.add_argument("--import", dest="modules", nargs="*", default=[], metavar="MODULE")
    args = p.parse_args(argv)
    # a Dockerfile passes each list as one word ("sm_90 sm_100", "" for none)
    args.require_arch = [w for v in args.require_arch for w in v.replace(",", " ").split()]
    args.ops = [w for v in args.ops for w in v.replace(",", " ").split()]
    problems = check_pins(pinned(args.requirements))
    problems += check_torch(args.torch, args.cuda)
    if args.require_arch or args.cuda not in (None, "none"):
        problems += check_arch(args.require_arch)
    problems += check_ops(args.ops)
    problems += check_imports(args.modules)
    if problems:
        print(f"verify_image: {len(problems)} problem(s):", file=sys.stderr)
        for line in problems:
            print(f"  - {line}", file=sys.stderr)
        return 1
    print("verify_image: environment matches", args.requirements)
    return 0


if __name__ == "__main__":
    sys.exit(main())
