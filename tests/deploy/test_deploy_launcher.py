"""run_docker_training.sh and scripts/docker_quick_start.sh against a fake `docker` on PATH that
records its argv: the exact commands, in dry-run and for real, and the error messages."""
from __future__ import annotations

import json
import os
import pty
import re
import select
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.deploy.tools import REPO, cuda_tag, npu_tag, project_version, render

FAKE_DOCKER = f"""#!{sys.executable}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_DOCKER_LOG"], "a") as f:
    f.write(json.dumps(args) + "\\n")
if args[:1] == ["info"]:
    if os.environ.get("FAKE_DOCKER_DAEMON") == "down":
        sys.exit("Cannot connect to the Docker daemon")
    print(os.environ.get("FAKE_DOCKER_RUNTIMES", '{{"nvidia":{{}},"runc":{{}}}}'))
elif args[:2] == ["image", "inspect"]:
    sys.exit(0 if args[2] in os.environ.get("FAKE_DOCKER_IMAGES", args[2]).split(",") else 1)
elif args[:3] == ["buildx", "imagetools", "inspect"]:
    if not os.environ.get("FAKE_DOCKER_DIGEST"):
        sys.exit("ERROR: failed to resolve: no registry")
    print(json.dumps({{"mediaType": "application/vnd.oci.image.index.v1+json",
                      "digest": os.environ["FAKE_DOCKER_DIGEST"], "size": 1}}))
elif args[:2] == ["manifest", "inspect"]:
    sys.exit("no such manifest")
"""
FAKE_DIGEST = "sha256:" + "ab" * 32
FAKE_GETENT = """#!/usr/bin/env bash
[[ -n "${FAKE_HWHIAI_GID:-}" && "$1 $2" == "group HwHiAiUser" ]] || exit 2
echo "HwHiAiUser:x:${FAKE_HWHIAI_GID}:"
"""


def _user() -> str:
    return "1000:1000" if os.getuid() == 0 else f"{os.getuid()}:{os.getgid()}"


@pytest.fixture
def env(tmp_path):
    """A copy of the launch files in a directory with a space, and a PATH with fake tools."""
    root = tmp_path / "bgeft repo"
    for rel in ["run_docker_training.sh", "scripts/docker_common.sh", "scripts/docker_quick_start.sh",
                "scripts/docker_base.sh", "docker/base-images.lock",
                "pyproject.toml", "Dockerfile", "Dockerfile.npu", "requirements/npu.txt",
                "recipes/bge-m3_unified.yaml", "recipes/demo_cpu_m3.yaml"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, root / rel)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in {"docker": FAKE_DOCKER, "getent": FAKE_GETENT}.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "docker.log"
    return {"root": root, "bin": bin_dir, "log": log, "tmp": tmp_path,
            "env": {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_DOCKER_LOG": str(log), "HOME": str(tmp_path),
                    "FAKE_DOCKER_DIGEST": FAKE_DIGEST, "SOURCE_DATE_EPOCH": "1700000000"}}


def launch(env, *args, script="run_docker_training.sh", cwd=None, **extra_env):
    res = subprocess.run([str(env["root"] / script), *args], cwd=cwd or env["root"], capture_output=True,
                         text=True, env={**env["env"], **extra_env}, stdin=subprocess.DEVNULL, timeout=60)
    return res


def calls(env) -> list[list[str]]:
    if not env["log"].exists():
        return []
    return [json.loads(line) for line in env["log"].read_text().splitlines()]


def runs(env) -> list[list[str]]:
    return [c for c in calls(env) if c[:1] in (["run"], ["build"])]


