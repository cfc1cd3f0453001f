"""Other processes: a holder of the file lock, and a writer killed with SIGKILL mid-compute."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pytest

from dyntools.store import Store, StoreBusyError

RUNS = pl.DataFrame({"run_id": ["r"], "path": ["/r"], "layout": ["own"]})

# Opens the file like any other DuckDB client would, says so, and holds it.
HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "ro")
print("holding", flush=True)
time.sleep(float(sys.argv[3]))
con.close()
"""


@contextmanager
def hold(path: Path, mode: str, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """A separate process holding ``path`` open (mode 'ro' or 'rw') for ``seconds``."""
    command = [sys.executable, "-c", HOLDER, str(path), mode, str(seconds)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None
            if holder.stdout.readline().strip() != "holding":
                raise RuntimeError("the lock holder did not start")
            yield holder
        finally:
            holder.kill()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "dyntools.duckdb"
    Store(path).upsert_runs(RUNS)
    return path


def test_a_writer_gives_up_with_a_clear_message(db: Path) -> None:
    with hold(db, "ro", 30) as holder, pytest.raises(StoreBusyError) as caught:
        Store(db, lock_timeout=0.3).upsert_runs(RUNS)
    message = str(caught.value)
    assert str(db) in message
    assert f"process {holder.pid}" in message
    assert "dyntools app or another `dyntools compute`" in message


def test_a_reader_gives_up_with_a_clear_message(db: Path) -> None:
    with hold(db, "rw", 30) as holder, pytest.raises(StoreBusyError) as caught:
        Store(db, lock_timeout=0.3).read_runs()
    assert f"{db} is held by process {holder.pid}" in str(caught.value)


def test_waiting_succeeds_when_the_holder_lets_go_in_time(db: Path) -> None:
    with hold(db, "rw", 1.0) as holder:
        store = Store(db, lock_timeout=20)
        store.write_results(
            scalars=pl.DataFrame({"run_id": ["r"], "step": [1], "name": ["loss"], "value": [0.5]})
        )
        assert store.read_scalars()["value"].to_list() == [0.5]
        # The holder exited by itself: we waited for it rather than breaking its lock.
        assert holder.wait(timeout=20) == 0


# Writes batches forever; each batch is ROWS metric rows of one step plus its computed row.
WRITER = """
import sys
import polars as pl
from dyntools.store import Store

store = Store(sys.argv[1])
rows, start = int(sys.argv[2]), int(sys.argv[3])
for batch in range(start, start + 10_000):
    metrics = pl.DataFrame({
        "run_id": "r", "step": batch, "kind": "weight", "scope": "tensor", "hook_point": "h",
        "tensor": [f"t{i}" for i in range(rows)], "metric": "m", "value": float(batch),
    })
    computed = pl.DataFrame({
        "run_id": ["r"], "step": [batch], "kind": ["weight"], "hook_point": ["h"],
        "metric": ["m"], "fingerprint": ["f"],
    })
    store.write_results(metrics=metrics, computed=computed)
    print(batch, flush=True)
"""
ROWS = 3000


def write_then_kill(db: Path, start: int, batches_before_kill: int) -> int:
    """Start a writer, SIGKILL it after it reported that many batches; the last reported one."""
    command = [sys.executable, "-c", textwrap.dedent(WRITER), str(db), str(ROWS), str(start)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as writer:
        try:
            assert writer.stdout is not None
            last = -1
            for _ in range(batches_before_kill):
                last = int(writer.stdout.readline())
            # Land somewhere inside the next transaction rather than always between two.
            time.sleep(0.01 * (batches_before_kill % 4))
            os.kill(writer.pid, signal.SIGKILL)
        finally:
            writer.kill()
    return last


@pytest.mark.slow
def test_kill_9_mid_write_leaves_whole_batches_and_writing_resumes(tmp_path: Path) -> None:
    db = tmp_path / "dyntools.duckdb"
    start = 0
    for round_ in range(3):
        reported = write_then_kill(db, start, batches_before_kill=3 + round_)
        store = Store(db)
        metrics = store.read_metrics()
        per_step = metrics.group_by("step").agg(n=pl.len(), v=pl.col("value").n_unique())
        # Every batch is whole: all its rows or none, never a torn one.
        assert per_step.filter((pl.col("n") != ROWS) | (pl.col("v") != 1)).height == 0
        steps = set(per_step["step"].to_list())
        # Every batch the writer reported as committed survived the kill.
        assert set(range(reported + 1)) <= steps
        # Results and bookkeeping were committed together.
        units = pl.DataFrame(
            {
                "run_id": "r",
                "step": sorted(steps | {max(steps) + 1}),
                "kind": "weight",
                "hook_point": "h",
                "metric": "m",
                "fingerprint": "f",
            }
        )
        assert store.missing_work(units)["step"].to_list() == [max(steps) + 1]
        start = max(steps) + 1  # the next compute resumes where this one stopped
    assert store.read_metrics()["step"].n_unique() == start


# One `dyntools compute` stand-in: writes its own run's batches, one transaction each.
COMPUTE = """
import sys
import polars as pl
from dyntools.store import Store

store = Store(sys.argv[1], lock_timeout=60)
run, batches = sys.argv[2], int(sys.argv[3])
for step in range(batches):
    store.write_results(
        metrics=pl.DataFrame({
            "run_id": run, "step": step, "kind": "weight", "scope": "tensor", "hook_point": "h",
            "tensor": [f"t{i}" for i in range(500)], "metric": "m", "value": 1.0,
        }),
        computed=pl.DataFrame({
            "run_id": [run], "step": [step], "kind": ["weight"], "hook_point": ["h"],
            "metric": ["m"], "fingerprint": ["f"],
        }),
    )
"""


@pytest.mark.slow
def test_two_computes_and_a_reader_at_once_lose_nothing(db: Path) -> None:
    batches = 15
    writers = [
        subprocess.Popen([sys.executable, "-c", COMPUTE, str(db), run, str(batches)])
        for run in ("seed0", "seed1")
    ]
    reader = Store(db, lock_timeout=60)
    seen = []
    try:
        # The app's side: keep reading while both write; every read gets through.
        while any(writer.poll() is None for writer in writers):
            seen.append(reader.read_metrics().height)
    finally:
        for writer in writers:
            writer.wait(timeout=120)
    assert [writer.returncode for writer in writers] == [0, 0]
    assert seen == sorted(seen)  # reads only ever see whole batches, never fewer
    assert all(n % 500 == 0 for n in seen)
    final = Store(db).read_metrics()
    assert final.group_by("run_id").len().sort("run_id").rows() == [
        ("seed0", batches * 500),
        ("seed1", batches * 500),
    ]


def test_threads_of_one_process_share_the_file(db: Path) -> None:
    # The app serves sessions from threads: reads and writes from several at once must not
    # trip over DuckDB's one-configuration-per-file rule within a process.
    store = Store(db)

    def work(i: int) -> int:
        if i % 2:
            store.write_results(
                scalars=pl.DataFrame({"run_id": ["r"], "step": [i], "name": ["x"], "value": [1.0]})
            )
        return store.read_runs().height

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(work, range(12))) == [1] * 12
    assert store.read_scalars().height == 6


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 600 KB file system (tmpfs), where a compute runs out of space."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_is_one_line_and_loses_nothing(
    tiny_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import SAMPLE_RUNS

    from dyntools.cli import main

    db = tiny_disk / "db.duckdb"
    folder = SAMPLE_RUNS / "modular-addition"
    assert main(["compute", str(folder), "--db", str(db), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "is full: this write was rolled back" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    store = Store(db)
    assert store.read_runs().height == 3  # what was written before is intact and readable
