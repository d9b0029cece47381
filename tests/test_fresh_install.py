"""What a new user gets: `pip install .` into a fresh venv with pip's own resolver (no requirement files,
no constraints, no local mirrors), then the first checks they run: `bgeft env` and `import FlagEmbedding`.

torch is installed first, the way `make` does (requirements/cpu.txt's pin through the machine's pip
configuration, which may point at a CPU wheel); everything else is resolved from PyPI alone. Needs PyPI;
marked slow (minutes: it downloads FlagEmbedding's dependencies). `make test` runs it beside the rest of the
suite (`make test-fresh-install`). pip runs with --no-compile: byte-compiling every installed module is
most of pip's CPU time (torch alone: 75 CPU-s with, 20 without, docs/benchmarks.md) and proves nothing here;
the imports below still load each module they need."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=10).close()
        return True
    except OSError:
        return False


def _run(argv, env=None, timeout=1800) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env, timeout=timeout)


def _copy_sources(dest: Path) -> Path:
    """The files git tracks (plus new ones), without venvs, outputs or build leftovers."""
    listed = _run(["git", "-C", REPO, "ls-files", "--cached", "--others", "--exclude-standard"]).stdout.split("\n")
    for name in filter(None, listed):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def test_fresh_pip_install_imports_flagembedding_and_env_is_clean(tmp_path):
    if not _pypi_reachable():
        pytest.skip("PyPI is not reachable from here")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv])
    python, bgeft = venv / "bin" / "python", venv / "bin" / "bgeft"
    torch_pin = next(line for line in (REPO / "requirements" / "cpu.txt").read_text().splitlines()
                     if line.startswith("torch=="))
    done = _run([python, "-m", "pip", "install", "-q", "--no-compile", torch_pin])
    assert done.returncode == 0, done.stderr[-2000:]
    # a user's pip: PyPI only, no constraints file, no extra indexes
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", HF_HUB_OFFLINE="1")
    done = _run([python, "-m", "pip", "install", "--no-compile", _copy_sources(tmp_path / "src")], env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    versions = _run([python, "-m", "pip", "list", "--format=freeze"], env=env).stdout
    print(versions)  # what the resolver chose (kept in the test log)

    imported = _run([python, "-c", "import FlagEmbedding; print('FlagEmbedding imports')"], env=env)
    assert imported.returncode == 0, imported.stderr[-3000:]
    report = _run([bgeft, "env"], env=env)
    assert report.returncode == 0, report.stdout + report.stderr
    assert "Traceback" not in report.stdout + report.stderr
    assert re.search(r"^  ok +FlagEmbedding +1\.4\.2$", report.stdout, re.M), report.stdout
    assert re.search(r"^  (ok|untested) +transformers +\S+$", report.stdout, re.M), report.stdout
