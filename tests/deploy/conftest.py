"""Fixtures for tests/deploy: the kustomize overlays rendered once per session."""
from __future__ import annotations

import pytest

from tests.deploy.tools import MINING, OVERLAYS, REPO, STORAGE, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    """{overlay name: rendered documents} for every overlay in k8s/overlays."""
    return {name: render(REPO / "k8s" / "overlays" / name) for name in OVERLAYS}


@pytest.fixture(scope="session")
def stored() -> dict[str, list[dict]]:
    """{overlay name: rendered documents} of k8s/storage/<overlay> (namespace, NetworkPolicy, PVCs)."""
    return {name: render(REPO / "k8s" / "storage" / name) for name in STORAGE}


@pytest.fixture(scope="session")
def mining() -> dict[str, list[dict]]:
    """{name: rendered documents} of the mining jobs k8s/overlays/mine-shards and mine-merge."""
    return {name: render(REPO / "k8s" / "overlays" / name) for name in MINING}
