"""k8s -o, cp and the pipeline's state files go through the one guard and writer (issue 9, items 2, 3)."""
from __future__ import annotations

import os
import shutil

from bgeft.pipeline.state import read_manifest, write_manifest


def test_k8s_output_onto_its_recipe(run_cli, tree, tmp_path, repo_root):
    recipe = tmp_path / "r.yaml"
    shutil.copy(repo_root / "recipes" / "demo_cpu_m3.yaml", recipe)
    tree.snapshot()
    code, _, err = run_cli("k8s", recipe, "--image", "registry.example/bgeft:1", "-o", recipe)
    assert (code, err) == (2, f"bgeft: error: -o {recipe}: is also an input ({recipe}); write to a new path\n")
    tree.assert_untouched()


def test_k8s_output_onto_a_fifo(run_cli, tree, tmp_path, repo_root):
    os.mkfifo(tmp_path / "out.yaml")
    tree.snapshot()
    code, _, err = run_cli("k8s", repo_root / "recipes" / "demo_cpu_m3.yaml", "--image", "registry.example/bgeft:1",
                           "-o", tmp_path / "out.yaml")
    assert (code, err) == (2, f"bgeft: error: -o {tmp_path / 'out.yaml'}: is a FIFO (named pipe); bgeft writes only "
                              "regular files and directories: choose another path\n")
    tree.assert_untouched()


def test_cp_onto_a_dangling_link_does_not_write_through(run_cli, tree, tmp_path):
    link = tmp_path / "mine.yaml"
    link.symlink_to(tmp_path / "elsewhere.yaml")
    tree.snapshot()
    code, _, err = run_cli("cp", "demo_cpu_m3", link)
    assert (code, err) == (2, f"bgeft: error: {link} already exists; choose another DEST or delete it first\n")
    assert not (tmp_path / "elsewhere.yaml").exists()
    tree.assert_untouched()


def test_stage_manifest_is_written_atomically(tmp_path, tree):
    write_manifest(tmp_path / "stage", {"key": "k"})
    assert read_manifest(tmp_path / "stage") == {"key": "k"}
    tree.assert_no_temp()
