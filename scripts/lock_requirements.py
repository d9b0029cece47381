#!/usr/bin/env python3
"""Hash-lock the images' Python layer: requirements/X.txt (pins) -> requirements/X.lock (pins + hashes).

    python scripts/lock_requirements.py requirements/cuda.txt requirements/npu.txt
    python scripts/lock_requirements.py --check requirements/cuda.txt   # lock still matches the pins?

1. pip's own resolver (``pip install --dry-run --ignore-installed --report``, through pip's configured
   indexes) turns the pins into the full set of distributions they pull in: ``--require-hashes``
   needs every one of them, not only the pinned names.
2. For each ``name==version`` the index's simple API (PEP 691 JSON, else the PEP 503 page) gives the
   sha256 it publishes for every file of that release: every wheel and the sdist, so the lock holds
   for any platform and Python the image may have, not only this machine's.
Nothing is hashed locally and nothing is guessed: a release the index does not list, or an index
that cannot be reached, stops the script with the name and the index.
Packages the base image provides (the CUDA torch build, triton, nvidia-*) or that an earlier step
installs from another index (the Ascend image's CPU torch) are left out; pip trusts them as installed.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

DEFAULT_INDEX = "https://pypi.org/simple"
# requirements file stem -> names the image gets elsewhere (regular expressions on canonical names)
FROM_ELSEWHERE = {
    "cuda": r"torch|torchvision|torchaudio|triton|nvidia-.*",
    "npu": r"torch|triton|nvidia-.*",   # PyPI torch's CUDA wheels; the image installs the CPU torch
}
JSON_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"


def resolve(pins: Path) -> dict[str, str]:
    """{canonical name: version} of everything ``pip install -r pins`` installs into an empty env."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--report", str(report), "-r", str(pins)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise SystemExit(f"lock_requirements: pip could not resolve {pins}:\n{res.stderr.strip()}")
        items = json.loads(report.read_text(encoding="utf-8"))["install"]
    return {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"] for i in items}


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.files: list[tuple[str, str]] = []   # (filename, href)
        self._href = None

    def handle_starttag(self, tag, attrs):
        self._href = dict(attrs).get("href") if tag == "a" else None

    def handle_data(self, data):
        if self._href:
            self.files.append((data.strip(), self._href))
            self._href = None


def _version_of(filename: str) -> str | None:
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except ValueError:
        return None


def published_hashes(index: str, name: str, version: str) -> list[str]:
    """The sha256 of every file of name==version that INDEX publishes (sorted)."""
    url = f"{index.rstrip('/')}/{name}/"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": JSON_ACCEPT}), timeout=60) as r:
            body, kind = r.read().decode("utf-8"), r.headers.get("Content-Type", "")
    except OSError as exc:
        raise SystemExit(f"lock_requirements: cannot read {url} ({exc}); the hashes come only from the "
                         "index, so run this where the index is reachable or pass --index URL") from None
    if "json" in kind:
        files = [(f["filename"], f.get("hashes", {}).get("sha256")) for f in json.loads(body)["files"]]
    else:
        links = _Links()
        links.feed(body)
        files = [(fn, (re.search(r"#sha256=([0-9a-f]{64})", href) or [None, None])[1]) for fn, href in links.files]
    found = sorted({h for fn, h in files if h and _version_of(fn) == version})
    if not found:
        raise SystemExit(f"lock_requirements: {url} publishes no file with a sha256 for {name}=={version}; "
                         "check the pin (or the --index)")
    return found


def render(pins: Path, versions: dict[str, str], hashes: dict[str, list[str]]) -> str:
    lines = [f"# Hash-locked from {pins.as_posix()} by scripts/lock_requirements.py; do not edit.",
             f"# Regenerate after changing the pins: python scripts/lock_requirements.py {pins.as_posix()}",
             "# Installed with pip install --require-hashes (every file the index publishes for each release)."]
    for name in sorted(versions):
        lines.append(f"{name}=={versions[name]} \\")
        lines += [f"    --hash=sha256:{h} \\" for h in hashes[name][:-1]]
        lines.append(f"    --hash=sha256:{hashes[name][-1]}")
    return "\n".join(lines) + "\n"


def read_lock(path: Path) -> dict[str, tuple[str, list[str]]]:
    """{canonical name: (version, [sha256...])} of a lock file written by render()."""
    out: dict[str, tuple[str, list[str]]] = {}
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *rest = line.split()
        name, _, version = spec.partition("==")
        out[canonicalize_name(name)] = (version, [h.split(":", 1)[1] for h in rest if h.startswith("--hash=sha256:")])
    return out


def lock_path(pins: Path) -> Path:
    return pins.with_suffix(".lock")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("requirements", nargs="+", type=Path, help="requirements/cuda.txt, requirements/npu.txt")
    p.add_argument("--index", default=DEFAULT_INDEX, help=f"simple API to read hashes from (default {DEFAULT_INDEX})")
    p.add_argument("--check", action="store_true", help="only re-resolve and compare with the existing lock")
    args = p.parse_args(argv)
    failed = False
    for pins in args.requirements:
        skip = re.compile(FROM_ELSEWHERE.get(pins.stem, r"(?!)"))
        versions = {n: v for n, v in resolve(pins).items() if not skip.fullmatch(n)}
        if args.check:
            current = {n: v for n, (v, _) in read_lock(lock_path(pins)).items()} if lock_path(pins).is_file() else {}
            diff = sorted(set(versions.items()) ^ set(current.items()))
            state = "up to date" if not diff else "STALE: " + ", ".join(f"{n}=={v}" for n, v in diff)
            print(f"{lock_path(pins)}: {state}")
            failed |= bool(diff)
            continue
        with ThreadPoolExecutor(8) as pool:
            found = dict(zip(versions, pool.map(lambda n, v=versions: published_hashes(args.index, n, v[n]), versions)))
        lock_path(pins).write_text(render(pins, versions, found), encoding="utf-8")
        print(f"{lock_path(pins)}: {len(versions)} releases, {sum(map(len, found.values()))} hashes from {args.index}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
