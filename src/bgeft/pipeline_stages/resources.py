"""Models and recipes a pipeline names: ``demo`` (the embedded model), a local directory, a hub id
(``BAAI/bge-m3``), and recipes by shipped name (``demo_cpu_m3``) or path."""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import UserError

DEMO = "demo"
DEMO_ALIASES = (DEMO, "bgeft:demo-model")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_model(value: str, base_dir: Path) -> str:
    """``demo`` stays ``demo``; a local directory becomes absolute; ``org/name`` is a hub id."""
    if value in DEMO_ALIASES:
        return DEMO
    local = (base_dir / Path(value).expanduser()).resolve()
    if local.is_dir():
        return str(local)
    if HUB_ID.match(value) and not value.startswith((".", "/")):
        return value
    raise UserError(f"{value}: no such model directory (relative paths resolve against the pipeline file, or the working "
                    "directory when given on the command line; "
                    f"use 'demo' for the embedded model or a hub id like BAAI/bge-m3)")


def resolve_recipe(value: str, base_dir: Path) -> Path:
    """A shipped recipe name (``bgeft ls``) or a YAML path relative to the pipeline file."""
    from ..assets import asset_dir

    if value.endswith((".yaml", ".yml")) or "/" in value:
        path = (base_dir / Path(value).expanduser()).resolve()
        if path.is_file():
            return path
        raise UserError(f"{value}: no such recipe file (relative paths resolve against the pipeline file, or the working "
                        "directory when given on the command line)")
    shipped = asset_dir("recipes") / f"{value}.yaml"
    if shipped.is_file():
        return shipped
    names = sorted(p.stem for p in asset_dir("recipes").glob("*.yaml"))
    import difflib

    close = difflib.get_close_matches(value, names, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise UserError(f"no recipe named {value!r}{hint}; bgeft ls lists the shipped ones, or give a path to a .yaml")


def materialise_model(value: str) -> str:
    """The local directory a stage loads: the embedded model is built once into bgeft's cache, a hub id
    is fetched once into the Hugging Face cache (mining and scoring read local directories only)."""
    if value == DEMO:
        from ..demo_model import build_demo_model, default_demo_dir

        return str(build_demo_model(default_demo_dir()))
    if Path(value).exists():  # a local model directory (or a file input such as a recipe or a book)
        return value
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(value, ignore_patterns=["*.msgpack", "*.h5", "*.ot", "onnx/*"])
    except Exception as exc:  # offline, unknown repository, no permission
        raise UserError(f"{value}: not a local model directory and it could not be fetched from the Hugging Face "
                        f"Hub ({type(exc).__name__}); download it first and give its directory") from None
