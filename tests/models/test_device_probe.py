"""probe_device: the training device from nvidia-smi / npu-smi / the driver's files, without torch."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bgeft.models.devices import Device, parse_npu_smi, parse_nvidia_smi, probe_device

FIXTURES = Path(__file__).with_name("fixtures")
CPU = Device("cpu", 1, True, "cpu")


def tool(**outputs):
    """A fake ``_run``: the fixture text for each tool name, None (missing tool) for the others."""
    return lambda argv: outputs.get(argv[0].replace("-", "_"))


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def test_nvidia_smi_and_npu_smi_tables_parse():
    assert parse_nvidia_smi(fixture("nvidia-smi-query.txt")) == [
        (0, "NVIDIA H200", 9.0, "GPU-5d1c2b7e-0a1b-4c2d-9e8f-112233445566"),
        (1, "NVIDIA H200", 9.0, "GPU-7f00aa11-2b3c-4d5e-8f90-aabbccddeeff"),
        (2, "Tesla V100-SXM2-32GB", 7.0, "GPU-0badf00d-1111-2222-3333-444455556666")]
    assert parse_nvidia_smi("0, NVIDIA T4, [N/A], GPU-1\nNo devices were found\n") == [(0, "NVIDIA T4", None, "GPU-1")]
    assert parse_npu_smi(fixture("npu-smi-910b.txt")) == [(0, "910B3"), (1, "910B3")]
    assert parse_npu_smi("") == []


@pytest.mark.parametrize("visible, expected", [
    (None, Device("cuda", 3, False, "NVIDIA H200")),                 # a V100 among them: no bf16 for all
    ("0,1", Device("cuda", 2, True, "NVIDIA H200")),
    ("2", Device("cuda", 1, False, "Tesla V100-SXM2-32GB")),
    ("GPU-7f00", Device("cuda", 1, True, "NVIDIA H200")),
    ("1,-1,0", Device("cuda", 1, True, "NVIDIA H200")),              # CUDA stops at the first invalid entry
    ("", CPU), ("-1", CPU),
])
def test_cuda_visible_devices_select_the_gpus(visible, expected, tmp_path):
    env = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    run = tool(nvidia_smi=fixture("nvidia-smi-query.txt"))
    assert probe_device(env, run, tmp_path, build=(True, False)) == expected


def test_without_nvidia_smi_the_driver_files_count_the_gpus(tmp_path):
    for i in range(2):
        gpu = tmp_path / "proc/driver/nvidia/gpus" / f"0000:0{i}:00.0"
        gpu.mkdir(parents=True)
        (gpu / "information").write_text(fixture("nvidia-information.txt"))
    # the compute capability is unknown there: fp16 is planned, the worker re-checks with torch
    assert probe_device({}, tool(), tmp_path, build=(True, False)) == Device("cuda", 2, False, "NVIDIA A100-SXM4-80GB")


def test_a_cpu_build_of_torch_trains_on_the_cpu_even_beside_gpus(tmp_path):
    assert probe_device({}, tool(nvidia_smi=fixture("nvidia-smi-query.txt")), tmp_path, build=(False, False)) == CPU


def test_ascend_npus_from_npu_smi_and_dev_davinci(tmp_path):
    run = tool(npu_smi=fixture("npu-smi-910b.txt"))
    assert probe_device({}, run, tmp_path, build=(False, True)) == Device("npu", 2, True, "910B3")
    assert probe_device({"ASCEND_RT_VISIBLE_DEVICES": "1"}, run, tmp_path, build=(False, True)) == \
        Device("npu", 1, True, "910B3")
    assert probe_device({}, tool(npu_smi=fixture("npu-smi-910a.txt")), tmp_path, build=(False, True)) == \
        Device("npu", 2, False, "910A")
    (tmp_path / "dev").mkdir()
    for name in ("davinci0", "davinci1", "davinci2", "davinci_manager"):
        (tmp_path / "dev" / name).write_text("")
    assert probe_device({}, tool(), tmp_path, build=(False, True)) == Device("npu", 3, False, "Ascend NPU")
    assert probe_device({}, tool(), tmp_path, build=(False, False)) == CPU  # no torch_npu: not trainable


def test_this_machine_probes_without_importing_torch():
    code = ("import sys; from bgeft.models.devices import probe_device; d = probe_device();"
            " print(d.kind, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1] == "False" and out[0] in ("cpu", "cuda", "npu")


def test_the_worker_rechecks_what_the_plan_asked_of_the_device(monkeypatch):
    """check_training_device runs in the training process, with torch: bf16, the device count, the kind."""
    from bgeft.models import devices

    v100x4 = Device("cuda", 4, False, "Tesla V100-SXM2-32GB")
    monkeypatch.setattr(devices, "detect_device", lambda: v100x4)
    assert devices.check_training_device("cuda", 4, bf16=False) == (v100x4, [])
    _, problems = devices.check_training_device("cuda", 8, bf16=True)
    assert problems == ["launch.nproc_per_node is 8 but torch sees only 4 cuda device(s); lower it or set it to auto",
                        "bf16 was asked for but this cuda device (Tesla V100-SXM2-32GB) does not support it; set "
                        "launch.precision: fp16 (or auto)"]
    monkeypatch.setattr(devices, "detect_device", lambda: CPU)
    assert devices.check_training_device("cuda", 1, bf16=False)[1] == [
        "the plan is for cuda (the device tools list it) but torch sees cpu here: install a cuda build of torch, or "
        "check the driver and the visible-devices variable"]
    assert devices.check_training_device("cpu", 1, bf16=False) == (CPU, [])
