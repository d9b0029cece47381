"""``bgeft cp NAME DEST``: copy a shipped recipe to edit it. Its ``../ds_configs`` and ``../example_data``
paths are rewritten to the shipped files' absolute location, so the copy works from anywhere."""
from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from bgeft.assets import asset_root
from bgeft.config.shipped import find
from bgeft.errors import UserError
from bgeft.io import atomic_write_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name")
    parser.add_argument("dest")


def run(args: argparse.Namespace) -> int:
    src = find(args.name)
    dest = Path(args.dest)
    if dest.is_dir():
        dest = dest / src.name
    if os.path.lexists(dest):  # a dangling link too: writing would follow it
        raise UserError(f"{dest} already exists; choose another DEST or delete it first")
    root = asset_root()
    text = re.sub(r"(?<![\w/.])\.\./(ds_configs|example_data)/",
                  lambda m: f"{root / m.group(1)}/", src.read_text(encoding="utf-8"))
    atomic_write_text(dest, text)
    print(f"copied {src.stem} to {dest}")
    return 0
