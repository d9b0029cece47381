"""Secrets (DESIGN.md §7): which recipe keys hold one, how they reach the worker, how output is masked.

A secret is known by its exact key (``model.token``, ``training.hub_token``) or its environment name
(``HF_TOKEN``, ``*_API_KEY``...), never by a substring: ``tokenizer_name`` and
``average_tokens_across_devices`` are not secrets. Secrets never travel in argv: the launcher moves
them into the worker's environment (:data:`SECRET_ENV`), the worker puts them back into the parsed
dataclasses, and every byte the worker prints is masked by value.
"""
from __future__ import annotations

import os
import re

# recipe key -> the environment variable that carries it to the worker
SECRET_ENV = {("model", "token"): "BGEFT_SECRET_MODEL_TOKEN",
              ("training", "hub_token"): "BGEFT_SECRET_HUB_TOKEN"}
SECRET_ENV_NAME = re.compile(r"^(HF_TOKEN|HUGGING_FACE_HUB_TOKEN|HF_API_TOKEN|BGEFT_SECRET_\w+"
                             r"|\w*_(TOKEN|API_KEY|APIKEY|SECRET|SECRET_KEY|PASSWORD|ACCESS_KEY))$")
MASK = "***"
MIN_SECRET_LEN = 6   # shorter values are not masked by value (they would mask ordinary words)


def redact(value, parent: str = ""):
    """A copy with every secret value replaced by ``***``: a key pair (section, key) of
    :data:`SECRET_ENV` at any depth (a recipe, a pipeline stage's model/data/training params)."""
    if isinstance(value, dict):
        return {k: MASK if (parent, str(k)) in SECRET_ENV and v not in (None, "") else redact(v, str(k))
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, parent) for v in value]
    return value


def split_secrets(recipe_data: dict) -> tuple[dict, dict[str, str]]:
    """The recipe without its secret values, and the environment that carries them to the worker."""
    clean = {k: (dict(v) if isinstance(v, dict) else v) for k, v in recipe_data.items()}
    env: dict[str, str] = {}
    for (sec, key), name in SECRET_ENV.items():
        section = clean.get(sec)
        if isinstance(section, dict) and section.get(key) not in (None, ""):
            env[name] = str(section.pop(key))
    return clean, env


def secret_values(recipe_data: dict, environ=None) -> list[str]:
    """Values to mask wherever text is shown or logged: the recipe's secrets and secret environment
    variables (FlagEmbedding's model arguments default ``token`` to HF_TOKEN and log it)."""
    environ = os.environ if environ is None else environ
    found = [str(sec[key]) for (name, key) in SECRET_ENV
             if isinstance(sec := recipe_data.get(name), dict) and sec.get(key) not in (None, "")]
    found += [v for k, v in environ.items() if SECRET_ENV_NAME.match(k)]
    return sorted({v for v in found if len(v) >= MIN_SECRET_LEN}, key=len, reverse=True)


def mask(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


class Masker:
    """Replace secret values in a byte stream, holding back a partial line between chunks."""

    def __init__(self, secrets: list[str]):
        self.secrets = [s.encode() for s in secrets if s]
        self.pending = b""

    def feed(self, chunk: bytes, final: bool = False) -> bytes:
        data = self.pending + chunk
        cut = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1 if not final else len(data)
        if self.secrets and cut == 0 and len(data) < 65536:
            self.pending = data
            return b""
        cut = cut or len(data)
        out, self.pending = data[:cut], data[cut:]
        for secret in self.secrets:
            out = out.replace(secret, b"***")
        return out