def base(root: Path) -> list[str]:
    return ["docker", "run", "--rm", "--init", "--stop-timeout", "900", "--ipc=host", "--ulimit", "memlock=-1",
            "--ulimit", "stack=67108864", "--security-opt", "no-new-privileges", "--user", _user(),
            "--workdir", "/workspace", *([] if _user().startswith("1000:") else ["--group-add", "1000"]),
            "-e", "HF_TOKEN", "-e", "HF_ENDPOINT", "-e", "HF_HUB_OFFLINE", "-e", "BGEFT_STOP_GRACE_SECONDS=900",
            "-v", f"{root}/data:/workspace/data:ro", "-v", f"{root}/custom_data:/workspace/custom_data:ro",
            "-v", f"{root}/outputs:/workspace/outputs", "-v", f"{root}/cache:/cache"]


def test_multi_dry_run_prints_the_exact_command(env):
    root = env["root"]
    res = launch(env, "multi", "--dry-run", "--", "training.learning_rate=5e-6", "--resume")
    assert res.returncode == 0, res.stderr
    expected = base(root) + [
        "--gpus", "all", "-v", f"{root}/recipes:/workspace/custom_recipes:ro", "--", cuda_tag(),
        "bgeft", "train", "/workspace/custom_recipes/bge-m3_unified.yaml", "launch.nproc_per_node=auto",
        "training.learning_rate=5e-6", "--resume"]
    (line,) = res.stdout.splitlines()
    assert shlex.split(line) == expected
    assert f"'-v' '{root}/data" not in line and f"'{root}/data:/workspace/data:ro'" in line
    # dry-run only asked docker questions; it created nothing
    assert runs(env) == [] and ["image", "inspect", "--", cuda_tag()] in calls(env)
    assert not (root / "outputs").exists()
    assert "would create" in res.stderr


def test_multi_runs_what_dry_run_printed(env):
    printed = launch(env, "multi", "--gpus", "0,2", "--dry-run").stdout
    res = launch(env, "multi", "--gpus", "0,2")
    assert res.returncode == 0, res.stderr
    (run,) = runs(env)
    assert run == shlex.split(printed)[1:]
    assert run[run.index("--gpus") + 1] == '"device=0,2"'   # docker's quoting for a device list
    assert all((env["root"] / d).is_dir() for d in ("data", "custom_data", "outputs", "cache"))


def test_single_with_a_recipe_path_with_spaces(env):
    recipe_dir = env["tmp"] / "my recipes"
    recipe_dir.mkdir()
    shutil.copy(REPO / "recipes" / "demo_cpu_m3.yaml", recipe_dir / "book run.yaml")
    args = ("single", "--gpus", "3", "--recipe", "my recipes/book run.yaml")
    dry = launch(env, *args, "--dry-run", "--", "training.num_train_epochs=1", cwd=env["tmp"])
    res = launch(env, *args, "--", "training.num_train_epochs=1", cwd=env["tmp"])
    assert res.returncode == 0, res.stderr
    (run,) = runs(env)
    root = env["root"]
    assert ["docker", *run] == base(root) + [
        "--gpus", '"device=3"', "-v", f"{recipe_dir}:/workspace/custom_recipes:ro", "--", cuda_tag(),
        "bgeft", "train", "/workspace/custom_recipes/book run.yaml", "launch.nproc_per_node=1",
        "training.num_train_epochs=1"]
    assert shlex.split(dry.stdout) == ["docker", *run]
    assert "'/workspace/custom_recipes/book run.yaml'" in dry.stdout


def test_one_process_asks_bgeft_not_grep(env):
    """bge-m3_unified asks for negatives_cross_device, which needs more than one process: the launcher
    only says "one process" (launch.nproc_per_node=1) and bgeft's launch plan switches the rest off;
    the launcher reads no recipe YAML (issue 12)."""
    single = shlex.split(launch(env, "single", "--dry-run", "--", "--overwrite").stdout)
    assert single[-3:] == ["/workspace/custom_recipes/bge-m3_unified.yaml", "launch.nproc_per_node=1", "--overwrite"]
    assert not any("negatives_cross_device" in w for w in single)
    assert "negatives_cross_device" not in (REPO / "run_docker_training.sh").read_text()


