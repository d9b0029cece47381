"""Launch plans: exact argv for 1 process, N processes, multi-node env mappings, DeepSpeed, CUDA, NPU, CPU.
Devices are injected, so no hardware is needed."""
from __future__ import annotations

import textwrap

import pytest

from bgeft.config import recipe as recipes
from bgeft.errors import UserError
from bgeft.train.launch import Device, NodeLayout, make_plan, node_layout

CPU = Device("cpu", 1, True, "cpu")
A100x8 = Device("cuda", 8, True, "NVIDIA A100-SXM4-80GB")
V100x4 = Device("cuda", 4, False, "Tesla V100-SXM2-32GB")
NPUx8 = Device("npu", 8, True, "Ascend910B3")
PY = "/venv/bin/python"


@pytest.fixture
def make(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"query": "q", "pos": ["p"], "neg": ["n"]}\n', encoding="utf-8")
    ds = tmp_path / "zero2.json"
    ds.write_text('{"zero_optimization": {"stage": 2}}', encoding="utf-8")

    def _make(launch: str = "", training: str = "", task: str = "embedder.m3"):
        path = tmp_path / "r.yaml"
        path.write_text(textwrap.dedent(f"""\
            task: {task}
            launch: {{{launch}}}
            model: {{model_name_or_path: BAAI/bge-m3}}
            data: {{train_data: [train.jsonl], train_group_size: 2}}
            training: {{output_dir: out, max_steps: 3{', ' + training if training else ''}}}
        """), encoding="utf-8")
        return recipes.validate(recipes.load(path))

    _make.tmp = tmp_path
    return _make


def tail(tmp):
    return ["--model_name_or_path", "BAAI/bge-m3", "--train_data", str(tmp / "train.jsonl"), "--train_group_size", "2",
            "--output_dir", str(tmp / "out"), "--max_steps", "3"]


def test_cpu_single_process(make):
    plan = make_plan(make(), CPU, env={}, python=PY)
    assert plan.argv == [PY, "-m", "bgeft.train.worker", "embedder.m3", *tail(make.tmp),
                         "--bf16", "False", "--fp16", "False", "--use_cpu", "True"]
    assert plan.env == {"TOKENIZERS_PARALLELISM": "false"}
    assert plan.world_size == 1


def test_cuda_auto_uses_every_gpu_with_bf16_and_deepspeed(make):
    plan = make_plan(make("nproc_per_node: auto, deepspeed: zero2.json", "negatives_cross_device: true"),
                     A100x8, env={}, python=PY)
    assert plan.argv == [PY, "-m", "torch.distributed.run", "--nproc_per_node", "8", "--standalone",
                         "-m", "bgeft.train.worker", "embedder.m3", *tail(make.tmp), "--negatives_cross_device", "True",
                         "--bf16", "True", "--fp16", "False", "--deepspeed", str(make.tmp / "zero2.json")]


def test_deepspeed_on_one_process_still_goes_through_torchrun(make):
    plan = make_plan(make("deepspeed: zero2.json"), CPU, env={}, python=PY)
    assert plan.argv[:8] == [PY, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--standalone",
                             "-m", "bgeft.train.worker"]


