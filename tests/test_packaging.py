"""The wheel carries every subpackage, the schema snapshot, recipes, DeepSpeed configs, example data and pipelines."""
from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO / "src").parts) for p in (REPO / "src").rglob("__init__.py")}
    assert found <= listed, f"add {sorted(found - listed)} to [tool.setuptools] packages in pyproject.toml"


@pytest.mark.slow
def test_wheel_contents(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(REPO)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("bgeft-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        "bgeft/config/fe_fields_snapshot.json",
        "bgeft/recipes/bge-m3_unified.yaml",
        "bgeft/ds_configs/zero3.json",
        "bgeft/example_data/retrieval/train.jsonl",
        "bgeft/example_data/eval/qrels/test.tsv",
        "bgeft/example_data/book/river_town.txt",
        "bgeft/pipelines/demo_cpu.yaml",
        "bgeft/pipeline/stages/__init__.py",
        "bgeft/cli/data.py",
        "bgeft/cli/eval.py",
    }
    assert expected <= names, sorted(expected - names)
    recipes = {n for n in names if n.startswith("bgeft/recipes/")}
    assert len(recipes) == len(list((REPO / "recipes").glob("*.yaml")))