def test_recipe_inside_the_image(env):
    res = launch(env, "cpu", "--recipe", "recipes/bge-reranker.yaml", "--dry-run")
    assert res.returncode == 0, res.stderr
    words = shlex.split(res.stdout)
    assert words[-3:] == ["train", "recipes/bge-reranker.yaml", "launch.nproc_per_node=1"]
    assert "using it as a path inside the image (/workspace/recipes/bge-reranker.yaml)" in res.stderr
    assert not any("custom_recipes" in w for w in words)


def _ascend_host(env) -> Path:
    host = env["tmp"] / "host"
    for dev in ["davinci0", "davinci1", "davinci10", "davinci2", "davinci_manager", "devmm_svm", "hisi_hdc"]:
        (host / "dev").mkdir(parents=True, exist_ok=True)
        (host / "dev" / dev).touch()
    (host / "usr/local/Ascend/driver/lib64").mkdir(parents=True)
    (host / "usr/local/dcmi").mkdir(parents=True)
    (host / "usr/local/bin").mkdir(parents=True)
    (host / "usr/local/bin/npu-smi").touch()
    (host / "etc").mkdir()
    (host / "etc/ascend_install.info").write_text("Driver_Install_Path_Param=/usr/local/Ascend\n")
    smi = env["bin"] / "npu-smi"
    smi.write_text("#!/usr/bin/env bash\necho fake npu-smi\n")
    smi.chmod(0o755)
    return host


def test_npu_mode(env):
    host = _ascend_host(env)
    res = launch(env, "npu", "--gpus", "0,1", "--", "training.learning_rate=2e-5",
                 BGEFT_HOST_ROOT=str(host), FAKE_HWHIAI_GID="1001", FAKE_DOCKER_RUNTIMES='{"runc":{}}')
    assert res.returncode == 0, res.stderr
    (run,) = runs(env)
    root = env["root"]
    devices = [f"{host}/dev/davinci{i}:/dev/davinci{i}" for i in (0, 1, 2, 10)] + [
        f"{host}/dev/{d}:/dev/{d}" for d in ("davinci_manager", "devmm_svm", "hisi_hdc")]
    expected = base(root) + [w for d in devices for w in ("--device", d)] + [
        "-v", f"{host}/usr/local/Ascend/driver:/usr/local/Ascend/driver:ro",
        "-v", f"{host}/usr/local/dcmi:/usr/local/dcmi:ro",
        "-v", f"{host}/usr/local/bin/npu-smi:/usr/local/bin/npu-smi:ro",
        "-v", f"{host}/etc/ascend_install.info:/etc/ascend_install.info:ro",
        "--group-add", "1001", "-e", "ASCEND_RT_VISIBLE_DEVICES=0,1",
        "-v", f"{root}/recipes:/workspace/custom_recipes:ro", "--", npu_tag(),
        "bgeft", "train", "/workspace/custom_recipes/bge-m3_unified.yaml", "training.learning_rate=2e-5"]
    assert ["docker", *run] == expected
    assert "--gpus" not in run


def test_npu_prerequisites(env):
    host = _ascend_host(env)
    (env["bin"] / "npu-smi").unlink()
    res = launch(env, "npu", BGEFT_HOST_ROOT=str(host))
    assert res.returncode == 1
    assert "npu-smi not found on PATH: install the Ascend NPU driver" in res.stderr
    host2 = _ascend_host({**env, "tmp": env["tmp"] / "other"})
    for dev in (host2 / "dev").glob("davinci[0-9]*"):
        dev.unlink()
    res = launch(env, "npu", BGEFT_HOST_ROOT=str(host2))
    assert res.returncode == 1
    assert f"no {host2}/dev/davinci[0-9]* devices found" in res.stderr
    assert runs(env) == []


