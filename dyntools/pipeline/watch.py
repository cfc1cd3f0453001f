"""Following a folder while runs write into it: poll, and compute what is new once complete.

Polling (file size and modification time, as discovery reads them), not file-system events:
network file systems, common for shared checkpoints, deliver none. A checkpoint is taken once
complete: at once in a layout whose writers rename a finished file into place (dyntools'
writer, the Trainer's ``tmp-checkpoint-N``, the hub cache's downloads); in any other, when its
files kept their size and modification time over two polls. A poll that finds the folder as
it was computes nothing; one that finds a change runs one incremental compute, which opens the
database for its write only.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dyntools.checkpoints import LAYOUTS, CheckpointRef, Run, discover_runs
from dyntools.pipeline.options import ComputeOptions
from dyntools.pipeline.runner import ComputeSummary, compute

DEFAULT_INTERVAL = 2.0  # seconds between polls


@dataclass
class Watcher:
    """One folder followed: ``poll()`` computes what became complete since the last poll.

    A poll reads the folder (discovery: headers, sizes, times) and computes only when something
    on disk changed since the last compute or a checkpoint was still being written then: an
    idle folder costs no model rebuilds, planning or database access at every poll (and a
    checkpoint that failed is tried again once its files change).
    """

    folder: Path
    options: ComputeOptions = field(default_factory=ComputeOptions)
    db: Path | None = None
    # What the folder held at the previous poll: checkpoint path -> (size, mtime), problems.
    seen: dict[Path, tuple[int, int]] = field(default_factory=dict)
    problems: frozenset[str] = frozenset()
    waiting: bool = False  # the last compute left a checkpoint still being written
    last: ComputeSummary | None = None

    def poll(self) -> ComputeSummary:
        discovery = discover_runs(self.folder)
        current = {ref.path: _state(ref) for run in discovery.runs for ref in run.checkpoints}
        problems = frozenset(problem.message() for problem in discovery.all_problems())
        previous, unchanged = self.seen, (current, problems) == (self.seen, self.problems)
        self.seen, self.problems = current, problems
        if unchanged and not self.waiting and self.last is not None:
            return dataclasses.replace(
                self.last,
                computed=0,
                skipped=self.last.checkpoints,
                failed=(),
                values_written=0,
                seconds=0.0,
                notes=(),
            )
        waiting = False

        def ready(run: Run, ref: CheckpointRef) -> bool:
            nonlocal waiting
            reader = LAYOUTS.get(run.layout)
            whole = (reader is not None and reader.atomic) or previous.get(ref.path) == _state(ref)
            waiting |= not whole
            return whole

        self.last = compute(self.folder, self.options, db=self.db, ready=ready)
        self.waiting = waiting
        return self.last


def _state(ref: CheckpointRef) -> tuple[int, int]:
    return ref.fingerprint.size, ref.fingerprint.mtime_ns


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
