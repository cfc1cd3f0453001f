"""Latency of the live view: a checkpoint written by a training loop until it shows in the app.

Setup: a copy of the sample modular-addition run's first checkpoints (its real model, every
weight metric), computed; the app serving it (``streamlit run``) in Chromium on the Metrics
page with "Follow this folder" on, and ``dyntools watch``'s poll running in a thread (every
``WATCH_INTERVAL_S``). Timed: from the writer's ``save`` of the next checkpoint (a training
loop's step) until the page has shown again with the new results (the follow check saw a new
data version, the script ran, the charts are drawn). Goal (issue 16): under 5 s. The worst
case adds a whole watch interval and a whole follow interval to the compute and the render.

There is no peer: the numbers are held to the issue's goal.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import torch
from playwright.sync_api import expect

from bench.report import Row
from dyntools.checkpoints import CheckpointWriter, discover_runs, open_checkpoint
from dyntools.models import build_model
from dyntools.pipeline import ComputeOptions
from dyntools.pipeline.watch import Watcher, watch
from e2e import widgets
from e2e.browser import chromium, new_page, page_url, wait_for_app
from e2e.folder import SAMPLE_RUNS
from e2e.pages import charts_drawn
from e2e.server import running_app

WATCH_INTERVAL_S = 1.0
CHECKPOINTS = 4  # timed one after the other
LOG = Path(tempfile.gettempdir()) / "dyntools-bench-follow.log"


def run() -> list[Row]:
    source = SAMPLE_RUNS / "modular-addition" / "seed0"
    (sample,) = discover_runs(source).runs
    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        run_dir = folder / "modular-addition" / "seed0"
        model = build_model(sample.config["model"])
        with open_checkpoint(sample.checkpoints[0]) as reader:
            model.load_state_dict(reader.read_many(reader.names()))
        config = {k: sample.config[k] for k in ("task", "seed", "model") if k in sample.config}
        writer = CheckpointWriter(run_dir, model, config)
        for epoch in range(2):
            writer.save(epoch, train_loss=1.0)
        watcher = Watcher(folder, ComputeOptions(workers=1))
        watcher.poll()
        stop = threading.Event()
        polling = threading.Thread(
            target=watch, args=(watcher, WATCH_INTERVAL_S), kwargs={"stop": stop.is_set}
        )
        with running_app(folder, LOG) as server, chromium() as browser:
            page = new_page(browser)
            page.goto(page_url(server.url, "metrics", folder))
            wait_for_app(page, "Metrics")
            following = widgets.follow(page)
            polling.start()
            try:
                for epoch in range(2, 2 + CHECKPOINTS):
                    before = following.inner_text()
                    with torch.no_grad():  # one more training step's weights
                        for parameter in model.parameters():
                            parameter.mul_(1.01)
                    start = time.perf_counter()
                    writer.save(epoch, train_loss=1.0 / epoch)
                    expect(following).not_to_have_text(before, timeout=60_000)
                    wait_for_app(page, "Metrics")
                    charts_drawn(page)
                    latencies.append(time.perf_counter() - start)
            finally:
                stop.set()
                polling.join()
    latencies.sort()
    return [
        Row(
            "live view: checkpoint saved -> shown on the Metrics page",
            latencies[len(latencies) // 2],
            None,
            goal="< 5 s",
            note=f"median of {CHECKPOINTS}; worst {latencies[-1]:.1f} s; watch every "
            f"{WATCH_INTERVAL_S:g} s, follow check every 2 s",
        )
    ]
