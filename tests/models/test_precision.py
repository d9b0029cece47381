"""Precision and start-up of the one encoder: bf16 where the accelerator has it, fp16 otherwise, fp32 on the
CPU; FlagModel imported without FlagEmbedding's training stack."""
from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from bgeft.models.devices import half_dtype
from bgeft.models.embedder import Encoder
from tests.helpers.tiny_models import example_texts


@pytest.fixture
def fake_cuda(monkeypatch):
    """A machine whose CUDA GPU reports the compute capability the test sets."""
    capability = {"value": (8, 0)}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: capability["value"])
    return capability


@pytest.mark.parametrize("capability, dtype", [((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16),
                                               ((7, 5), torch.float16), ((6, 1), torch.float16)])
def test_cuda_gets_bf16_from_compute_capability_8(fake_cuda, capability, dtype):
    fake_cuda["value"] = capability
    assert half_dtype("cuda:0") is dtype


def test_npu_gets_bf16_unless_it_reports_none(monkeypatch):
    monkeypatch.setattr(torch, "npu", types.SimpleNamespace(is_bf16_supported=lambda: True), raising=False)
    assert half_dtype("npu:0") is torch.bfloat16
    monkeypatch.setattr(torch, "npu", types.SimpleNamespace(is_bf16_supported=lambda: False), raising=False)
    assert half_dtype("npu:0") is torch.float16
    assert half_dtype("cpu") is None


def test_encoder_chooses_the_half_type_of_its_device(fake_cuda, demo_model):
    enc = Encoder(demo_model, device="cuda:0")
    assert enc.fp16 and enc.half_dtype is torch.bfloat16 and enc.settings()["half"] == "torch.bfloat16"
    fake_cuda["value"] = (7, 0)
    assert Encoder(demo_model, device="cuda:0").half_dtype is torch.float16
    assert Encoder(demo_model, device="cuda:0", fp16=False).half_dtype is None  # --fp32 / --precision fp32
    cpu = Encoder(demo_model, device="cpu", fp16=True)
    assert cpu.half_dtype is None and cpu.settings()["half"] == ""


def test_the_chosen_half_type_is_what_the_weights_run_in(demo_model, example_data):
    """The load casts to ``half_dtype`` (bf16 runs on a CPU too, so the path is exercised for real here)."""
    texts = list(dict.fromkeys(example_texts(example_data)))[:12]
    full = Encoder(demo_model, device="cpu", progress=False)
    half = Encoder(demo_model, device="cpu", progress=False)
    half.half_dtype = torch.bfloat16
    assert next(half.backend.module.parameters()).dtype is torch.bfloat16
    assert next(full.backend.module.parameters()).dtype is torch.float32
    a, b = full.dense(texts), half.dense(texts)
    assert b.dtype == np.float32 and np.abs(a - b).max() < 0.05 and (a * b).sum(1).min() > 0.99


def test_flagmodel_loads_without_flagembeddings_training_stack():
    """FlagModel is FlagEmbedding's own class, imported without transformers' Trainer, peft or datasets;
    a later ``import FlagEmbedding`` still works and gives the same class."""
    code = ("import sys\n"
            "from bgeft.models.flag_classes import flag_model_class\n"
            "cls = flag_model_class(False)\n"
            "heavy = sorted(m for m in ('peft', 'datasets', 'transformers.trainer_utils', 'FlagEmbedding') "
            "if m in sys.modules)\n"
            "import FlagEmbedding\n"
            "print(cls.__module__, heavy, FlagEmbedding.FlagModel is cls, flag_model_class(False) is cls)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["FlagEmbedding.inference.embedder.encoder_only.base", "[]", "True",
                                  "True"]


@pytest.fixture(scope="module")
def cross_encoder(tiny_xlmr, tmp_path_factory):
    from tests.eval.helpers import build_tiny_reranker

    return build_tiny_reranker(tiny_xlmr, tmp_path_factory.mktemp("rr") / "xlmr-reranker")


def test_the_reranker_chooses_the_half_type_of_its_device(fake_cuda, cross_encoder, monkeypatch):
    from bgeft.models.reranker import Reranker

    rr = Reranker(cross_encoder, device="cuda:0")
    assert rr.fp16 and rr.half_dtype is torch.bfloat16 and rr.info()["half"] == "torch.bfloat16"
    fake_cuda["value"] = (7, 5)
    assert Reranker(cross_encoder, device="cuda:0").half_dtype is torch.float16
    assert Reranker(cross_encoder, device="cuda:0", fp16=False).half_dtype is None
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    two = Reranker(cross_encoder, device="cuda:0,cuda:1")  # FlagEmbedding's pool keeps its own fp16
    assert two.fp16 and two.half_dtype is None
    assert Reranker(cross_encoder, device="cpu").half_dtype is None


def test_the_reranker_scores_in_the_chosen_half_type(cross_encoder):
    """bf16 runs on a CPU too, so the cast FlagReranker scores with is exercised for real here."""
    from bgeft.models.reranker import Reranker

    pairs = [("渡口在哪里？", "渡口在镇子的南头。"), ("who made the clock", "the river"), ("q", "宋青山做了钟。")]
    full = Reranker(cross_encoder, device="cpu", fp16=False)
    half = Reranker(cross_encoder, device="cpu", fp16=False)
    half.half_dtype = torch.bfloat16
    assert next(half.model.model.parameters()).dtype is torch.bfloat16
    assert half.model.use_fp16 is False  # FlagEmbedding's own .half() would undo bf16
    a, b = np.array(full.score(pairs)), np.array(half.score(pairs))
    assert next(full.model.model.parameters()).dtype is torch.float32
    assert np.abs(a - b).max() < 0.05 * max(1.0, np.abs(a).max())
