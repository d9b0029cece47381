"""The one exception type for mistakes a user can fix. The CLI prints its message and exits 2."""
from __future__ import annotations


class UserError(Exception):
    """A problem in the user's input (recipe, data, flags, environment) with a message saying the fix."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code
