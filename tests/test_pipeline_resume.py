"""kill -9 during a compute leaves a consistent database, and the next compute resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import torch

from dyntools.checkpoints import CheckpointWriter
from dyntools.store import Store

KEY = ["run_id", "step", "hook_point", "tensor", "metric", "params"]


def make_runs(folder: Path, checkpoints: int) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(96, 96), torch.nn.Linear(96, 96))
    writer = CheckpointWriter(folder / "run", model, {"task": "t"})
    for epoch in range(checkpoints):
        with torch.no_grad():
            model[0].weight.add_(0.01)
        writer.save(epoch, train_loss=1.0)


@pytest.mark.slow
def test_kill_during_compute_then_resume(tmp_path: Path) -> None:
    folder = tmp_path / "runs"
    make_runs(folder, 60)
    db = tmp_path / "db.duckdb"
    command = [
        sys.executable,
        "-m",
        "dyntools",
        "compute",
        str(folder),
        "--db",
        str(db),
        "--workers",
        "1",
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    # The non-terminal progress report prints a line every 10%: kill once 30% are done.
    deadline = time.monotonic() + 120
    seen = 0
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        if "checkpoints" in line:
            seen += 1
            if seen >= 4:
                os.kill(process.pid, signal.SIGKILL)
                break
    process.wait(timeout=30)
    process.stderr.close()
    assert process.returncode == -signal.SIGKILL, "the compute finished before it was killed"

    store = Store(db)
    computed = store.read_metrics()
    assert 0 < computed.select("step").n_unique() < 60
    # Consistent: every checkpoint has either all its values or none of them.
    per_step = computed.group_by("step").len()["len"]
    assert per_step.n_unique() == 1

    resumed = subprocess.run([*command, "--json"], capture_output=True, text=True, check=True)
    assert '"failed": []' in resumed.stdout
    done = computed.select("step").n_unique()
    assert f'"computed": {60 - done}' in resumed.stdout
    fresh_db = tmp_path / "fresh.duckdb"
    subprocess.run(
        [*command[:-4], "--db", str(fresh_db), "--workers", "1"], check=True, capture_output=True
    )
    resumed_values = Store(db).read_metrics().sort(KEY)
    fresh_values = Store(fresh_db).read_metrics().sort(KEY)
    assert resumed_values.select(KEY).equals(fresh_values.select(KEY))
    assert resumed_values["value"].to_list() == pytest.approx(
        fresh_values["value"].to_list(), nan_ok=True
    )


def test_cli_compute_reports_and_exits_cleanly(tmp_path: Path) -> None:
    make_runs(tmp_path / "runs", 3)
    result = subprocess.run(
        [sys.executable, "-m", "dyntools", "compute", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "3 computed, 0 already up to date, 0 failed" in result.stdout
    assert (tmp_path / "runs" / ".dyntools" / "dyntools.duckdb").is_file()
    missing = subprocess.run(
        [sys.executable, "-m", "dyntools", "compute", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    bad_metric = subprocess.run(
        [sys.executable, "-m", "dyntools", "compute", str(tmp_path / "runs"), "--metrics", "l3"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad_metric.returncode == 2 and "unknown metric" in bad_metric.stderr
    assert pl.Series(bad_metric.stderr.splitlines()).len() == 1
