"""Linters on the container assets: hadolint (Dockerfiles), shellcheck (every shell script),
checkov (Dockerfiles + every rendered overlay, PyTorchJob pods included)."""
from __future__ import annotations

import copy
import json
import re

import pytest
import yaml

from tests.deploy.tools import MINING, OVERLAYS, REPO, pod_templates, run, tool

DOCKERFILES = ["Dockerfile", "Dockerfile.npu"]
SHELL_SCRIPTS = sorted(
    [REPO / "run_docker_training.sh"] + list((REPO / "scripts").glob("*.sh")), key=str
)


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint_clean_without_ignores(dockerfile):
    text = (REPO / dockerfile).read_text()
    assert "hadolint ignore" not in text, f"{dockerfile}: fix the finding instead of ignoring it"
    assert not (REPO / ".hadolint.yaml").exists(), "no blanket hadolint configuration"
    res = run([tool("hadolint"), "--no-color", "--failure-threshold", "style", dockerfile], cwd=REPO)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip() == ""


def test_every_script_is_covered_and_executable():
    names = {p.name for p in SHELL_SCRIPTS}
    assert {"run_docker_training.sh", "entrypoint.sh", "docker_quick_start.sh", "docker_common.sh"} <= names
    for path in SHELL_SCRIPTS:
        if path.name not in ("docker_common.sh", "docker_base.sh"):  # sourced, not run
            assert path.stat().st_mode & 0o111, f"{path} is not executable"
        assert path.read_text().startswith("#!/usr/bin/env bash\n"), path


def test_shellcheck_every_script():
    res = run([tool("shellcheck"), "--external-sources", "--severity=style",
               *[str(p.relative_to(REPO)) for p in SHELL_SCRIPTS]], cwd=REPO)
    assert res.returncode == 0, res.stdout + res.stderr


def _skips_with_reasons() -> list[str]:
    """The checkov config's skipped checks; each must have a comment right above it."""
    lines = (REPO / "tests" / "deploy" / "checkov.yaml").read_text().splitlines()
    skips = []
    for i, line in enumerate(lines):
        m = re.match(r"\s+- (CKV\w+)\s*$", line)
        if m:
            assert i > 0 and lines[i - 1].lstrip().startswith("#"), f"{m.group(1)}: skipped without a reason"
            skips.append(m.group(1))
    assert skips == yaml.safe_load("\n".join(lines))["skip-check"]
    return skips


def _as_job(name: str, template: dict) -> dict:
    """A PyTorchJob replica's pod template wrapped in a Job, so the pod checks cover it."""
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name.replace("/", "-").lower(), "namespace": "bgeft"},
            "spec": {"template": copy.deepcopy(template)}}


def test_checkov_no_failures(rendered, stored, mining, tmp_path):
    skips = _skips_with_reasons()
    assert len(skips) <= 4   # each one argued in checkov.yaml; no more without a reason there
    for name in OVERLAYS + MINING:
        docs = list(rendered[name]) + list(stored[name]) if name in OVERLAYS else list(mining[name])
        docs += [_as_job(label, tpl) for d in docs if d["kind"] == "PyTorchJob"
                 for label, tpl in pod_templates(d)]
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump_all(docs))
    for dockerfile in DOCKERFILES:  # one directory scan: checkov ignores -f next to -d
        (tmp_path / dockerfile).write_text((REPO / dockerfile).read_text())
    reports = _checkov(["--config-file", str(REPO / "tests" / "deploy" / "checkov.yaml")], tmp_path)
    assert {r["check_type"] for r in reports} == {"kubernetes", "dockerfile"}
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']})"
              for r in reports for c in r["results"]["failed_checks"]]
    assert failed == [], "checkov failures:\n" + "\n".join(failed)
    for r in reports:
        assert r["summary"]["passed"] > 50
    scanned = {c["file_path"].lstrip("/") for r in reports for c in r["results"]["passed_checks"]}
    assert set(DOCKERFILES) | {f"{n}.yaml" for n in OVERLAYS + MINING} <= scanned, scanned
    # the PyTorchJob pods were scanned too
    resources = {c["resource"] for r in reports for c in r["results"]["passed_checks"]}
    assert any("bgeft-pytorchjob-worker" in name for name in resources), sorted(resources)[:20]
    # every skip is still needed: run only the skipped checks, each must fail somewhere
    reports = _checkov(["--skip-download", "--check", ",".join(skips)], tmp_path)
    still_failing = {c["check_id"] for r in reports for c in r["results"]["failed_checks"]}
    assert still_failing == set(skips), f"stale skips: {set(skips) - still_failing}"


def _checkov(options: list[str], directory) -> list[dict]:
    args = [tool("checkov"), *options, "--framework", "kubernetes", "dockerfile", "-o", "json",
            "-d", str(directory)]
    res = run(args, env={"PATH": "/usr/bin:/bin", "HOME": str(directory), "BC_SKIP_MAPPING": "TRUE",
                         "LOG_LEVEL": "ERROR"})
    start = min((i for i in (res.stdout.find("["), res.stdout.find("{")) if i >= 0), default=-1)
    assert start >= 0, f"checkov printed no report (rc {res.returncode}):\n{res.stdout}\n{res.stderr}"
    reports = json.loads(res.stdout[start:])
    return reports if isinstance(reports, list) else [reports]


def test_missing_tool_fails_under_ci_and_skips_elsewhere(monkeypatch, tmp_path):
    from tests.deploy import tools

    monkeypatch.setattr(tools, "LINT_VENV_BIN", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"hadolint not found on PATH or in .*requirements/lint.txt"):
        tools.tool("hadolint")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="hadolint not found on PATH"):
        tools.tool("hadolint")
