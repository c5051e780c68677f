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


def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line.

    An error raised in a DataLoader worker reaches the main process re-raised with the worker's whole
    traceback as its message ("Caught DataNotFoundError in DataLoader worker process 0. Original
    Traceback ..."); its last line holds the original message, which is what a user needs.
    """
    text = str(err)
    if "\n" not in text:
        return text
    last = [line.strip() for line in text.splitlines() if line.strip()][-1]
    name = type(err).__name__ + ": "
    for prefix in (name, f"cassle.errors.{name}"):
        if last.startswith(prefix):
            return last[len(prefix):]
    return last.split(": ", 1)[-1] if "Traceback" in text else " ".join(text.split())
