"""scripts/entrypoint.sh outside Docker (fake CANN set_env.sh scripts) and scripts/verify_image.py
against this environment."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import pytest

from tests.deploy.tools import REPO

ENTRYPOINT = REPO / "scripts" / "entrypoint.sh"
VERIFY = REPO / "scripts" / "verify_image.py"
SHOW = "import json, os, sys; print(json.dumps({'argv': sys.argv[1:], 'env': dict(os.environ)}))"


def _fake_cann(root: Path) -> Path:
    """A CANN layout whose scripts behave like the real ones: export variables, read unset ones,
    and end on a failing test."""
    toolkit_home = root / "cann-9.1.0"
    (root / "ascend-toolkit").mkdir(parents=True)
    (root / "ascend-toolkit" / "set_env.sh").write_text(
        f'export ASCEND_TOOLKIT_HOME="{toolkit_home}"\n'
        'export LD_LIBRARY_PATH="$ASCEND_TOOLKIT_HOME/lib64:$LD_LIBRARY_PATH"\n'
        'export FAKE_TOOLKIT_SEEN_ARGS="$#"\n'
        '[ -n "$SOME_UNSET_VARIABLE" ] && echo never\n')
    bisheng = toolkit_home / "share" / "info" / "ascendnpu-ir" / "bin"
    bisheng.mkdir(parents=True)
    (bisheng / "set_env.sh").write_text("export FAKE_BISHENG=1\n")
    (root / "nnal" / "atb").mkdir(parents=True)
    (root / "nnal" / "atb" / "set_env.sh").write_text('export FAKE_NNAL_ARGS="$*"\nfalse\n')
    return toolkit_home


def _run(args, **env):
    full_env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", **env}
    return subprocess.run([str(ENTRYPOINT), *args], capture_output=True, text=True, env=full_env, timeout=60)


def test_sources_cann_and_passes_arguments_intact(tmp_path):
    toolkit_home = _fake_cann(tmp_path / "Ascend")
    args = ["a b", "", "--resume", "*", "$HOME", "x=\"quoted\"", "line\nbreak"]
    res = _run([sys.executable, "-c", SHOW, *args], BGEFT_ASCEND_ROOT=str(tmp_path / "Ascend"))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["argv"] == args
    env = out["env"]
    assert env["ASCEND_TOOLKIT_HOME"] == str(toolkit_home)
    assert env["LD_LIBRARY_PATH"].startswith(f"{toolkit_home}/lib64:")
    assert env["FAKE_TOOLKIT_SEEN_ARGS"] == "0"       # the command's arguments are not CANN's
    assert env["FAKE_BISHENG"] == "1"
    assert env["FAKE_NNAL_ARGS"] == "--cxx_abi=1"


def test_nnal_abi_follows_the_environment(tmp_path):
    _fake_cann(tmp_path / "Ascend")
    res = _run([sys.executable, "-c", SHOW], BGEFT_ASCEND_ROOT=str(tmp_path / "Ascend"), ATB_CXX_ABI="0")
    assert json.loads(res.stdout)["env"]["FAKE_NNAL_ARGS"] == "--cxx_abi=0"


def test_execs_the_command_and_keeps_its_exit_code(tmp_path):
    proc = subprocess.Popen([str(ENTRYPOINT), "bash", "-c", 'echo "$$"; exit 7'], stdout=subprocess.PIPE,
                            text=True, env={"PATH": "/usr/bin:/bin", "BGEFT_ASCEND_ROOT": str(tmp_path)})
    out, _ = proc.communicate(timeout=30)
    assert int(out) == proc.pid      # exec: the command replaced the entrypoint (signals reach it)
    assert proc.returncode == 7


def test_cuda_image_without_ascend_and_default_command(tmp_path):
    res = _run([], BGEFT_ASCEND_ROOT=str(tmp_path / "absent"))
    assert res.returncode == 0, res.stderr
    assert "usage: bgeft" in res.stdout
    res = _run(["sh", "-c", 'echo "${ASCEND_TOOLKIT_HOME:-none}"'], BGEFT_ASCEND_ROOT=str(tmp_path))
    assert res.stdout.strip() == "none"


def test_entrypoint_is_the_images_entrypoint():
    for dockerfile in ("Dockerfile", "Dockerfile.npu"):
        text = (REPO / dockerfile).read_text()
        assert 'ENTRYPOINT ["/workspace/scripts/entrypoint.sh"]' in text
        assert 'CMD ["bgeft", "--help"]' in text
        assert "RUN source" not in text and "RUN . /usr/local/Ascend" not in text
    assert ENTRYPOINT.read_text().rstrip().endswith('exec "$@"')


def _verify(tmp_path, lines, *options):
    req = tmp_path / "req.txt"
    req.write_text("\n".join(lines) + "\n")
    return subprocess.run([sys.executable, str(VERIFY), str(req), *options], capture_output=True, text=True,
                          timeout=120)


def test_verify_image_accepts_this_environment(tmp_path):
    yaml_version = metadata.version("PyYAML")
    torch_version = metadata.version("torch").split("+")[0]
    res = _verify(tmp_path, ["# comment", f"PyYAML=={yaml_version}  # inline", f"torch=={torch_version}"],
                  "--torch", torch_version, "--import", "yaml", "json")
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"ok  PyYAML=={yaml_version} (pinned =={yaml_version})" in res.stdout
    assert "ok  import yaml" in res.stdout
    assert "verify_image: environment matches" in res.stdout


def test_verify_image_reports_every_drift(tmp_path):
    yaml_version = metadata.version("PyYAML")
    res = _verify(tmp_path, ["PyYAML==0.0.1", "surely-not-installed-bgeft==1.0"],
                  "--cuda", "12.6", "--import", "yaml", "no_such_module_bgeft")
    assert res.returncode == 1
    assert "verify_image: 4 problem(s):" in res.stderr
    assert f"  - PyYAML: installed {yaml_version}, pinned ==0.0.1" in res.stderr
    assert "  - surely-not-installed-bgeft: not installed (pinned ==1.0)" in res.stderr
    assert "  - torch: built for CUDA none, expected 12.6" in res.stderr
    assert "  - import no_such_module_bgeft: ModuleNotFoundError" in res.stderr


@pytest.mark.parametrize("line, message", [
    ("PyYAML>=6", "PyYAML is not pinned with '==': pin an exact version"),
    ("not a requirement !", "not a requirement: 'not a requirement !'"),
])
def test_verify_image_rejects_loose_requirements(tmp_path, line, message):
    res = _verify(tmp_path, [line])
    assert res.returncode == 1
    assert f"req.txt:1: {message}" in res.stderr


def test_image_requirements_parse(tmp_path):
    """The real requirement files are all exact pins verify_image.py accepts."""
    code = ("import sys; sys.path.insert(0, 'scripts'); import verify_image as v; "
            "print(len(v.pinned(v.Path('requirements/cuda.txt'))), len(v.pinned(v.Path('requirements/npu.txt'))))")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, timeout=60)
    assert res.returncode == 0, res.stderr
    n_cuda, n_npu = map(int, res.stdout.split())
    assert n_cuda >= 20 and n_npu == n_cuda + 2   # npu.txt adds torch and torch-npu; faiss-cpu for faiss-gpu-cu12


WHO = ("import getpass, json, os; print(json.dumps({'user': getpass.getuser(), 'home': os.environ['HOME'], "
       "'writable': os.access(os.environ['HOME'], os.W_OK)}))")


def _as_stranger(shared: Path, passwd: Path) -> tuple[int, subprocess.CompletedProcess]:
    """The entrypoint under a uid the passwd file does not know: uid 4242 through setpriv when this
    runs as root (as the container would), else this process's own uid."""
    uid = 4242 if os.getuid() == 0 else os.getuid()
    prefix = ["setpriv", "--reuid=4242", "--regid=4242", "--clear-groups"] if os.getuid() == 0 else []
    res = subprocess.run(
        [*prefix, str(ENTRYPOINT), "/usr/bin/python3", "-c", WHO], capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": "/", "TMPDIR": str(shared), "BGEFT_PASSWD_FILE": str(passwd),
             "BGEFT_ASCEND_ROOT": str(shared / "none")})
    return uid, res


