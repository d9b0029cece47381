"""Session fixtures: tiny models are built once and shared by every test module.

* ``demo_model``  - the embedded all-MiniLM-L6-v2 copy made M3-ready (real pretrained weights).
* ``tiny_xlmr``   - a random 2-layer XLM-RoBERTa (BGE-M3's architecture) with a small tokenizer.
* ``example_data`` - the repository's example_data/ directory.
* ``run_cli``     - runs ``bgeft`` in-process and returns (exit code, stdout, stderr).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.tiny_models import build_tiny_xlmr, example_texts

REPO = Path(__file__).resolve().parent.parent

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")


def _has_cuda() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except Exception:
        return False


def _has_npu() -> bool:
    try:
        import torch_npu  # noqa: F401
        return True
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="no CUDA GPU visible")
    skip_npu = pytest.mark.skip(reason="no Ascend NPU visible (torch_npu not importable)")
    gpu, npu = None, None
    for item in items:
        if "gpu" in item.keywords:
            gpu = _has_cuda() if gpu is None else gpu
            if not gpu:
                item.add_marker(skip_gpu)
        if "npu" in item.keywords:
            npu = _has_npu() if npu is None else npu
            if not npu:
                item.add_marker(skip_npu)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def example_data() -> Path:
    return REPO / "example_data"


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory) -> Path:
    from bgeft.models.demo import build_demo_model

    return build_demo_model(tmp_path_factory.mktemp("models") / "minilm-m3")


@pytest.fixture(scope="session")
def tiny_xlmr(tmp_path_factory) -> Path:
    texts = example_texts(REPO / "example_data")
    return build_tiny_xlmr(tmp_path_factory.mktemp("models") / "tiny-xlmr", texts)


@pytest.fixture
def counted(monkeypatch):
    """Every text the network actually sees, in order (through any Encoder)."""
    from bgeft.models.embedder import Encoder

    seen: list[str] = []
    original = Encoder._encode_here

    def counting(self, texts, max_len, outputs, kind, lengths):
        seen.extend(texts)
        return original(self, texts, max_len, outputs, kind, lengths)

    monkeypatch.setattr(Encoder, "_encode_here", counting)
    return seen


@pytest.fixture
def run_cli(capsys):
    from bgeft.cli.main import main

    def _run(*argv: str) -> tuple[int, str, str]:
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse exits
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return _run