def test_cpu_mode_needs_no_accelerator(env):
    res = launch(env, "cpu", "--recipe", "recipes/demo_cpu_m3.yaml", FAKE_DOCKER_RUNTIMES='{"runc":{}}')
    assert res.returncode == 0, res.stderr
    (run,) = runs(env)
    assert ["docker", *run] == base(env["root"]) + ["-e", "NVIDIA_VISIBLE_DEVICES=void",
        "-v", f"{env['root']}/recipes:/workspace/custom_recipes:ro", "--", cuda_tag(),
        "bgeft", "train", "/workspace/custom_recipes/demo_cpu_m3.yaml", "launch.nproc_per_node=1"]


def build_argv(root: Path, dockerfile: str, tag: str) -> list[str]:
    """The build the launcher runs: FROM the base pinned by digest, with the OCI label facts."""
    base_tag = re.search(r"^ARG BASE_IMAGE=(.+)$", (root / dockerfile).read_text(), re.M)[1]
    return ["build", "--file", f"{root}/{dockerfile}", "--tag", tag,
            "--build-arg", f"BASE_IMAGE={base_tag}@{FAKE_DIGEST}", "--build-arg", f"BASE_DIGEST={FAKE_DIGEST}",
            "--build-arg", f"BGEFT_VERSION={project_version()}", "--build-arg", "BGEFT_REVISION=unknown",
            "--build-arg", "BGEFT_SOURCE=unknown", "--build-arg", "BGEFT_CREATED=2023-11-14T22:13:20Z", str(root)]


def test_build_modes(env):
    root = env["root"]
    assert launch(env, "build").returncode == 0
    assert launch(env, "build", "--npu").returncode == 0
    assert runs(env) == [build_argv(root, "Dockerfile", cuda_tag()), build_argv(root, "Dockerfile.npu", npu_tag())]


def test_shell_runs_a_command_without_terminal_and_cpu_needs_no_gpu(env):
    res = launch(env, "shell", "--cpu", "--", "bgeft", "env", FAKE_DOCKER_RUNTIMES='{"runc":{}}')
    assert res.returncode == 0, res.stderr
    run = runs(env)[-1]
    assert ["docker", *run] == base(env["root"]) + [
        "-e",
        "NVIDIA_VISIBLE_DEVICES=void",
        "--",
        cuda_tag(),
        "bgeft",
        "env",
    ]


def test_shell_passes_a_mining_shard_command_unchanged(env):
    """Mining across hosts (docs/data.md, mine): each host runs its part through `shell -- COMMAND`, the
    words reaching the container as given (a `$(...)`, `*` or space is not expanded by the launcher)."""
    command = ["bgeft", "data", "mine", "/workspace/data/train.jsonl", "--model", "/workspace/outputs/my model",
               "--corpus", "/workspace/data/corpus*.jsonl", "--shard", "0/4", "--shard-dir",
               "/workspace/outputs/shards", "--passage-max-length", "256"]
    res = launch(env, "shell", "--cpu", "--", *command, FAKE_DOCKER_RUNTIMES='{"runc":{}}')
    assert res.returncode == 0, res.stderr
    assert ["docker", *runs(env)[-1]] == base(env["root"]) + ["-e", "NVIDIA_VISIBLE_DEVICES=void", "--", cuda_tag(),
                                                              *command]
    merge = [*command[:4], "-o", "/workspace/outputs/mined.jsonl", *command[4:8], "--from-shards",
             "/workspace/outputs/shards", "--passage-max-length", "256"]
    dry = launch(env, "shell", "--cpu", "--dry-run", "--", *merge, FAKE_DOCKER_RUNTIMES='{"runc":{}}')
    assert dry.returncode == 0, dry.stderr
    assert shlex.split(dry.stdout.splitlines()[-1])[-len(merge) - 2:] == ["--", cuda_tag(), *merge]


@pytest.mark.parametrize("args, message", [
    (("cpu", "--cpu"), "--cpu is for shell; to train on the CPU use the cpu mode"),
    (("shell", "--cpu", "--npu"), "--cpu and --npu cannot be used together"),
], ids=["cpu-flag-on-train-mode", "cpu-and-npu"])
def test_cpu_flag_errors(env, args, message):
    res = launch(env, *args)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr
    assert runs(env) == []


