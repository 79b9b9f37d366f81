"""The one error type the command line turns into a single clear line (no traceback)."""

from __future__ import annotations


class StrokesegError(Exception):
    """A problem with the user's input or files; the message names the file and the problem."""
