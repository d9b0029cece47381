"""Fixtures for the evaluation tests: M3-ready tiny models, a reranker, tiny BEIR data."""
from __future__ import annotations

import pytest

from tests.eval.helpers import add_m3_heads, build_tiny_reranker, write_beir


@pytest.fixture(scope="session")
def m3_tiny(tiny_xlmr, tmp_path_factory):
    """tiny XLM-R with seeded colbert/sparse heads saved, so BGEM3FlagModel scores all modes."""
    return add_m3_heads(tiny_xlmr, tmp_path_factory.mktemp("m3") / "xlmr-m3")


@pytest.fixture(scope="session")
def m3_tiny_tuned(tiny_xlmr, tmp_path_factory):
    """A 'fine-tuned' stand-in: the same model with seeded noise added to every weight."""
    return add_m3_heads(tiny_xlmr, tmp_path_factory.mktemp("m3") / "xlmr-m3-tuned", seed=1, perturb=0.5)


@pytest.fixture(scope="session")
def tiny_reranker(tiny_xlmr, tmp_path_factory):
    return build_tiny_reranker(tiny_xlmr, tmp_path_factory.mktemp("rr") / "xlmr-reranker")


@pytest.fixture(scope="session")
def beir_dir(tmp_path_factory):
    return write_beir(tmp_path_factory.mktemp("data") / "beir")
