"""The CPU test base: Debian bookworm (Python 3.11) from debootstrap + the pinned CPU torch wheel.

Nothing is pulled from a registry. The image is tagged and cached by the hash of its inputs (this
file, the debootstrap arguments, the torch pin, the CA bundle baked in), saved with `docker save`
under ~/.cache/bgeft-containers and loaded from there by later runs.

pip inside the containers is set up like pip on this host: the host's pip configuration files and
the local paths they name (wheel directories, file:// indexes, constraints) are mounted read-only
at the same paths, and the host's CA bundle goes into the image so `--network host` reaches the
package index the host uses.
"""
from __future__ import annotations

import configparser
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.containers.engine import Engine, unmount_under

SUITE = "bookworm"  # Debian 12: Python 3.11, the version the project pins
INCLUDE = "python3,python3-venv,python3-pip,ca-certificates"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bgeft-containers"
PIP_CONFIG_FILES = [Path("/etc/pip.conf"), Path("/etc/xdg/pip/pip.conf"), Path.home() / ".config/pip/pip.conf",
                    Path.home() / ".pip/pip.conf"]
LOCAL_PIP_OPTIONS = ("find-links", "extra-index-url", "index-url", "constraint", "cert", "requirement")


def torch_requirement(repo: Path) -> str:
    """`torch==<pin>+cpu` from requirements/cpu.txt (the CPU build of the version the project pins)."""
    match = re.search(r"^torch==([\w.]+)\s*$", (repo / "requirements/cpu.txt").read_text(), flags=re.M)
    if not match:
        raise RuntimeError("requirements/cpu.txt has no 'torch==X' line")
    return f"torch=={match.group(1)}+cpu"


def debian_mirror() -> str:
    """The Debian mirror this host's apt uses (deb822 or one-line sources), deb.debian.org otherwise."""
    for path in sorted(Path("/etc/apt").glob("sources.list.d/*.sources")) + [Path("/etc/apt/sources.list")]:
        text = path.read_text(errors="replace") if path.is_file() else ""
        for uri in re.findall(r"^URIs:\s*(\S+)", text, flags=re.M) + re.findall(
            r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", text, flags=re.M
        ):
            if uri.rstrip("/").endswith("/debian"):
                return uri
    return "http://deb.debian.org/debian"


def ca_bundle() -> Path:
    for candidate in (
        os.environ.get("PIP_CERT"),
        os.environ.get("SSL_CERT_FILE"),
        "/etc/ssl/certs/ca-certificates.crt",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise RuntimeError("no CA bundle found (PIP_CERT, SSL_CERT_FILE, /etc/ssl/certs/ca-certificates.crt)")


def pip_setup() -> tuple[list[str], list[str]]:
    """(`-v` mount words, `-e` env words) giving a container the host's pip configuration, read-only."""
    paths: set[Path] = set()
    values: list[str] = []
    for conf in PIP_CONFIG_FILES:
        if not conf.is_file():
            continue
        paths.add(conf)
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(conf)
        for section in parser.sections():
            values += [parser[section][key] for key in LOCAL_PIP_OPTIONS if key in parser[section]]
    env_words = []
    for key, value in os.environ.items():
        if key.startswith("PIP_"):
            env_words += ["-e", f"{key}={value}"]
            values.append(value)
    for value in values:
        for word in value.split():
            local = Path(word[len("file://"):] if word.startswith("file://") else word)
            if local.name == "simple":  # a file:// index links to its files by relative paths (../files)
                local = local.parent
            if local.is_absolute() and local.exists():
                paths.add(local)
    mounts = []
    for path in sorted(paths):
        container = Path("/root") / path.relative_to(Path.home()) if path.is_relative_to(Path.home()) else path
        mounts += ["-v", f"{path}:{container}:ro"]
    return mounts, env_words


def base_tag(repo: Path) -> str:
    digest = hashlib.sha256()
    for part in (Path(__file__).read_bytes(), SUITE.encode(), INCLUDE.encode(), torch_requirement(repo).encode(),
                 ca_bundle().read_bytes()):
        digest.update(hashlib.sha256(part).digest())
    return f"bgeft-test-base:{digest.hexdigest()[:16]}"


def ensure_base(engine: Engine, repo: Path) -> str:
    """The base image's tag, loaded from the cache or built (then cached)."""
    tag = base_tag(repo)
    if engine.docker("image", "inspect", tag, check=False).returncode == 0:
        return tag
    cached = CACHE / (tag.replace(":", "-") + ".tar")
    if cached.is_file():
        if engine.docker("load", "-i", str(cached), check=False).returncode == 0:
            return tag
        cached.unlink()  # a damaged cache file is rebuilt
    build_base(engine, repo, tag)
    CACHE.mkdir(parents=True, exist_ok=True)
    for old in CACHE.glob("bgeft-test-base-*.tar*"):
        old.unlink()
    partial = cached.with_suffix(".tar.partial")
    engine.docker("save", "-o", str(partial), tag)
    partial.rename(cached)
    return tag


def build_base(engine: Engine, repo: Path, tag: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="bgeft-base-"))
    raw = tag.replace("bgeft-test-base:", "bgeft-test-rootfs:")
    name = "bgeft-test-base-build"
    try:
        rootfs = work / "rootfs"
        res = subprocess.run(["debootstrap", "--variant=minbase", f"--include={INCLUDE}", SUITE, str(rootfs),
                              debian_mirror()], capture_output=True, text=True, timeout=1200)
        if res.returncode != 0:
            raise RuntimeError(f"debootstrap failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
        unmount_under(rootfs)
        shutil.copyfile(ca_bundle(), rootfs / "etc/ssl/certs/ca-certificates.crt")
        shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
        (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True)
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        engine.docker("import", "--change", 'CMD ["bash"]', "-", raw, stdin=tar.stdout, capture_output=False,
                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if tar.wait() != 0:
            raise RuntimeError(f"tar of {rootfs} failed")
        mounts, env = pip_setup()
        engine.docker("rm", "-f", name, check=False)
        engine.docker("run", "--name", name, "--network", "host", *mounts, *env, raw,
                      "python3", "-m", "pip", "install", "--break-system-packages", "--no-cache-dir",
                      "--disable-pip-version-check", torch_requirement(repo), timeout=1200)
        engine.docker("commit", "--change", 'CMD ["bash"]', name, tag)
    finally:
        engine.docker("rm", "-f", name, check=False)
        engine.docker("rmi", raw, check=False)
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)
