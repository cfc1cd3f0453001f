"""Worker processes: a kill -9 of a compute leaves none behind (each holds hundreds of MB), and one
killed by the system (out of memory) is a message, not a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import SAMPLE_RUNS

pytestmark = pytest.mark.slow


def _children(pid: int) -> set[int]:
    """Every live process whose parent is ``pid`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_end_when_the_compute_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from dyntools.pipeline import ComputeOptions, compute
        compute({str(SAMPLE_RUNS)!r}, ComputeOptions(workers=2), db={str(tmp_path / "db")!r})
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 120
        workers: set[int] = set()
        while time.monotonic() < deadline and parent.poll() is None:
            # The pool's workers (the spawn machinery adds a resource tracker too).
            workers = {
                pid
                for pid in _children(parent.pid)
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
            }
            if len(workers) >= 2:
                break
            time.sleep(0.2)
        assert len(workers) >= 2, "the compute started no workers"
        time.sleep(2.0)  # let them import and start working
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
            time.sleep(0.2)
        left = [pid for pid in workers if _alive(pid)]
        for pid in left:  # clean up before failing
            os.kill(pid, signal.SIGKILL)
        assert not left, f"workers {left} outlived their parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_a_worker_killed_by_the_system_is_a_message_not_a_traceback() -> None:
    from adversarial import die_on_second

    from dyntools.pipeline.workers import WorkerDiedError, run_jobs

    with pytest.raises(WorkerDiedError, match="worker process died before finishing"):
        list(run_jobs([0, 1, 2, 3], None, 2, die_on_second))
