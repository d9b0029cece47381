"""A private Docker engine for the container suite: its own socket, data root and exec root under a
temporary directory, no bridge and no iptables rules, stopped and removed at the end (failure too).

The host's default daemon (/var/run/docker.sock) is never touched: every docker call made by the
suite, and by the scripts it runs, goes through DOCKER_HOST=unix://<private socket>.
"""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

# apt packages -> the command each provides (installed only when the command is missing)
PACKAGES = {"docker.io": "dockerd", "debootstrap": "debootstrap", "docker-compose": "docker-compose"}


def why_not() -> str | None:
    """One line saying why this host cannot run the suite, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (to start a private dockerd and run debootstrap)"
    filesystems = Path("/proc/filesystems").read_text() if Path("/proc/filesystems").exists() else ""
    if "overlay" not in filesystems:
        return "the kernel has no overlay filesystem (docker's overlay2 storage driver needs it)"
    cgroup = Path("/sys/fs/cgroup")
    if not cgroup.is_dir() or not any(cgroup.iterdir()):
        return "no cgroup filesystem at /sys/fs/cgroup (containers need cgroups)"
    missing = [pkg for pkg, cmd in PACKAGES.items() if shutil.which(cmd) is None]
    if missing:
        if shutil.which("apt-get") is None:
            return f"apt-get not found to install {', '.join(missing)}"
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for args in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
            res = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
            if res.returncode != 0:
                tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
                return f"'{' '.join(args)}' failed: {tail[0]}"
    return None


class Engine:
    """dockerd on a private socket. ``env`` is the environment every docker command must get."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="bgeft-dockerd-"))
        self.socket = self.root / "docker.sock"
        self.log = self.root / "dockerd.log"
        self.proc: subprocess.Popen | None = None
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.socket}", DOCKER_BUILDKIT="0")
        self.env.pop("DOCKER_CONTEXT", None)
        self.env.pop("DOCKER_CONFIG", None)
        self.env["DOCKER_CONFIG"] = str(self.root / "client-config")  # no credential helpers of the host
        self.memlock_capped: int | None = None

    @classmethod
    def attach(cls, socket: Path) -> Engine:
        """A daemon already running on SOCKET (left running at the end)."""
        if socket.resolve() == Path("/var/run/docker.sock").resolve():
            raise RuntimeError("the suite never uses the host's default docker socket")
        eng = cls.__new__(cls)
        eng.root, eng.socket, eng.log, eng.proc = socket.parent, socket, socket.parent / "dockerd.log", None
        eng.env = dict(os.environ, DOCKER_HOST=f"unix://{socket}", DOCKER_BUILDKIT="0",
                       DOCKER_CONFIG=str(socket.parent / "client-config"))
        eng.stop = lambda: None
        eng.memlock_capped = None
        eng.cap_memlock()
        return eng

    def cap_memlock(self) -> None:
        """Where this host cannot raise RLIMIT_MEMLOCK (a sandbox without CAP_SYS_RESOURCE), runc
        refuses `--ulimit memlock=-1` (the launcher's and compose's setting for NCCL/RDMA): put a
        `docker` first on PATH that passes every word through except memlock=-1, which becomes the
        host's own hard limit. Where the limit can be raised, nothing is changed."""
        if subprocess.run(["prlimit", "--memlock=unlimited:unlimited", "true"], capture_output=True).returncode == 0:
            return
        import resource

        hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
        real = shutil.which("docker")
        bin_dir = self.root / "bin"
        bin_dir.mkdir(exist_ok=True)
        shim = bin_dir / "docker"
        shim.write_text("#!/bin/bash\n# written by tests/containers/engine.py: see Engine.cap_memlock\n"
                        "args=()\nfor word in \"$@\"; do\n"
                        f"    [[ \"$word\" != memlock=-1 ]] || word=memlock={hard}:{hard}\n"
                        "    args+=(\"$word\")\ndone\n"
                        f"exec {real} \"${{args[@]}}\"\n")
        shim.chmod(0o755)
        self.env["PATH"] = f"{bin_dir}:{self.env.get('PATH', '')}"
        self.memlock_capped = hard

    def start(self, timeout: float = 60) -> None:
        # exec-root holds the daemon's runtime sockets; a short path keeps them under the unix
        # socket length limit
        args = ["dockerd", "--bridge=none", "--iptables=false", "--ip-masq=false",
                "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
                "--pidfile", str(self.root / "dockerd.pid"), "-H", f"unix://{self.socket}"]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        atexit.register(self.stop)
        self.cap_memlock()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.socket.exists() and self.docker("info", check=False).returncode == 0:
                return
            time.sleep(0.5)
        raise RuntimeError(f"dockerd did not answer on {self.socket} within {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no dockerd log)"

    def docker(self, *args: str, check: bool = True, timeout: float = 900, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        res = subprocess.run(["docker", *args], env=self.env, timeout=timeout, **kwargs)
        if check and res.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def stop(self) -> None:
        """Remove every container, stop the daemon, unmount what it left, delete its directories."""
        if self.proc is not None and self.proc.poll() is None:
            ids = self.docker("ps", "-aq", check=False, timeout=60).stdout.split()
            if ids:
                self.docker("rm", "-f", *ids, check=False, timeout=120)
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self.proc = None
        unmount_under(self.root)
        shutil.rmtree(self.root, ignore_errors=True)


def unmount_under(root: Path) -> None:
    """Lazily unmount everything mounted below ROOT (deepest first), so deleting ROOT deletes only ROOT."""
    prefix = str(root.resolve()) + "/"
    try:
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    except OSError:
        return
    for point in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
