"""Errors that the command-line entry points report as one line, without a traceback."""


class CassleError(Exception):
    """A user-facing error: bad flag value, missing path, incompatible checkpoint.

    The entry points catch it, print ``error: <message>`` on one line and exit with status 2.
    """

    def __str__(self) -> str:
        text = super().__str__()
        # Raised in a DataLoader worker (a broken image met mid-task), the error comes back with the
        # worker's traceback in its message; its last line is the original one-line message.
        if "\nOriginal Traceback" in text:
            last = [line for line in text.splitlines() if line.strip()][-1]
            name, _, message = last.partition(": ")
            if name.startswith(__name__ + ".") and message:
                return f"{message} (in a data loader worker)"
        return text


class DataNotFoundError(CassleError):
    """A dataset file or folder is missing or malformed."""


class CheckpointError(CassleError):
    """A checkpoint is missing, corrupt, or belongs to another method or shape."""


class NonFiniteLossError(CassleError):
    """The training loss became NaN or infinite."""
