"""Writing files so that a kill, a full disk or a missing permission never leaves half a file (torch-free).

Every file is written to a temporary file in the destination's own folder (never ``$TMPDIR``, which may be
small or on another filesystem), flushed to disk, given the permissions the user's umask asks for, then
renamed over the destination in one step. On any failure the temporary file is removed and the error
becomes one line naming the path.
"""

from __future__ import annotations

import errno
import io
import json
import os
import tempfile
from collections.abc import Callable
from typing import IO, Any

from cassle.errors import CassleError

_UMASK: int | None = None


def umask() -> int:
    """The process's umask (read once; ``os.umask`` can only be read by setting it)."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return _UMASK


# A write stopped by a full disk, a full quota or the process's file-size limit: (what happened, remedy).
_FULL = {errno.ENOSPC: ("no space left on the device", "free some space"),
         errno.EDQUOT: ("disk quota exceeded", "free some space"),
         errno.EFBIG: ("file-size limit reached", "raise the limit (ulimit -f)")}


def describe_os_error(err: OSError, path: str, action: str = "write") -> str:
    """One line for an OSError met while reading or writing ``path``."""
    if err.errno in _FULL:
        what, remedy = _FULL[err.errno]
        return f"{what} to {action} {path}: {remedy}, then run the same command with --resume"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"no permission to {action} {path} (read-only folder or file?)"
    if err.errno == errno.ENOENT:
        return f"cannot {action} {path}: its folder does not exist"
    return f"cannot {action} {path}: {err.strerror or err.__class__.__name__}"


class _WriteRecorder(io.RawIOBase):
    """A binary file handle that keeps the OSError of a failed write. ``torch.save`` turns such an error
    (a full disk) into a RuntimeError that has lost it ("unexpected pos ..."); this keeps the cause."""

    def __init__(self, handle: IO[bytes]):
        super().__init__()
        self.handle = handle
        self.error: OSError | None = None

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self.handle.seekable()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.handle.seek(offset, whence)

    def tell(self) -> int:
        return self.handle.tell()

    def write(self, data: Any) -> int:
        try:
            return self.handle.write(data)
        except OSError as err:
            self.error = err
            raise


def atomic_write(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through ``write(handle)`` on a temporary file in the same folder, then rename.

    Raises:
        CassleError: one line naming ``path`` (disk full, permission, ...); nothing is left behind.
    """
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    recorder = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix="-" + os.path.basename(path))
        with os.fdopen(fd, "wb") as handle:
            recorder = _WriteRecorder(handle)
            write(recorder)  # type: ignore[arg-type]
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600: keep the user's umask
        os.replace(tmp, path)
        tmp = None
        log_write(path)
    except OSError as err:
        raise CassleError(describe_os_error(err, path)) from None
    except Exception:
        if recorder is not None and recorder.error is not None:  # a writer hid the disk's error
            raise CassleError(describe_os_error(recorder.error, path)) from None
        raise
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def log_write(path: str) -> None:
    """With ``$CASSLE_WRITE_LOG`` set, append ``<pid> <path>`` for every file written: which process of a
    multi-process run wrote what (the DDP tests check that only rank 0 writes)."""
    log_path = os.environ.get("CASSLE_WRITE_LOG")
    if log_path:
        with open(log_path, "a") as handle:
            handle.write(f"{os.getpid()} {os.path.abspath(path)}\n")


def atomic_write_text(path: str, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode()))


def atomic_write_json(path: str, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str, what: str, kind: type = dict) -> Any:
    """A JSON file that must hold a ``kind`` (object by default); any problem is one line naming it.

    Args:
        path: the file.
        what: what the file is, for the message ("run manifest", "results file", ...).
        kind: the JSON type expected at the top (``dict`` or ``list``).
    """
    try:
        with open(path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise CassleError(f"{what} not found: {path}") from None
    except json.JSONDecodeError as err:
        raise CassleError(f"{what} {path} is corrupt (not JSON: {err.msg} at line {err.lineno})") from None
    except (OSError, UnicodeDecodeError) as err:
        if isinstance(err, OSError):
            raise CassleError(describe_os_error(err, path, "read")) from None
        raise CassleError(f"{what} {path} is unreadable ({err.__class__.__name__})") from None
    if not isinstance(data, kind):
        expected = "a JSON object" if kind is dict else f"a JSON {kind.__name__}"
        raise CassleError(f"{what} {path} is corrupt ({expected} was expected)")
    return data
