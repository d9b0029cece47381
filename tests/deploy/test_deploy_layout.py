"""The node layout and the pre-emption grace period that the container and cluster files rely on:
Volcano's global node rank (issue 10 item 8), one grace period everywhere (item 9) and one writer of
the run manifest on a shared output directory (item 10)."""
from __future__ import annotations

import re
import textwrap
from types import SimpleNamespace

import pytest

from bgeft.config import recipe as recipes
from bgeft.errors import UserError
from bgeft.train import api as train_cmd
from bgeft.train import launch
from bgeft.train.launch import Device, NodeLayout, make_plan, node_layout, stop_grace_seconds
from tests.deploy.tools import REPO, load_yaml

A100x8 = Device("cuda", 8, True, "A100")
HOSTS = {"VC_MASTER_HOSTS": "job-master-0.job", "VC_WORKER_HOSTS": "job-worker-0.job,job-worker-1.job"}


def test_volcano_master_and_worker_zero_get_different_ranks():
    """VC_TASK_INDEX is 0 in both master-0 and worker-0: the rank comes from the hosts lists."""
    master = node_layout({**HOSTS, "VC_TASK_INDEX": "0", "HOSTNAME": "job-master-0"})
    worker0 = node_layout({**HOSTS, "VC_TASK_INDEX": "0", "HOSTNAME": "job-worker-0"})
    worker1 = node_layout({**HOSTS, "VC_TASK_INDEX": "1", "HOSTNAME": "job-worker-1"})
    assert [master.node_rank, worker0.node_rank, worker1.node_rank] == [0, 1, 2]
    assert {master.nnodes, worker0.nnodes, worker1.nnodes} == {3}
    assert worker1.master_addr == "job-master-0.job"


def test_volcano_pytorch_plugin_rank_wins():
    # the plugin's RANK/WORLD_SIZE are node-level (master 0, worker i -> i + 1)
    layout = node_layout({**HOSTS, "VC_TASK_INDEX": "0", "RANK": "1", "WORLD_SIZE": "3",
                          "MASTER_ADDR": "job-master-0.job", "HOSTNAME": "elsewhere"})
    assert (layout.node_rank, layout.nnodes, layout.master_addr) == (1, 3, "job-master-0.job")


def test_volcano_unknown_host_is_one_message():
    with pytest.raises(UserError, match=re.escape("this pod's hostname 'stranger' is in none of them")):
        node_layout({**HOSTS, "VC_TASK_INDEX": "0", "HOSTNAME": "stranger"})


@pytest.fixture
def recipe(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"query": "q", "pos": ["p"], "neg": ["n"]}\n')
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent("""\
        task: embedder.m3
        model: {model_name_or_path: BAAI/bge-m3}
        data: {train_data: [train.jsonl], train_group_size: 2}
        training: {output_dir: out, max_steps: 3}
    """))
    return recipes.validate(recipes.load(path))


def test_torchrun_gets_the_grace_period(recipe):
    plan = make_plan(recipe, A100x8, env={}, python="py")
    assert plan.env["TORCH_ELASTIC_SHUTDOWN_TIMEOUT"] == str(launch.STOP_GRACE_SECONDS - 30)
    plan = make_plan(recipe, A100x8, env={"BGEFT_STOP_GRACE_SECONDS": "120"}, python="py")
    assert plan.env["TORCH_ELASTIC_SHUTDOWN_TIMEOUT"] == "90"
    with pytest.raises(UserError, match=re.escape("BGEFT_STOP_GRACE_SECONDS=0: use a number of seconds above 0")):
        stop_grace_seconds({"BGEFT_STOP_GRACE_SECONDS": "0"})


def test_one_grace_period_everywhere(rendered):
    grace = launch.STOP_GRACE_SECONDS
    common = (REPO / "scripts" / "docker_common.sh").read_text()
    assert f'BGEFT_STOP_GRACE_SECONDS:-{grace}' in common
    compose = load_yaml(REPO / "docker-compose.yml")
    assert compose["x-bgeft-common"]["stop_grace_period"] == f"${{BGEFT_STOP_GRACE_SECONDS:-{grace}}}s"
    from tests.deploy.tools import pod_templates
    for docs in rendered.values():
        for doc in docs:
            for label, tpl in pod_templates(doc):
                assert tpl["spec"]["terminationGracePeriodSeconds"] == grace, label


def test_only_node_zero_writes_the_manifest(recipe, monkeypatch, tmp_path):
    out = tmp_path / "out"
    logs = []

    def fake_execute(plan, log_name="train.log", secrets=None, prepare=None):
        prepare({})  # the training processes are ready at the start gate
        logs.append(log_name)
        (plan.output_dir / log_name).write_text("ok\n")
        return 0

    monkeypatch.setattr("bgeft.train.process.execute", fake_execute)
    args = SimpleNamespace(recipe=str(recipe.path), overrides=[], dry_run=False, resume=False, overwrite=False,
                           no_data_check=True)
    for rank in (1, 0):
        monkeypatch.setattr(train_cmd, "make_plan", lambda r, d, rank=rank, **kw: _plan(r, d, rank))
        monkeypatch.setattr(train_cmd, "prepare", lambda p, o, device=None, env=None, rank=rank:
                            (recipe, _plan(recipe, A100x8, rank)))
        if rank == 1:
            out.mkdir()
            assert train_cmd.cmd_train(args) == 0
            assert sorted(p.name for p in out.iterdir()) == ["train.node1.log"]
        else:
            args.resume = True
            assert train_cmd.cmd_train(args) == 0
            assert {"bgeft_run.yaml", "command.txt", "environment.json", "train.log"} <= {p.name for p in out.iterdir()}
    assert logs == ["train.node1.log", "train.log"]


def _plan(recipe, device, rank):
    env = {"NNODES": "2", "NODE_RANK": str(rank), "MASTER_ADDR": "m"}
    plan = make_plan(recipe, device, env=env, python="py")
    assert plan.layout == NodeLayout(2, rank, None, "m", 29500, "NNODES/NODE_RANK/MASTER_*")
    return plan


def test_one_process_override_switches_cross_device_negatives_off(recipe):
    """The one place of the rule: an explicit launch.nproc_per_node=1 (what the launcher's single/cpu
    modes and `bgeft k8s` on one GPU pass) turns cross-device negatives off with a note; the same
    recipe on one process without that override is still refused."""
    r = recipes.validate(recipes.apply_overrides(recipe, ["training.negatives_cross_device=true",
                                                          "launch.nproc_per_node=1"]))
    plan = make_plan(r, A100x8, env={}, python="py")
    assert plan.argv[plan.argv.index("--negatives_cross_device") + 1] == "False"
    assert any("training.negatives_cross_device switched off" in n for n in plan.notes)
    r = recipes.validate(recipes.apply_overrides(recipe, ["training.negatives_cross_device=true"]))
    with pytest.raises(UserError, match="needs more than one process"):
        make_plan(r, Device("cpu", 1, True, "cpu"), env={}, python="py")