@pytest.fixture
def shared():
    """A scratch directory another uid can reach (pytest's tmp_path is private to its owner)."""
    path = Path(tempfile.mkdtemp(prefix="bgeft-entrypoint-", dir="/tmp"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path)


def test_any_uid_gets_a_user_entry_and_home(shared, tmp_path):
    """Item 5: a host uid the image does not know gets a passwd entry and a writable HOME, so
    getpass.getuser() and C lookups work (run for real under uid 4242 where this runs as root)."""
    passwd = shared / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n" if os.getuid() else Path("/etc/passwd").read_text())
    passwd.chmod(0o666)                       # the image makes it writable for the bgeft group
    uid, res = _as_stranger(shared, passwd)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out == {"user": f"bgeft-{uid}", "home": f"{shared}/bgeft-home-{uid}", "writable": True}
    gid = 4242 if os.getuid() == 0 else os.getgid()
    assert passwd.read_text().splitlines()[-1] == \
        f"bgeft-{uid}:x:{uid}:{gid}:bgeft (host uid {uid}):{shared}/bgeft-home-{uid}:/bin/bash"
    # a known uid is left alone
    known = tmp_path / "passwd"
    known.write_text(f"me:x:{os.getuid()}:{os.getgid()}::{tmp_path}:/bin/sh\n")
    res = _run([sys.executable, "-c", WHO], HOME=str(tmp_path), BGEFT_PASSWD_FILE=str(known),
               BGEFT_ASCEND_ROOT=str(tmp_path / "none"))
    assert json.loads(res.stdout)["home"] == str(tmp_path)


def test_read_only_passwd_falls_back_to_a_private_copy(shared):
    """Without a writable passwd (a read-only root filesystem), the entry goes into a private copy
    (used through nss_wrapper where the library exists) and HOME/USER still work."""
    passwd = shared / "passwd"
    passwd.write_text("nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n")
    passwd.chmod(0o444)
    uid, res = _as_stranger(shared, passwd)
    assert res.returncode == 0, res.stderr
    home = shared / f"bgeft-home-{uid}"
    assert json.loads(res.stdout) == {"user": f"bgeft-{uid}", "home": str(home), "writable": True}
    assert (home / "passwd").read_text().splitlines()[-1].startswith(f"bgeft-{uid}:x:{uid}:")
    assert passwd.read_text() == "nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n"


def test_images_let_the_entrypoint_add_the_entry():
    for dockerfile in ("Dockerfile", "Dockerfile.npu"):
        assert 'chgrp "${BGEFT_GID}" /etc/passwd && chmod g+w /etc/passwd' in (REPO / dockerfile).read_text()
