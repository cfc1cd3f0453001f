"""Short-lived DuckDB connections with a bounded retry on the file lock.

DuckDB lets one process hold a file read-write, and then no other process can open it, not even
read-only (docs/design.md, "Storage"). So nothing here keeps a connection: each operation opens the file,
runs one transaction and closes it, and an open that meets another process's lock is retried with
backoff until ``lock_timeout`` runs out, then fails with a message that says who holds it.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

_LOCK_MESSAGE = "Could not set lock"
_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>.+?) \(PID (?P<pid>\d+)\)")

# Within one process, DuckDB shares one database instance between connections to the same file and
# refuses a read-only connection next to a read-write one; serialising operations per file avoids
# that (the app serves several sessions from threads of one process).
_THREAD_LOCKS: dict[Path, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


class StoreBusyError(TimeoutError):
    """Another process held the database file for longer than the lock timeout."""


# One thread per connection: the queries are small and the machine is shared by the compute
# workers; DuckDB's thread pool would only add start-up cost. No extension is ever loaded or
# installed on DuckDB's own initiative: opening a file must not reach the network.
CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "threads": 1,
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
}
# A DuckDB database file carries this magic at byte 8 (after the header checksum).
_MAGIC = b"DUCK"


def refuse_foreign(path: Path) -> None:
    """Raise OSError for an existing, non-empty file that is not a DuckDB database (a SQLite
    file at the database path would make DuckDB reach for its SQLite extension)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except FileNotFoundError:
        return
    if head and head[8:12] != _MAGIC:
        kind = "a SQLite database" if head.startswith(b"SQLite format") else "not a DuckDB file"
        raise OSError(
            f"{path} is {kind}, not a dyntools database: move that file away or pass --db with "
            "another path; a new database is made on the next compute"
        )


def _thread_lock(path: Path) -> threading.Lock:
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault(path, threading.Lock())


def _busy_message(path: Path, waited: float, error: duckdb.IOException) -> str:
    match = _HOLDER.search(str(error))
    holder = (
        f"process {match['pid']} ({match['exe']})" if match else "another process (unknown PID)"
    )
    return (
        f"dyntools database {path} is held by {holder} and was not released within "
        f"{waited:.1f} s; it is probably the dyntools app or another `dyntools compute` on the "
        "same folder: wait for it to finish or stop it, then run again (or pass --db to use "
        "another file)"
    )


@contextmanager
def connect(
    path: Path, *, read_only: bool, lock_timeout: float
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open ``path``, retrying on another process's lock for up to ``lock_timeout`` seconds."""
    with _thread_lock(path):
        start = time.monotonic()
        delay = 0.02
        while True:
            try:
                refuse_foreign(path)
                con = duckdb.connect(str(path), read_only=read_only, config=CONFIG)
                break
            except duckdb.IOException as error:
                if _LOCK_MESSAGE not in str(error):
                    raise OSError(
                        f"cannot open dyntools database {path}: {error} Move that file away or "
                        "pass --db with another path; a new database is made on the next compute"
                    ) from error
                waited = time.monotonic() - start
                if waited >= lock_timeout:
                    raise StoreBusyError(_busy_message(path, waited, error)) from None
                # Jitter keeps two waiting processes from retrying in lock step.
                time.sleep(min(delay * random.uniform(0.5, 1.5), lock_timeout - waited + 0.001))
                delay = min(delay * 2, 0.5)
        try:
            yield con
        finally:
            con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """One transaction: committed when the block ends, rolled back when it raises."""
    con.begin()
    try:
        yield con
    except BaseException:
        con.rollback()
        raise
    con.commit()
