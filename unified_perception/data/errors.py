"""The one exception type the data readers raise for problems a user can cause."""

from __future__ import annotations


class DatasetError(Exception):
    """A data set cannot be read: bad path, missing file, bad configuration, unreadable content.

    The message names the file or key at fault and says what to do.
    """


class DatasetConfigError(DatasetError, ValueError):
    """A reader's configuration (YAML topic map, options) is invalid; the message names the key."""


class MissingFileError(DatasetError, FileNotFoundError):
    """A file or folder the data set layout requires is not there; the message names it."""

    def __init__(self, path: object, what: str, hint: str = "") -> None:
        self.path = str(path)
        message = f"{what} not found: {self.path}"
        if hint:
            message += f". {hint}"
        super().__init__(message)