def test_cuda_without_bf16_falls_back_to_fp16(make):
    plan = make_plan(make("nproc_per_node: 2"), V100x4, env={}, python=PY)
    assert plan.argv[:6] == [PY, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"]
    assert plan.argv[-4:] == ["--bf16", "False", "--fp16", "True"]


def test_bf16_on_a_gpu_without_it_fails_before_launch(make):
    with pytest.raises(UserError, match=r"bf16 was asked for but this cuda device \(Tesla V100-SXM2-32GB\) does not "
                                        r"support it; set launch.precision: fp16 \(or auto\)"):
        make_plan(make("precision: bf16"), V100x4, env={}, python=PY)


def test_fp16_on_cpu_and_wrong_device_fail(make):
    with pytest.raises(UserError) as exc:
        make_plan(make("device: cuda", "fp16: true"), CPU, env={}, python=PY)
    msg = str(exc.value)
    assert msg.startswith("2 problem(s) launching")
    assert (
        "launch.device is 'cuda' but this machine has cpu (cpu); set launch.device: auto or run on a cuda machine"
        in msg
    )
    assert "fp16 needs a CUDA GPU or an Ascend NPU, and this machine has neither" in msg


def test_negatives_cross_device_with_one_process_fails(make):
    with pytest.raises(UserError, match=r"training.negatives_cross_device needs more than one process, and this launch "
                                        r"has one; set it to false or run on several GPUs/NPUs/nodes"):
        make_plan(make("nproc_per_node: auto", "negatives_cross_device: true"), CPU, env={}, python=PY)


def test_more_processes_than_devices_fails(make):
    with pytest.raises(UserError, match=r"launch.nproc_per_node is 16 but only 8 cuda device\(s\) are visible"):
        make_plan(make("nproc_per_node: 16"), A100x8, env={}, python=PY)


def test_npu_uses_hccl_and_its_env(make):
    plan = make_plan(make(), NPUx8, env={}, python=PY)
    assert plan.argv[:6] == [PY, "-m", "torch.distributed.run", "--nproc_per_node", "8", "--standalone"]
    assert plan.argv[-6:] == ["--bf16", "True", "--fp16", "False", "--ddp_backend", "hccl"]
    assert plan.env == {"HCCL_CONNECT_TIMEOUT": "1200", "TOKENIZERS_PARALLELISM": "false",
                        "TORCH_ELASTIC_SHUTDOWN_TIMEOUT": "870"}


def test_cpu_multi_process_uses_gloo(make):
    plan = make_plan(make("nproc_per_node: 2", "negatives_cross_device: true"), CPU,
                     env={"NPROC_PER_NODE": "2"}, python=PY)
    assert plan.argv[:6] == [PY, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"]
    assert plan.argv[-6:] == ["--fp16", "False", "--use_cpu", "True", "--ddp_backend", "gloo"]


MULTI = ["--nnodes", "4", "--node_rank", "2", "--master_addr", "job-0.job", "--master_port", "23456"]


@pytest.mark.parametrize("env", [
    {"NNODES": "4", "NODE_RANK": "2", "MASTER_ADDR": "job-0.job", "MASTER_PORT": "23456"},
    {"PET_NNODES": "4", "PET_NODE_RANK": "2", "PET_MASTER_ADDR": "job-0.job", "PET_MASTER_PORT": "23456",
     "PET_NPROC_PER_NODE": "8"},
    {"NNODES": "4", "JOB_COMPLETION_INDEX": "2", "MASTER_ADDR": "job-0.job", "MASTER_PORT": "23456"},
    {"VC_TASK_INDEX": "2", "VC_WORKER_HOSTS": "job-0.job,job-1.job,job-2.job,job-3.job", "MASTER_PORT": "23456"},
], ids=["plain", "kubeflow", "indexed-job", "volcano"])
def test_multi_node_env_mappings(make, env):
    plan = make_plan(make(), A100x8, env=env, python=PY)
    assert plan.argv[:5 + len(MULTI)] == [PY, "-m", "torch.distributed.run", "--nproc_per_node", "8", *MULTI]
    assert plan.argv[5 + len(MULTI) : 5 + len(MULTI) + 4] == [
        "-m",
        "bgeft.train.worker",
        "embedder.m3",
        "--model_name_or_path",
    ]
    assert plan.world_size == 32


def test_pet_nnodes_range_and_explicit_env_precedence():
    layout = node_layout({"PET_NNODES": "2:2", "PET_NODE_RANK": "1", "NODE_RANK": "0", "PET_MASTER_ADDR": "m"})
    assert layout == NodeLayout(2, 0, None, "m", 29500, "NNODES/NODE_RANK/MASTER_*, Kubeflow PET_*")


def test_kubeflow_nproc_auto_means_every_visible_device(make):
    plan = make_plan(make(), A100x8, env={"PET_NPROC_PER_NODE": "auto", "PET_NNODES": "2", "PET_NODE_RANK": "1",
                                          "PET_MASTER_ADDR": "m", "PET_MASTER_PORT": "23456"}, python=PY)
    assert plan.argv[3:15] == ["--nproc_per_node", "8", "--nnodes", "2", "--node_rank", "1", "--master_addr", "m",
                               "--master_port", "23456", "-m", "bgeft.train.worker"]


def test_bad_node_env_messages():
    with pytest.raises(UserError, match=r"environment variable NNODES='two' is not an integer; fix the job spec"):
        node_layout({"NNODES": "two"})
    with pytest.raises(UserError, match=r"node rank 3 is not below the node count 2"):
        node_layout({"NNODES": "2", "NODE_RANK": "3", "MASTER_ADDR": "m"})
    with pytest.raises(UserError, match=r"2 nodes but no MASTER_ADDR; set MASTER_ADDR to node 0's address"):
        node_layout({"NNODES": "2", "NODE_RANK": "1"})


def test_resume_adds_the_checkpoint(make, tmp_path):
    plan = make_plan(make(), CPU, env={}, python=PY, resume_from=tmp_path / "out" / "checkpoint-2")
    assert plan.argv[-2:] == ["--resume_from_checkpoint", str(tmp_path / "out" / "checkpoint-2")]
    assert "resuming from" in plan.render()


def test_render_is_a_copy_pasteable_command(make):
    text = make_plan(make(), CPU, env={}, python=PY).render()
    assert (
        f"  TOKENIZERS_PARALLELISM=false {PY} -m bgeft.train.worker embedder.m3 --model_name_or_path BAAI/bge-m3"
        in text
    )
