"""Following a folder while runs write into it: poll, and compute what is new once complete.

Polling (file size and modification time, as discovery reads them), not file-system events:
network file systems, common for shared checkpoints, deliver none. A checkpoint is taken once
complete: at once in a layout whose writers rename a finished file into place (dyntools'
writer, the Trainer's ``tmp-checkpoint-N``, the hub cache's downloads); in any other, when its
files kept their size and modification time over two polls. Each poll is one incremental
compute, which opens the database for its write only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dyntools.checkpoints import LAYOUTS, CheckpointRef, Run
from dyntools.pipeline.options import ComputeOptions
from dyntools.pipeline.runner import ComputeSummary, compute

DEFAULT_INTERVAL = 2.0  # seconds between polls


@dataclass
class Watcher:
    """One folder followed: ``poll()`` computes what became complete since the last poll."""

    folder: Path
    options: ComputeOptions = field(default_factory=ComputeOptions)
    db: Path | None = None
    # Checkpoint path -> (size, mtime) at the previous poll.
    seen: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def poll(self) -> ComputeSummary:
        current: dict[Path, tuple[int, int]] = {}

        def ready(run: Run, ref: CheckpointRef) -> bool:
            state = (ref.fingerprint.size, ref.fingerprint.mtime_ns)
            current[ref.path] = state
            reader = LAYOUTS.get(run.layout)
            return (reader is not None and reader.atomic) or self.seen.get(ref.path) == state

        summary = compute(self.folder, self.options, db=self.db, ready=ready)
        self.seen = current
        return summary


def watch(
    watcher: Watcher,
    interval: float = DEFAULT_INTERVAL,
    on_poll: Callable[[ComputeSummary], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> None:
    """Poll every ``interval`` seconds until ``stop()`` says so (or Ctrl-C, which ends between
    two writes: what was computed is stored)."""
    while stop is None or not stop():
        started = time.monotonic()
        summary = watcher.poll()
        if on_poll is not None:
            on_poll(summary)
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
