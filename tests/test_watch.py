"""dyntools watch: a training loop writes checkpoints in another process while the folder is
followed; every checkpoint is computed exactly once, never half-written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import polars as pl
import torch
from safetensors.torch import save

from dyntools.pipeline import ComputeOptions
from dyntools.pipeline.watch import Watcher, watch
from dyntools.store import Store, locate_db

TRAINING = textwrap.dedent(
    """
    import sys, time, torch
    from dyntools.checkpoints import CheckpointWriter
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    writer = CheckpointWriter(sys.argv[1], model, {"task": "t", "seed": 0})
    for epoch in range(int(sys.argv[2])):
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1.1)
        writer.save(epoch, train_loss=1.0 / (epoch + 1))
        time.sleep(0.4)
    """
)


def test_a_run_followed_while_it_trains(tmp_path: Path) -> None:
    epochs = 6
    training = subprocess.Popen(
        [sys.executable, "-c", TRAINING, str(tmp_path / "run"), str(epochs)],
    )
    watcher = Watcher(tmp_path, ComputeOptions(workers=1))
    computed: list[int] = []
    done_polls = 0

    def stop() -> bool:
        nonlocal done_polls
        if training.poll() is not None:
            done_polls += 1
        return done_polls > 2  # two polls after the loop ended: everything is in

    try:
        watch(watcher, 0.2, on_poll=lambda s: computed.append(s.computed), stop=stop)
    finally:
        training.kill()
    assert training.wait() == 0
    store = Store(locate_db(tmp_path).path)
    metrics = store.read_metrics(metrics=["l2"]).filter(pl.col("scope") == "hook_point")
    steps = sorted(set(metrics["step"]))
    assert steps == list(range(epochs))
    # exactly once: one value per step and hook point, and no checkpoint computed twice
    assert metrics.group_by("step", "hook_point").len()["len"].max() == 1
    assert sum(computed) == epochs
    assert sum(1 for n in computed if n) >= 2  # computed as the run grew, not all at the end


def test_a_file_being_written_waits_for_two_unchanged_polls(tmp_path: Path) -> None:
    """A numbered safetensors file (no atomic rename) is read only once its size and time held
    still over two polls."""
    folder = tmp_path / "exported"
    folder.mkdir()
    complete = save({"layer.weight": torch.randn(4, 4)})
    path = folder / "step_1.safetensors"
    path.write_bytes(complete[: len(complete) // 2])  # half-written
    watcher = Watcher(tmp_path, ComputeOptions(workers=1))
    assert watcher.poll().computed == 0
    path.write_bytes(complete)
    os.utime(path, ns=(time.time_ns(), time.time_ns()))
    assert watcher.poll().computed == 0  # changed since the last poll: not yet
    assert watcher.poll().computed == 1  # held still: read now
    assert watcher.poll().computed == 0  # and only once


def test_the_command_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    torch.manual_seed(0)
    folder = tmp_path / "exported"
    folder.mkdir()
    (folder / "step_1.safetensors").write_bytes(save({"layer.weight": torch.randn(4, 4)}))
    process = subprocess.Popen(
        [sys.executable, "-m", "dyntools", "watch", str(tmp_path), "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # never wait forever on a silent process
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    assert process.stdout is not None
    lines = []
    for line in process.stdout:  # until the file, once still over two polls, is computed
        lines.append(line)
        if "1 checkpoint(s) computed" in line:
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    watchdog.cancel()
    assert process.returncode == 0, err
    assert "watching" in lines[0], lines
    assert "stopped; everything computed so far is stored" in out
