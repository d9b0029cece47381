"""Launch settings a user can get wrong (issue 9 item 17): one message each, before anything runs."""
from __future__ import annotations

import pytest

from bgeft.errors import UserError
from bgeft.train.launch import node_layout
from tests.hostile.conftest import TreeGuard


@pytest.mark.parametrize("name, value", [("MASTER_PORT", "-1"), ("MASTER_PORT", "70000"), ("PET_MASTER_PORT", "0")])
def test_master_port_outside_the_tcp_range(name, value):
    with pytest.raises(UserError, match=rf"^environment variable {name}='{value}' is not a TCP port \(1-65535\); "
                                        r"fix the job spec \(the default is 29500\)$"):
        node_layout({name: value})


def test_deepspeed_path_that_is_a_directory(run_cli, tmp_path):
    (tmp_path / "train.jsonl").write_text('{"query": "q", "pos": ["p"], "neg": ["n"]}\n')
    (tmp_path / "ds").mkdir()
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: embedder.m3\nlaunch: {deepspeed: ds}\nmodel: {model_name_or_path: BAAI/bge-m3}\n"
                      "data: {train_data: [train.jsonl]}\ntraining: {output_dir: out}\n")
    guard = TreeGuard(tmp_path)
    code, _, err = run_cli("validate", recipe)
    guard.assert_only()
    assert code == 2
    assert (f"{recipe}:2: launch.deepspeed: {tmp_path / 'ds'} is a directory; give the DeepSpeed JSON file in it "
            "(e.g. ds_configs/zero2.json)") in err
