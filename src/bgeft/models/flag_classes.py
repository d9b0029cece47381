"""FlagEmbedding's inference classes, imported at the cost of what they use.

``import FlagEmbedding`` runs the package's ``__init__``, which imports every embedder, every reranker
and, through the M3 and decoder-only modules, the fine-tuning code: ``transformers.TrainingArguments``,
peft, accelerate and ``torch.distributed``. That doubles the start-up of a verb that only encodes with
``FlagModel`` (measured: 16.6 CPU s and 484 MB RSS for ``import FlagEmbedding`` against 8.6 CPU s and
257 MB for ``FlagModel``'s own module, torch and transformers included).

``flag_model_class(m3=False)`` returns FlagEmbedding's own ``FlagModel`` (``BaseEmbedder``) by importing
only its module: the packages above it are put in ``sys.modules`` as empty placeholders for the import
and removed right after, so a later ``import FlagEmbedding`` runs its ``__init__`` normally and finds
the same class objects. When FlagEmbedding is already imported, its attributes are used. ``m3=True``
returns ``BGEM3FlagModel`` through the ordinary import (its module needs the fine-tuning model classes);
so does ``FlagModel`` when a FlagEmbedding release keeps it elsewhere.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types

BASE_MODULE = "FlagEmbedding.inference.embedder.encoder_only.base"
_PARENTS = ("FlagEmbedding", "FlagEmbedding.inference", "FlagEmbedding.inference.embedder",
            "FlagEmbedding.inference.embedder.encoder_only")


def flag_model_class(m3: bool = False):
    """``BGEM3FlagModel`` (``m3``) or ``FlagModel``, the classes ``from FlagEmbedding import ...`` gives."""
    loaded = sys.modules.get("FlagEmbedding")
    if m3 or (loaded is not None and hasattr(loaded, "FlagModel")):
        from FlagEmbedding import BGEM3FlagModel, FlagModel

        return BGEM3FlagModel if m3 else FlagModel
    if BASE_MODULE in sys.modules:
        return sys.modules[BASE_MODULE].BaseEmbedder
    spec = importlib.util.find_spec("FlagEmbedding")
    if spec is None or not spec.submodule_search_locations:
        from FlagEmbedding import FlagModel  # not installed: the ordinary ImportError

        return FlagModel
    root = list(spec.submodule_search_locations)[0]
    placed = []
    try:
        for name in _PARENTS:
            if name not in sys.modules:
                stub = types.ModuleType(name)
                stub.__path__ = [root + name[len("FlagEmbedding"):].replace(".", "/")]
                sys.modules[name] = stub
                placed.append(name)
        return importlib.import_module(BASE_MODULE).BaseEmbedder
    except (ImportError, AttributeError):  # another FlagEmbedding layout: the ordinary import below
        pass
    finally:
        for name in placed:
            sys.modules.pop(name, None)
    from FlagEmbedding import FlagModel

    return FlagModel
