"""Opening the files of a checkpoint folder safely: regular files only, never blocking, bounded
in size, parsed without recursion limits being hit.

Every file dyntools reads below a user's folder goes through here or through ``open_regular``:
a FIFO, a device (a link to ``/dev/zero``) or a socket would block a reader or feed it without
end; a side file (JSON, CSV) larger than its kind's limit is refused before it is read; JSON
nested too deeply for Python's parser is a problem of that file, not a crash. The limits are
documented in docs/checkpoints.md ("What dyntools checks").
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Final

from dyntools.checkpoints.records import CheckpointError

# The largest side file of each kind read whole (JSON and CSV next to the weights). The
# largest real ones seen: a trainer_state.json of 2 MB after 300k logged steps; Lightning's
# metrics.csv of 40 MB.
SIDE_FILE_LIMIT: Final = 256 * 2**20


def _kind(mode: int) -> str:
    kinds = {
        stat.S_ISFIFO: "a FIFO (named pipe)",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISSOCK: "a socket",
        stat.S_ISDIR: "a folder",
    }
    return next((text for test, text in kinds.items() if test(mode)), "not a regular file")


@contextmanager
def open_regular(path: Path) -> Iterator[IO[bytes]]:
    """``path`` opened for binary reading, if it is a regular file (symbolic links followed).

    Opened without blocking (a FIFO would wait for a writer forever) and checked on the open
    descriptor, so the file cannot be swapped for another kind between check and read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise CheckpointError(
                path,
                f"is {_kind(mode)}, not a regular file: not read",
                "replace it with the real file",
            )
        os.set_blocking(fd, True)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle


def read_bytes(path: Path, limit: int = SIDE_FILE_LIMIT) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes."""
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > limit:
            raise CheckpointError(
                path,
                f"is {size / 2**20:.0f} MiB, more than the {limit / 2**20:.0f} MiB dyntools "
                "reads of such a file",
                "check that it is the file it should be",
            )
        data = handle.read(limit + 1)
    if len(data) > limit:  # it grew while being read
        raise CheckpointError(path, "grew while it was read", "read it again when it is done")
    return data


def read_text(path: Path, limit: int = SIDE_FILE_LIMIT) -> str:
    """A UTF-8 text side file (``read_bytes`` rules); bad UTF-8 is a CheckpointError."""
    try:
        return read_bytes(path, limit).decode("utf-8")
    except UnicodeDecodeError as error:
        raise CheckpointError(path, f"is not UTF-8 text ({error})", "re-save it") from None


def parse_json(path: Path, text: str | bytes) -> Any:
    """JSON from ``path``: invalid JSON, or JSON nested past what Python's parser takes, is a
    CheckpointError naming the file."""
    try:
        return json.loads(text)
    except RecursionError:
        raise CheckpointError(
            path, "is JSON nested too deeply to be read", "this is not a file dyntools wrote"
        ) from None
    except ValueError as error:  # JSONDecodeError and bad UTF-8 in bytes
        raise CheckpointError(
            path, f"is not valid JSON ({error})", "restore or re-save it"
        ) from None


def read_json(path: Path, limit: int = SIDE_FILE_LIMIT) -> Any:
    """A JSON side file: ``read_bytes`` and ``parse_json`` rules."""
    return parse_json(path, read_text(path, limit))