def test_missing_image_is_built_first(env):
    dry = launch(env, "shell", "--dry-run", FAKE_DOCKER_IMAGES="other:1")
    assert dry.returncode == 0, dry.stderr
    build, run = dry.stdout.splitlines()
    assert shlex.split(build) == ["docker", *build_argv(env["root"], "Dockerfile", cuda_tag())]
    assert shlex.split(run) == base(env["root"]) + ["--gpus", "all", "-it", "--", cuda_tag(), "bash"]
    assert f"image {cuda_tag()} not found locally: building it first" in dry.stderr


@pytest.mark.parametrize(
    "args, extra, message, code",
    [
        (("multi",), {"PATH": "NO_DOCKER"}, "docker not found on PATH: install Docker Engine", 1),
        (("multi",), {"FAKE_DOCKER_DAEMON": "down"}, "cannot talk to the Docker daemon", 1),
        (("multi",), {"FAKE_DOCKER_RUNTIMES": '{"runc":{}}'}, "the NVIDIA Container Toolkit is missing", 1),
        ((), {}, "usage: run_docker_training.sh [single|multi|npu|cpu|shell|build]", 2),
        (("train",), {}, "unknown mode 'train': use single, multi, npu, cpu, shell or build", 2),
        (("single", "--gpus", "0,1"), {}, "single trains on one GPU; use 'multi --gpus 0,1' for several", 2),
        (("multi", "--gpus", "all"), {}, "--gpus 'all': use device ids like 0 or 0,1,3", 2),
        (
            ("multi", "training.lr=1"),
            {},
            "unknown argument 'training.lr=1' after mode 'multi' "
            "(arguments for bgeft train or bgeft pipeline run go after --)",
            2,
        ),
        (("multi", "--recipe", "/nowhere/x.yaml"), {}, "recipe '/nowhere/x.yaml' not found on this host", 1),
        (("shell",), {}, "shell needs an interactive terminal", 1),
    ],
    ids=[
        "no-docker",
        "daemon-down",
        "no-nvidia",
        "no-mode",
        "bad-mode",
        "single-many",
        "bad-gpus",
        "override-before-dashes",
        "missing-recipe",
        "shell-no-tty",
    ],
)
def test_errors(env, args, extra, message, code):
    if extra.get("PATH") == "NO_DOCKER":
        extra = {"PATH": str(no_docker_path(env))}
    res = launch(env, *args, **extra)
    assert res.returncode == code, res.stderr
    assert message in res.stderr
    assert runs(env) == []


def no_docker_path(env) -> Path:
    """A PATH directory with the system's tools but no docker (this machine may have one installed)."""
    bin_dir = env["tmp"] / "no-docker-bin"
    bin_dir.mkdir(exist_ok=True)
    for folder in ("/usr/local/bin", "/usr/bin", "/bin"):
        for tool in Path(folder).iterdir():
            if tool.name != "docker" and not (bin_dir / tool.name).exists():
                (bin_dir / tool.name).symlink_to(tool)
    return bin_dir


def test_menu_on_a_terminal(env):
    """No mode on a terminal: a numbered menu; picking 2 runs multi."""
    pid, fd = pty.fork()
    if pid == 0:  # child: the script on the pty
        os.chdir(env["root"])
        os.execve(str(env["root"] / "run_docker_training.sh"), ["run_docker_training.sh", "--dry-run"],
                  {**env["env"], "TERM": "dumb"})
    out, sent, deadline = b"", False, time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        if not sent and b"number>" in out:
            os.write(fd, b"2\n")
            sent = True
    _, status = os.waitpid(pid, 0)
    text = out.decode()
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "1) single: train on one GPU" in text and "4) cpu: train on the CPU" in text and "7) quit" in text
    command = next(line for line in text.splitlines() if line.startswith("docker run"))
    words = shlex.split(command)
    assert words[words.index("--gpus") + 1] == "all"
    assert words[words.index(cuda_tag()) - 2:words.index(cuda_tag())] == ["-it", "--"]   # interactive on a terminal
    assert "launch.nproc_per_node=auto" in words


