"""Where the database of a folder goes.

Tests run as root here, and root may write a chmod-ed folder; a read-only mount cannot be made in
this sandbox. So the read-only case injects the writability check (the real one is os.access,
which does report a read-only file system to root), and the writable case uses the real check.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dyntools.store import default_db_path, locate_db


def test_a_writable_folder_keeps_its_database_inside(tmp_path: Path) -> None:
    location = locate_db(tmp_path)
    assert location.path == tmp_path.resolve() / ".dyntools" / "dyntools.duckdb"
    assert not location.fallback
    assert default_db_path(tmp_path) == location.path


def test_a_read_only_folder_falls_back_to_a_per_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    data = tmp_path / "shared" / "runs"
    other = tmp_path / "shared" / "runs2"
    data.mkdir(parents=True)
    other.mkdir()
    location = locate_db(data, writable=lambda path: False)
    assert location.fallback
    assert location.path.parent.parent == tmp_path / "cache" / "dyntools"
    assert location.path.name == "dyntools.duckdb"
    assert str(data.resolve()) in location.note and str(location.path) in location.note
    # Keyed by the folder: stable for one folder, distinct for another.
    assert locate_db(data, writable=lambda path: False) == location
    assert locate_db(other, writable=lambda path: False).path != location.path


def test_an_existing_database_folder_decides(tmp_path: Path) -> None:
    (tmp_path / ".dyntools").mkdir()
    asked: list[Path] = []
    locate_db(tmp_path, writable=lambda path: asked.append(path) or True)
    assert asked == [tmp_path.resolve() / ".dyntools"]


def test_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no folder"):
        locate_db(tmp_path / "nope")
