"""The one exception type for bad input, so entry points can tell it from a failure.

`InputError` is a config value, a path or a file the user gave that cannot work: the entry points print its message
as one line and exit 2, before long work starts. Every other exception is a failure (out of memory, a bug, a full
disk) and keeps its traceback. A leaf module: every layer but the pure core may import it."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: the message names the value and what is expected (a ValueError, so callers that catch those
    still do)."""


class MissingInputError(InputError, FileNotFoundError):
    """A path the input names (a data set, a checkpoint, a weights file) that does not exist."""


__all__ = ["InputError", "MissingInputError"]