def test_quick_start(env):
    root = env["root"]
    dry = launch(env, "--dry-run", script="scripts/docker_quick_start.sh")
    assert dry.returncode == 0, dry.stderr
    res = launch(env, script="scripts/docker_quick_start.sh")
    assert res.returncode == 0, res.stderr
    demo, train = runs(env)
    assert demo == ["run", "--rm", "--user", _user(), "-e", "TORCH_DEVICE_BACKEND_AUTOLOAD=0",
                    "-v", f"{root}/cache:/cache", "--", cuda_tag(),
                    "bgeft", "demo-model", "/cache/models/minilm-m3"]
    assert ["docker", *train] == base(root) + ["-e", "NVIDIA_VISIBLE_DEVICES=void",
        "-v", f"{root}/recipes:/workspace/custom_recipes:ro", "--", cuda_tag(), "bgeft", "train",
        "/workspace/custom_recipes/demo_cpu_m3.yaml", "launch.nproc_per_node=1",
        "model.model_name_or_path=/cache/models/minilm-m3", "training.output_dir=/workspace/outputs/demo",
        "--overwrite"]
    assert [shlex.split(line) for line in dry.stdout.splitlines()] == [["docker", *demo], ["docker", *train]]
    for d in ("data", "custom_data", "outputs", "cache/models"):
        assert (root / d).is_dir()
    assert "NVIDIA runtime found" in res.stderr and "Compose found: docker compose" in res.stderr
    # a second run reuses the demo model already in cache/models
    (root / "cache/models/minilm-m3").mkdir()
    env["log"].unlink()
    res = launch(env, script="scripts/docker_quick_start.sh")
    assert [c[:1] for c in runs(env)] == [["run"]]
    assert "demo model already in cache/models/minilm-m3" in res.stderr


def _pipeline_file(env, text: str) -> Path:
    pipe_dir = env["tmp"] / "path with spaces"
    pipe_dir.mkdir(exist_ok=True)
    path = pipe_dir / "p.yaml"
    path.write_text(text)
    return pipe_dir


def test_single_with_a_pipeline_path_with_spaces(env):
    pipe_dir = _pipeline_file(env, "work_dir: runs/p\ncorpus: {books: [book.txt]}\n")
    args = ("single", "--pipeline", "path with spaces/p.yaml")
    dry = launch(env, *args, "--dry-run", "--", "work_dir=/workspace/outputs/x", cwd=env["tmp"])
    assert dry.returncode == 0, dry.stderr
    root = env["root"]
    expected = base(root) + [
        "--gpus", '"device=0"', "-v", f"{pipe_dir}:/workspace/custom_pipelines:ro",
        "--", cuda_tag(), "bgeft", "pipeline", "run", "--outputs-root", "/workspace/outputs",
        "/workspace/custom_pipelines/p.yaml", "work_dir=/workspace/outputs/x"]
    (line,) = dry.stdout.splitlines()
    assert shlex.split(line) == expected
    assert f"'{pipe_dir}:/workspace/custom_pipelines:ro'" in line and "note:" not in dry.stderr
    res = launch(env, *args, "--", "work_dir=/workspace/outputs/x", cwd=env["tmp"])
    assert res.returncode == 0, res.stderr
    assert [["docker", *r] for r in runs(env)] == [expected]


