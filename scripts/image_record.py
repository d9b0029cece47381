#!/usr/bin/env python3
"""Write what an image is to /etc/bgeft-image.json (a build step of Dockerfile / Dockerfile.npu).

    python3 scripts/image_record.py /etc/bgeft-image.json --flavor cuda --base-image TAG@DIGEST \
        --base-digest sha256:... --version 0.1.0 --revision GITSHA --source URL --created 2026-01-01T00:00:00Z

The same facts as the image's OCI labels (org.opencontainers.image.*), readable from inside a
container without Docker: ``environment.json`` of every run started in the image records this file.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

FIELDS = ("flavor", "base_image", "base_digest", "version", "revision", "source", "created")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dest", type=Path)
    for name in FIELDS:
        p.add_argument("--" + name.replace("_", "-"), required=True)
    args = p.parse_args(argv)
    record = {name: getattr(args, name) for name in FIELDS}
    args.dest.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    args.dest.chmod(0o644)
    print(f"{args.dest}: " + ", ".join(f"{k}={v}" for k, v in record.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
