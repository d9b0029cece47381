"""./run_docker_training.sh for real: a CPU training run, a pipeline, a shell command, docker stop and
--resume, another uid, a fresh checkout run as root. Every container runs on the private engine with
no network (the daemon has no bridge)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.containers.conftest import copy_checkout, owners, run_script

pytestmark = pytest.mark.containers

CONTAINER_UID = 1000  # the image's user; the launcher runs as it when invoked by root
# small steps: the suite proves the plumbing, the CPU integration tests prove the training itself
SMALL = ["data.train_group_size=2", "data.query_max_len=16", "data.passage_max_len=32",
         "training.per_device_train_batch_size=2", "training.logging_steps=1"]
SHORT = ["training.max_steps=2", "training.save_steps=2", *SMALL]


def prepared(checkout: Path, uid: int = CONTAINER_UID) -> Path:
    """data/ custom_data/ outputs/ cache/ owned by the container user, as docker_quick_start.sh makes them."""
    for name in ("data", "custom_data", "outputs", "cache"):
        (checkout / name).mkdir(exist_ok=True)
        os.chown(checkout / name, uid, uid)
    return checkout


def launcher(engine, image, checkout: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return run_script(engine, [str(checkout / "run_docker_training.sh"), *args[:1], "--image", image["tag"], *args[1:]],
                      cwd=checkout, **kwargs)


def assert_m3_model(path: Path) -> None:
    """The run's output loads in FlagEmbedding's BGE-M3 class and encodes (dense + sparse + ColBERT)."""
    from FlagEmbedding import BGEM3FlagModel

    model = BGEM3FlagModel(str(path), devices="cpu", use_fp16=False)
    out = model.encode(["a short query"], return_dense=True, return_sparse=True, return_colbert_vecs=True)
    assert out["dense_vecs"].shape[0] == 1 and len(out["colbert_vecs"]) == 1


def test_cpu_mode_trains_demo_recipe_outputs_on_host(engine, image, checkout):
    prepared(checkout)
    res = launcher(engine, image, checkout, "cpu", "--recipe", "recipes/demo_cpu_m3.yaml", "--", *SHORT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = checkout / "outputs/demo_cpu_m3"
    assert (out / "train.log").is_file() and (out / "bgeft_run.yaml").is_file()
    assert owners(checkout / "outputs") == {CONTAINER_UID}
    assert_m3_model(out)


def test_data_mount_is_read_only_and_shell_runs_a_command(engine, image, checkout):
    prepared(checkout)
    (checkout / "data/corpus.jsonl").write_text('{"_id": "1", "text": "x"}\n')
    res = launcher(engine, image, checkout, "shell", "--cpu", "--", "bash", "-c",
                   "cat /workspace/data/corpus.jsonl && touch /workspace/data/new.jsonl")
    assert res.returncode == 1, res.stdout + res.stderr
    assert '"text": "x"' in res.stdout
    assert "Read-only file system" in res.stderr
    assert not (checkout / "data/new.jsonl").exists()
    res = launcher(engine, image, checkout, "shell", "--cpu", "--", "bgeft", "env")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "FlagEmbedding" in res.stdout


def test_pipeline_runs_demo_pipeline(engine, image, checkout):
    prepared(checkout)
    res = launcher(engine, image, checkout, "cpu", "--pipeline", "pipelines/demo_cpu.yaml", "--",
                   "rounds=1", "train_embedder.training.max_steps=2", "train_reranker.training.max_steps=2",
                   "train_embedder.training.save_steps=2", "train_reranker.training.save_steps=2",
                   "train_embedder.data.train_group_size=2", "train_reranker.data.train_group_size=2",
                   "train_embedder.training.per_device_train_batch_size=2",
                   "train_reranker.training.per_device_train_batch_size=2",
                   "eval.modes=[dense]", "report.select=retriever.dense.ndcg@10", timeout=1200)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    work = checkout / "outputs/pipeline_demo_cpu"
    best = list(work.glob("*-report/best.json"))
    assert best, sorted(p.name for p in work.iterdir())
    assert json.loads(best[0].read_text())["select"] == "retriever.dense.ndcg@10"
    assert (best[0].parent / "report.md").is_file()
    assert list(work.glob("*-train_embedder-r1/**/config.json")), "the round's retriever was not trained"
    assert owners(work) == {CONTAINER_UID}


def _wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the launcher ended ({proc.returncode}) before {what}:\n{out[-2000:]}\n{err[-2000:]}")
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def test_docker_stop_checkpoints_then_resume_reaches_planned_step(engine, image, checkout):
    prepared(checkout)
    planned = 16
    args = [str(checkout / "run_docker_training.sh"), "cpu", "--image", image["tag"], "--recipe",
            "recipes/demo_cpu_m3.yaml", "--", f"training.max_steps={planned}", "training.save_steps=1000",
            "training.output_dir=/workspace/outputs/stopped", *SMALL]
    log = checkout / "outputs/stopped/train.log"
    env = dict(engine.env, HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(args, cwd=checkout, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: log.is_file() and log.read_text(errors="replace").count("'loss'") >= 2, 600,
                  "two training steps were logged", proc)
        running = engine.docker("ps", "-q").stdout.split()
        assert len(running) == 1, running
        engine.docker("stop", running[0], timeout=900)  # the container's own stop timeout applies
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, out[-2000:] + err[-2000:]
    checkpoints = sorted((checkout / "outputs/stopped").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert checkpoints, "docker stop left no checkpoint"
    stopped_at = int(checkpoints[-1].name.split("-")[1])
    assert 2 <= stopped_at < planned

    res = launcher(engine, image, checkout, "cpu", "--recipe", "recipes/demo_cpu_m3.yaml", "--",
                   f"training.max_steps={planned}", "training.save_steps=1000",
                   "training.output_dir=/workspace/outputs/stopped", *SMALL, "--resume")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    resumed = (checkout / "outputs/stopped/train.log").read_text(errors="replace").split("pre-empted")[-1]
    assert f"/workspace/outputs/stopped/checkpoint-{stopped_at}" in resumed
    # the resumed run reached the planned step: its state, and bgeft's closing progress line on the console
    state = json.loads((checkout / "outputs/stopped/trainer_state.json").read_text())
    assert state["global_step"] == planned, state["global_step"]
    assert f"train {planned}/{planned} steps" in res.stdout + res.stderr, res.stderr[-3000:]
    assert (checkout / "outputs/stopped/config.json").is_file()


@pytest.fixture
def other_user_checkout():
    """A checkout owned by uid 4242 in a directory that uid can reach (pytest's tmp is root-only)."""
    top = Path(tempfile.mkdtemp(prefix="bgeft-uid4242-"))
    os.chmod(top, 0o755)
    root = copy_checkout(top / "bgeft")
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
            os.lchown(name, 4242, 4242)
    yield root
    shutil.rmtree(top, ignore_errors=True)


def test_another_uid_has_a_home_and_its_outputs(engine, image, other_user_checkout):
    res = engine.docker("run", "--rm", "--network", "none", "--user", "4242:4242", image["tag"], "bash", "-c",
                        'cd "$HOME" && touch "$HOME/.probe" && echo "$HOME" '
                        '&& python3 -c "import getpass; print(getpass.getuser())"', check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    home, user = res.stdout.split()
    assert home != "/" and user
    # the launcher run by host uid 4242: the container runs as 4242 and the outputs are that user's
    os.chmod(engine.root, 0o711)
    os.chown(engine.socket, 4242, 4242)
    try:
        res = run_script(engine, ["setpriv", "--reuid=4242", "--regid=4242", "--clear-groups",
                                  str(other_user_checkout / "run_docker_training.sh"), "cpu", "--image", image["tag"],
                                  "--recipe", "recipes/demo_cpu_m3.yaml", "--", *SHORT],
                         cwd=other_user_checkout, env={"HOME": str(other_user_checkout.parent)})
    finally:
        os.chown(engine.socket, 0, 0)
        os.chmod(engine.root, 0o700)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert owners(other_user_checkout / "outputs") == {4242}
    assert (other_user_checkout / "outputs/demo_cpu_m3/config.json").is_file()


def test_root_on_fresh_checkout_leaves_no_root_owned_outputs(engine, image, checkout):
    assert not (checkout / "outputs").exists()
    res = launcher(engine, image, checkout, "cpu", "--recipe", "recipes/demo_cpu_m3.yaml", "--", *SHORT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert 0 not in owners(checkout / "outputs") | owners(checkout / "cache")
    assert (checkout / "outputs/demo_cpu_m3/config.json").is_file()
