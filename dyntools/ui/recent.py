"""Recently used folders: a small JSON list in the user's config directory.

``$XDG_CONFIG_HOME/dyntools/recent.json`` (or ``~/.config/dyntools/recent.json``). A missing,
unreadable or corrupt file is read as an empty list, and writing it is best effort: the app
must never fail because of this convenience.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

MAX_RECENT = 10


def recent_path() -> Path:
    """Where the list lives."""
    root = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(root) / "dyntools" / "recent.json"


def read_recent(path: Path | None = None) -> list[str]:
    """The recently used folders, most recent first ([] when the file is missing or corrupt)."""
    path = path or recent_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    folders = data.get("folders") if isinstance(data, dict) else None
    if not isinstance(folders, list):
        return []
    return [f for f in folders if isinstance(f, str) and f][:MAX_RECENT]


def remember_folder(folder: str, path: Path | None = None) -> list[str]:
    """Put ``folder`` first in the list and save it; returns the new list (saved or not)."""
    path = path or recent_path()
    folders = [folder, *[f for f in read_recent(path) if f != folder]][:MAX_RECENT]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"folders": folders}, indent=1), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass  # a read-only home directory only loses the list, never the app
    return folders
