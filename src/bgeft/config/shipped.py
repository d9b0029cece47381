"""The recipes that ship with bgeft (``bgeft ls / cat / cp``, and a bare name given to ``validate``)."""
from __future__ import annotations

from pathlib import Path

from bgeft.assets import asset_dir
from bgeft.errors import UserError, did_you_mean


def shipped() -> dict[str, Path]:
    return {p.stem: p for p in sorted(asset_dir("recipes").glob("*.yaml"))}


def find(name: str) -> Path:
    found = shipped()
    key = name[:-5] if name.endswith(".yaml") else name
    if key in found:
        return found[key]
    raise UserError(f"no shipped recipe named {name!r}{did_you_mean(key, found, n=3)}; `bgeft ls` lists them")


def summary(path: Path) -> str:
    """The recipe's first comment line: what it trains."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""
