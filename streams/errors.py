"""Errors that end a command with a one-line message instead of a traceback."""


class CcmonError(Exception):
    """A failure the user can act on; ``str(exc)`` is the whole message."""

    exit_code = 1
