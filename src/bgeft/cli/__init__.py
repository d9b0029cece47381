"""The ``bgeft`` command: ``main`` and the one verb table live in ``bgeft.cli.main``."""
from bgeft.cli.main import main

__all__ = ["main"]
