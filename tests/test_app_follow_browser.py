"""Following a growing folder in a real browser: a training loop adds checkpoints, `dyntools
watch`'s compute stores them, and the page with "Follow this folder" on shows them without a
click (the timer of the check, which AppTest cannot run): the chart's data grows."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import torch
from playwright.sync_api import Page, expect

from dyntools.checkpoints import CheckpointWriter
from dyntools.pipeline import ComputeOptions
from dyntools.pipeline.watch import Watcher
from e2e import widgets
from e2e.browser import assert_clean, chromium, new_page, page_url, wait_for_app
from e2e.server import REPO_ROOT, running_app

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_growing_run_shows_while_following(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    writer = CheckpointWriter(tmp_path / "run", model, {"task": "t", "seed": 0})

    def train(epochs: range) -> None:
        for epoch in epochs:
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter.mul_(1.1)
            writer.save(epoch, train_loss=1.0 / (epoch + 1))

    watcher = Watcher(tmp_path, ComputeOptions(workers=1))
    train(range(3))
    watcher.poll()
    log = REPO_ROOT / "test-artifacts" / "streamlit-follow.log"
    with running_app(tmp_path, log) as server, chromium() as browser:
        page = new_page(browser)
        page.goto(page_url(server.url, "metrics", tmp_path))
        wait_for_app(page, "Metrics")
        following = widgets.follow(page)
        before = following.inner_text()
        assert chart_steps(page) == {0, 1, 2}
        train(range(3, 5))
        assert watcher.poll().computed == 2
        # no click: the check's timer notices the new results and shows the page again
        expect(following).not_to_have_text(before, timeout=30_000)
        wait_for_app(page, "Metrics")
        assert_clean(page, "Metrics page after following new checkpoints")
        assert chart_steps(page) == {0, 1, 2, 3, 4}


def chart_steps(page: Page) -> set[int]:
    """The steps in the data of the page's first chart, as its CSV download gives them."""
    with page.expect_download() as download:
        page.get_by_test_id("stDownloadButton").filter(has_text="CSV").first.click()
    return set(pl.read_csv(download.value.path())["step"].to_list())
