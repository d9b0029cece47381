"""The one exception type for mistakes a user can fix. The CLI prints its message and exits 2."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A problem in the user's input (recipe, data, flags, environment) with a message saying the fix."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


def did_you_mean(word: str, choices: Iterable[str], n: int = 1) -> str:
    """`` (did you mean X?)`` for the closest choices to a mistyped ``word``, or ``""``."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=n, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""
