"""Errors that the command-line entry points report as one line, without a traceback."""


class CassleError(Exception):
    """A user-facing error: bad flag value, missing path, incompatible checkpoint.

    The entry points catch it, print ``error: <message>`` on one line and exit with status 2.
    """


class DataNotFoundError(CassleError):
    """A dataset file or folder is missing or malformed."""


class CheckpointError(CassleError):
    """A checkpoint is missing, corrupt, or belongs to another method or shape."""


class NonFiniteLossError(CassleError):
    """The training loss became NaN or infinite."""
