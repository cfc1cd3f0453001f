"""The app follows a folder while it grows: with "Follow this folder" on, new results appear
on the next check, and the user's selections stay."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from apptest_helpers import by_key, chart_data, routed, vega_charts

from dyntools.checkpoints import CheckpointWriter
from dyntools.pipeline import ComputeOptions, compute
from dyntools.ui.follow import FOLLOW_KEY

pytestmark = pytest.mark.usefixtures("_config_home")


def _train(writer: CheckpointWriter, model: torch.nn.Module, epochs: range) -> None:
    for epoch in epochs:
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.mul_(1.1)
        writer.save(epoch, train_loss=1.0 / (epoch + 1))


def test_new_checkpoints_appear_while_following(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    writer = CheckpointWriter(tmp_path / "run", model, {"task": "t", "seed": 0})
    _train(writer, model, range(3))
    compute(tmp_path, ComputeOptions(workers=1))
    app = routed("metrics", tmp_path)
    assert not app.exception
    assert chart_data(vega_charts(app)[0])["step"].max() == 2
    by_key(app.sidebar.toggle, FOLLOW_KEY).set_value(True).run()
    assert any("Following: results version" in c.value for c in app.sidebar.caption)
    chosen = by_key(app.multiselect, "metrics.runs").value

    _train(writer, model, range(3, 5))  # the run goes on, and is computed (dyntools watch)
    compute(tmp_path, ComputeOptions(workers=1))
    app.run()  # what the timer of the check does every few seconds
    assert not app.exception
    assert chart_data(vega_charts(app)[0])["step"].max() == 4
    assert by_key(app.multiselect, "metrics.runs").value == chosen


def test_following_is_off_by_default(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    writer = CheckpointWriter(tmp_path / "run", model, {"task": "t", "seed": 0})
    _train(writer, model, range(2))
    compute(tmp_path, ComputeOptions(workers=1))
    app = routed("metrics", tmp_path)
    assert by_key(app.sidebar.toggle, FOLLOW_KEY).value is False
    assert not any("Following" in c.value for c in app.sidebar.caption)


def test_the_latent_states_fit_waits_for_a_refit_on_demand(tmp_path: Path) -> None:
    """While following, new checkpoints do not redraw the states: the page says new results
    arrived, and a button refits on them."""
    models, writers = [], []
    for seed in range(3):
        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
        writer = CheckpointWriter(tmp_path / f"seed{seed}", model, {"task": "t", "seed": seed})
        _train(writer, model, range(8))
        models.append(model)
        writers.append(writer)
    compute(tmp_path, ComputeOptions(workers=1))
    app = routed("latent-states", tmp_path, **{"latent.max_states": "2"})
    by_key(app.sidebar.toggle, FOLLOW_KEY).set_value(True).run()

    def fitted() -> str:
        return next(s.value for s in app.success if s.value.startswith("Fit "))

    assert "24 checkpoints" in fitted()
    for writer, model in zip(writers, models, strict=True):
        _train(writer, model, range(8, 10))
    compute(tmp_path, ComputeOptions(workers=1))
    app.run()
    assert not app.exception
    assert any("New results arrived" in i.value for i in app.info)
    assert "24 checkpoints" in fitted()  # still the fit of the data it was made on
    by_key(app.button, "latent.refit_new").click().run()
    assert "30 checkpoints" in fitted()
