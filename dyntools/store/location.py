"""Where the database of an analysed folder lives.

By default inside the folder (``FOLDER/.dyntools/dyntools.duckdb``) so that it travels with the
checkpoints. A folder the user cannot write (a shared read-only data set, a read-only mount) gets a
per-user cache file keyed by the folder's absolute path instead, and the caller is told so.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

DB_DIR = ".dyntools"
DB_NAME = "dyntools.duckdb"
# Probe batches of runs that carry none (Trainer folders, the hub cache), one per task: beside
# the database, so that a shared or read-only folder of checkpoints is never written to.
PROBES_DIR = "probes"


@dataclass(frozen=True)
class DbLocation:
    """The database path chosen for a folder, and why when it is not the default."""

    path: Path
    fallback: bool
    note: str = ""


def _writable(path: Path) -> bool:
    # os.access reports a read-only file system (EROFS) even for root, which the permission bits
    # alone do not.
    return os.access(path, os.W_OK)


def cache_dir() -> Path:
    """The per-user cache root: $XDG_CACHE_HOME/dyntools or ~/.cache/dyntools."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "dyntools"


def locate_db(folder: Path, *, writable: Callable[[Path], bool] = _writable) -> DbLocation:
    """Choose the database file for ``folder`` (which must exist); ``writable`` is the check used."""
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {folder}: pass the folder that holds the runs")
    inside = folder / DB_DIR
    if writable(inside if inside.exists() else folder):
        return DbLocation(inside / DB_NAME, fallback=False)
    key = hashlib.sha256(str(folder).encode()).hexdigest()[:16]
    path = cache_dir() / key / DB_NAME
    note = f"{folder} is read-only: keeping the dyntools database in {path}"
    return DbLocation(path, fallback=True, note=note)


def default_db_path(folder: Path) -> Path:
    """The database file for ``folder``: inside it, or a per-user cache file if it is read-only."""
    return locate_db(folder).path


def probe_path(db_path: Path, task: str) -> Path:
    """Where the probe batch of ``task`` lives for the database at ``db_path``."""
    return Path(db_path).parent / PROBES_DIR / f"{quote(task, safe='')}.safetensors"


def find_existing_db(folder: Path) -> tuple[Path, Path] | None:
    """The nearest existing database covering ``folder``: its own, or an ancestor's.

    Returns (database path, the folder it belongs to), so that results computed for
    ``sample_runs`` serve ``sample_runs/modular-addition`` too; None when there is none.
    """
    start = Path(folder).resolve()
    for candidate in (start, *start.parents):
        if not candidate.is_dir():
            continue
        path = locate_db(candidate).path
        if path.is_file() and path.stat().st_size > 0:
            return path, candidate
    return None
