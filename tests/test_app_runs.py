"""AppTest of the Runs page on real run folders written by CheckpointWriter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from apptest_helpers import chart_data, chart_spec, vega_charts
from streamlit.testing.v1 import AppTest

from dyntools.checkpoints import CheckpointWriter

REPO_ROOT = Path(__file__).resolve().parent.parent

APP = str(REPO_ROOT / "streamlit_app.py")


@pytest.fixture
def runs_folder(tmp_path: Path) -> Path:
    for seed in range(2):
        torch.manual_seed(seed)
        writer = CheckpointWriter(
            tmp_path / "toy" / f"seed{seed}",
            torch.nn.Linear(3, 2),
            {"task": "toy", "seed": seed, "model": {"name": "linear", "kwargs": {}}},
        )
        for epoch in range(4):
            writer.save(
                epoch,
                train_loss=1.0 / (epoch + 1),
                val_loss=2.0 / (epoch + 1),
                train_acc=epoch / 4,
                val_acc=epoch / 8 + seed / 10,
            )
    return tmp_path


def run_app(folder: str) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=30)
    app.query_params["folder"] = folder
    return app.run()


def test_runs_page_lists_runs_and_plots_their_curves(runs_folder: Path) -> None:
    app = run_app(str(runs_folder))
    assert not app.exception
    table = app.dataframe[0].value
    assert sorted(table["run_id"]) == ["toy/seed0", "toy/seed1"]
    assert list(table["checkpoints"]) == [4, 4]
    (chart,) = vega_charts(app)
    assert "vconcat" in chart_spec(chart)
    data = chart_data(chart)
    assert data.height == 2 * 4 * 4  # runs x checkpoints x scalars
    seed1_val = data.filter((data["run_id"] == "toy/seed1") & (data["name"] == "val_acc"))
    assert seed1_val.sort("epoch")["value"].to_list() == pytest.approx([0.1, 0.225, 0.35, 0.475])


def test_missing_folder_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    app = run_app(str(tmp_path / "nope"))
    assert not app.exception
    assert "does not exist" in app.error[0].value


def test_empty_folder_says_what_to_do(tmp_path: Path) -> None:
    app = run_app(str(tmp_path))
    assert not app.exception
    assert any("dyntools train" in warning.value for warning in app.warning)


def test_folder_typed_in_the_sidebar_is_loaded(runs_folder: Path) -> None:
    app = AppTest.from_file(APP, default_timeout=30).run()
    assert "Enter a checkpoint folder" in app.info[0].value
    app.sidebar.text_input[0].input(str(runs_folder)).run()
    assert not app.exception
    assert app.dataframe[0].value.shape[0] == 2
