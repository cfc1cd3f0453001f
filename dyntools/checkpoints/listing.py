"""What the discovery hands to each layout reader: one folder's entries, and the reader API."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from dyntools.checkpoints.records import Run

# File suffixes that look like checkpoints; such a file that no layout reads is reported.
CHECKPOINT_SUFFIXES: Final = frozenset({".safetensors", ".pt", ".pth", ".bin", ".ckpt"})


@dataclass(frozen=True)
class Listing:
    """One folder: its path, the names of its files and of its sub-folders (hidden ones left out)."""

    path: Path
    files: tuple[str, ...]
    dirs: tuple[str, ...]
    # Entries that are neither regular files nor folders (FIFOs, devices, sockets, links to
    # them): never read; reported unless a layout reader owns (and reports) them.
    others: tuple[str, ...] = ()


@dataclass(frozen=True)
class Claim:
    """The runs a layout reader found in a folder (usually one; a hub cache repository with
    several training stages holds one per stage), and the entries of that folder it owns.

    Owned files are not reported as stray; owned sub-folders are not searched for more runs.
    """

    runs: tuple[Run, ...]
    owned: frozenset[str]


@dataclass(frozen=True)
class LayoutReader:
    """One layout: ``detect`` says whether a folder is a run of it; ``read`` reads that run.
    ``atomic``: whoever writes this layout makes a checkpoint visible only once complete (a
    rename), so a checkpoint seen is whole; otherwise a file may be seen half-written."""

    name: str
    detect: Callable[[Listing], bool]
    read: Callable[[Listing, str], Claim]
    atomic: bool = False
