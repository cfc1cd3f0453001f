"""The Training steps page: per-step statistics recorded in the loop, drawn as the colorful
dimension with a column per step (pooled when there are many) and per-step curves."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import torch
from apptest_helpers import by_key, chart_data, routed, vega_charts

from dyntools.checkpoints import CheckpointWriter
from dyntools.checkpoints.step_stats import read_step_stats
from dyntools.hooks import ActivationStats
from dyntools.ui.follow import FOLLOW_KEY
from dyntools.views.steps import step_heatmap_frame, step_stats_curves

pytestmark = pytest.mark.usefixtures("_config_home")


def _train(run_dir: Path, steps: int, lr: float = 0.05) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    writer = CheckpointWriter(run_dir, model, {"task": "t", "seed": 0})
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    x, y = torch.randn(64, 6), torch.randint(0, 3, (64,))
    with ActivationStats(model, run_dir) as stats:
        for _ in range(steps):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        stats.flush()
    writer.save(0, train_loss=loss.item())


def test_per_step_frames_pool_steps_and_keep_every_count(tmp_path: Path) -> None:
    _train(tmp_path / "run", 25)
    stats = read_step_stats(tmp_path / "run")
    heatmap = step_heatmap_frame({"run": stats}, max_columns=10)
    assert heatmap["step"].n_unique() == 9  # 25 steps in windows of 3
    # pooled, not dropped: every value of every step is in some bin
    assert heatmap["count"].sum() == stats["count"].sum()
    curves = step_stats_curves({"run": stats}, max_columns=100)
    assert curves.height == 25
    row = stats.filter(pl.col("step") == 7).row(0, named=True)
    mine = curves.filter(pl.col("step") == 7).row(0, named=True)
    assert (mine["act_mean"], mine["dead_fraction"]) == (row["mean"], row["dead_fraction"])


def test_the_page_draws_the_recorded_steps(tmp_path: Path) -> None:
    _train(tmp_path / "run", 30)
    app = routed("steps", tmp_path)
    assert not app.exception, [e.value for e in app.exception]
    assert by_key(app.multiselect, "steps.runs").value == ["run"]
    heatmap, curves = vega_charts(app)
    assert chart_data(heatmap)["step"].n_unique() == 30
    assert chart_data(curves)["hook_point"].unique().to_list() == ["1"]  # the ReLU


def test_a_folder_without_step_statistics_says_how_to_record_them(tmp_path: Path) -> None:
    torch.manual_seed(0)
    CheckpointWriter(tmp_path / "run", torch.nn.Linear(2, 2), {"task": "t"}).save(0)
    app = routed("steps", tmp_path)
    assert not app.exception
    assert "--step-stats" in app.info[0].value


def test_following_shows_steps_recorded_since(tmp_path: Path) -> None:
    """Per-step statistics grow in files, not in the database: following notices them too."""
    _train(tmp_path / "run", 10)
    app = routed("steps", tmp_path)
    by_key(app.sidebar.toggle, FOLLOW_KEY).set_value(True).run()
    (caption,) = [c.value for c in app.sidebar.caption if c.value.startswith("Following")]
    assert "kB of per-step statistics" in caption
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    with ActivationStats(model, tmp_path / "run", start_step=10):  # the loop goes on
        model(torch.randn(4, 6))
    app.run()
    assert not app.exception
    (after,) = [c.value for c in app.sidebar.caption if c.value.startswith("Following")]
    assert after != caption
    heatmap, _ = vega_charts(app)
    assert chart_data(heatmap)["step"].max() == 10


def test_a_rising_crash_is_a_warning_on_the_page(tmp_path: Path) -> None:
    """A run whose ReLU outputs rise and then die, recorded in the loop, gets the warning."""
    run_dir = tmp_path / "run"
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    CheckpointWriter(run_dir, model, {"task": "t"}).save(0)
    x = torch.randn(64, 6)
    with ActivationStats(model, run_dir) as stats, torch.no_grad():
        for step in range(80):
            stats.set_step(step)
            # the first layer's outputs: steady, rising, then pushed below zero (units die)
            scale = 1.3 ** max(0, step - 50) if step < 60 else 1.0
            model[0].weight.copy_(torch.full((16, 6), 0.1 * scale))
            model[0].bias.fill_(0.0 if step < 60 else -10.0)
            model(x)
    app = routed("steps", tmp_path)
    assert not app.exception
    (warning,) = [w.value for w in app.warning]
    assert "Rising crash" in warning and "1" in warning
