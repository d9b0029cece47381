"""The named choices of the model layer, importable without numpy, scipy or torch (the verbs' argument
parsers offer them, and ``bgeft --help`` must stay light)."""
from __future__ import annotations

POOLINGS = ("auto", "cls", "mean")
MODEL_CLASSES = ("auto", "m3", "base")
INDEX_KINDS = ("flat", "ivf", "hnsw")