def test_pipeline_work_dir_lands_in_outputs(env):
    """The launcher tells bgeft where the writable outputs mount is (--outputs-root) instead of reading
    the pipeline file itself: bgeft moves a work_dir off that mount (tests/pipeline/test_spec.py)."""
    _pipeline_file(env, "work_dir: runs/p   # next to the file\n")
    res = launch(env, "multi", "--pipeline", "path with spaces/p.yaml", "--dry-run", "--", "rounds=2",
                 cwd=env["tmp"])
    assert res.returncode == 0, res.stderr
    words = shlex.split(res.stdout)
    assert words[-9:] == ["--", cuda_tag(), "bgeft", "pipeline", "run", "--outputs-root", "/workspace/outputs",
                          "/workspace/custom_pipelines/p.yaml", "rounds=2"]
    assert "note:" not in res.stderr and "grep" not in (REPO / "run_docker_training.sh").read_text()
    res = launch(env, "cpu", "--pipeline", "demo_cpu", "--dry-run", "--", "--from", "mine")
    assert res.returncode == 0, res.stderr
    words = shlex.split(res.stdout)
    assert words[-9:] == [cuda_tag(), "bgeft", "pipeline", "run", "--outputs-root", "/workspace/outputs",
                          "demo_cpu", "--from", "mine"]
    at = words.index(cuda_tag())   # no pipeline mount, no --gpus
    assert words[at - 4:at] == [f"{env['root']}/cache:/cache", "-e", "NVIDIA_VISIBLE_DEVICES=void", "--"]
    assert "'demo_cpu' is not a file here; using it as a path inside the image (/workspace/demo_cpu) " \
           "or a shipped pipeline's name" in res.stderr


@pytest.mark.parametrize("args, message, code", [
    (("single", "--pipeline", "p.yaml", "--recipe", "recipes/demo_cpu_m3.yaml"),
     "--pipeline and --recipe cannot be used together: a pipeline names its own recipes "
     "(train_embedder.recipe, train_reranker.recipe; change them with -- train_embedder.recipe=FILE)", 2),
    (("shell", "--pipeline", "demo_cpu"), "--pipeline runs in single, multi, npu or cpu mode, not in shell", 2),
    (("multi", "--pipeline"), "--pipeline needs a FILE", 2),
    (("multi", "--pipeline", "/nowhere/p.yaml"), "pipeline '/nowhere/p.yaml' not found on this host", 1),
], ids=["with-recipe", "shell", "no-file", "missing"])
def test_pipeline_errors(env, args, message, code):
    res = launch(env, *args)
    assert res.returncode == code, res.stderr
    assert f"run_docker_training.sh: error: {message}" in res.stderr
    assert runs(env) == []


def test_kubernetes_pipeline_overlay_in_the_docs_renders(tmp_path):
    """docs/kubernetes.md's "A pipeline as the Job" overlay, next to the real ones, renders a Job that
    runs the pipeline from its ConfigMap."""
    doc = (REPO / "docs" / "kubernetes.md").read_text()
    section = doc[doc.index("## A pipeline as the Job"):]
    kustomization = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    shutil.copytree(REPO / "k8s", tmp_path / "k8s")
    overlay = tmp_path / "k8s" / "overlays" / "pipeline"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(kustomization)
    shutil.copy(REPO / "pipelines" / "book_retrieval.yaml", overlay / "pipeline.yaml")
    docs = render(overlay)
    (job,) = [d for d in docs if d["kind"] == "Job"]
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("bgeft-pipeline-")]
    assert job["metadata"] == {**job["metadata"], "name": "bgeft-pipeline", "namespace": "bgeft"}
    assert yaml.safe_load(cm["data"]["pipeline.yaml"])["rounds"] == 3
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["bgeft", "pipeline", "run", "/workspace/job/pipeline.yaml",
                                 "work_dir=/workspace/outputs/book"]
    assert {"name": "pipeline", "mountPath": "/workspace/job/pipeline.yaml", "subPath": "pipeline.yaml",
            "readOnly": True} in container["volumeMounts"]
    assert {"name": "pipeline", "configMap": {"name": cm["metadata"]["name"]}} in pod["volumes"]
