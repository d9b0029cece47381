"""bgeft env / bgeft validate in a broken or untested environment: one line naming the package version that
breaks FlagEmbedding and the requirement that fixes it, never a traceback."""
from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from bgeft.config import fe_fields as schema
from bgeft.train import envcheck

REPO = Path(__file__).resolve().parent.parent
GONE = "transformers.modeling_attn_mask_utils"


def _pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements" / f"{name}.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", line)
        if match:
            pins[match.group(1)] = match.group(2)
    return pins


def _pyproject(dist: str) -> Requirement:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(Requirement(d) for d in deps if Requirement(d).name == dist)


def test_transformers_bound_excludes_the_release_that_breaks_flagembedding():
    spec = _pyproject("transformers").specifier
    assert not spec.contains("5.24.0")
    assert spec.contains(_pins("cpu")["transformers"])


@pytest.mark.parametrize("image", ["cpu", "cuda", "npu"], ids=["cpu-pins", "cuda-pins", "ascend-pins"])
def test_tested_versions_cover_every_pinned_install(image):
    for dist, version in _pins(image).items():
        assert not envcheck.untested(dist, version), (
            f"requirements/{image}.txt pins {dist}=={version}: add it to TESTED"
        )


def test_untested_versions_are_named():
    assert envcheck.untested("transformers", "5.24.0")
    assert not envcheck.untested("transformers", "5.23.0")
    assert not envcheck.untested("numpy", "9.9")  # no tested series recorded: nothing to say


def _broken_import(monkeypatch):
    real = importlib.import_module

    def fake(name, *args, **kwargs):
        if name == "FlagEmbedding":
            raise ModuleNotFoundError(f"No module named '{GONE}'", name=GONE)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", fake)
    versions = {"transformers": "5.24.0", "FlagEmbedding": "1.4.2"}
    monkeypatch.setattr(envcheck, "dist_version", lambda dist: versions.get(dist, "1.0"))
    monkeypatch.setattr(envcheck, "requirement_for", lambda dist: "transformers<5.24,>=4.56")


MESSAGE = (f"FlagEmbedding 1.4.2 cannot be imported with transformers 5.24.0 (ModuleNotFoundError: No module named "
           f"'{GONE}'); install the version bgeft is tested with: pip install 'transformers<5.24,>=4.56' "
           "(tested: 5.23.x)")


def test_broken_flagembedding_names_version_and_fix(monkeypatch):
    _broken_import(monkeypatch)
    exc = ModuleNotFoundError(f"No module named '{GONE}'", name=GONE)
    assert envcheck.broken_flagembedding(exc) == MESSAGE


def test_env_reports_a_broken_flagembedding_without_traceback(monkeypatch, run_cli):
    _broken_import(monkeypatch)
    code, out, err = run_cli("env")
    assert code == 1 and "Traceback" not in out + err
    assert f"  BROKEN   FlagEmbedding          1.4.2: {MESSAGE}" in out.splitlines()
    assert "outside the tested versions: " in out and "transformers 5.24.0" in out


def test_validate_falls_back_to_live_fields_and_fails_in_one_line(monkeypatch, run_cli):
    _broken_import(monkeypatch)
    monkeypatch.setattr(schema, "installed_versions", lambda: {"FlagEmbedding": "1.4.2", "transformers": "5.24.0"})

    def live():
        raise ModuleNotFoundError(f"No module named '{GONE}'", name=GONE)

    monkeypatch.setattr(schema, "live_schema", live)
    code, out, err = run_cli("validate", REPO / "recipes" / "demo_cpu_m3.yaml")
    assert code == 2
    assert err == f"bgeft: error: cannot read FlagEmbedding's arguments: {MESSAGE}\n"


def test_requirement_for_reads_bgeft_metadata(monkeypatch):
    monkeypatch.setattr(envcheck.metadata, "requires", lambda dist: [
        "torch>=2.1", "transformers<5.24,>=4.56", 'faiss-cpu>=1.8; extra == "faiss"'])
    assert envcheck.requirement_for("transformers") == "transformers<5.24,>=4.56"
    assert envcheck.requirement_for("faiss-cpu") is None  # only in an extra
    assert envcheck.requirement_for("scipy") is None
