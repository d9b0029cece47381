"""Issue 9 (secrets): `bgeft k8s` never puts model.token / training.hub_token into a ConfigMap. A token in
the recipe is refused (without echoing it); `--secret NAME` gives the trainer HF_TOKEN from a Secret."""
from __future__ import annotations

import re

import pytest
import yaml

from bgeft.cli import k8s as k8s_cli
from bgeft.errors import UserError
from tests.deploy.tools import REPO
from tests.helpers.cli import call
from tests.hostile.conftest import PLANTED_SECRET, assert_no_secret

BASE = (REPO / "k8s" / "base" / "recipe.yaml").read_text()


@pytest.mark.parametrize("section, key", [("model", "token"), ("training", "hub_token")])
def test_token_in_the_recipe_is_refused(tmp_path, tree_guard, capsys, section, key):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(BASE.replace(f"\n{section}:\n", f"\n{section}:\n  {key}: {PLANTED_SECRET}\n", 1))
    out = tmp_path / "job.yaml"
    guard = tree_guard(tmp_path)
    with pytest.raises(UserError) as info:
        call(k8s_cli, [str(recipe), "--image", "reg/bgeft:1", "-o", str(out)])
    message = str(info.value)
    line = recipe.read_text().splitlines().index(f"  {key}: {PLANTED_SECRET}") + 1
    assert message.startswith(f"{recipe}:{line}: {section}.{key}: a secret cannot go to the cluster in a ConfigMap")
    assert "pass --secret hf-token" in message
    assert_no_secret(message, *capsys.readouterr())
    guard.assert_only()          # nothing written


def test_secret_reference(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", PLANTED_SECRET)   # a token in the shell never reaches the manifests
    out = tmp_path / "job.yaml"
    assert call(k8s_cli, [str(REPO / "k8s" / "base" / "recipe.yaml"), "--image", "reg/bgeft:1", "--secret", "hf-token",
                     "--nodes", "2", "-o", str(out)]) == 0
    docs = list(yaml.safe_load_all(out.read_text()))
    (job,) = [d for d in docs if d["kind"] == "Job"]
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "HF_TOKEN"}}} in env
    assert not any("token" in k.lower() for d in docs if d["kind"] == "ConfigMap" for k in d["data"])
    assert_no_secret(out.read_text(), dirs=[tmp_path])
    with pytest.raises(UserError, match=re.escape("--secret 'HF_TOKEN': a Secret name is lower-case")):
        call(k8s_cli, [str(REPO / "k8s" / "base" / "recipe.yaml"), "--image", "reg/bgeft:1", "--secret", "HF_TOKEN"])
