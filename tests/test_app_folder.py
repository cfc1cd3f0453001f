"""AppTest of the Folder page: runs found, problems, training curves, recent folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from apptest_helpers import APP, by_key, chart_data, chart_spec, direct, routed, vega_charts
from streamlit.testing.v1 import AppTest

from dyntools.checkpoints import CheckpointWriter
from dyntools.ui.recent import read_recent

pytestmark = pytest.mark.usefixtures("_config_home")


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


def test_folder_page_lists_runs_and_plots_their_curves(runs_folder: Path) -> None:
    app = routed("folder", runs_folder)
    assert not app.exception
    assert app.title[0].value == "Folder"
    table = app.dataframe[0].value
    assert sorted(table["run_id"]) == ["toy/seed0", "toy/seed1"]
    assert list(table["checkpoints"]) == [4, 4]
    (chart,) = vega_charts(app)
    assert "vconcat" in chart_spec(chart)
    data = chart_data(chart)
    assert data.height == 2 * 4 * 4  # runs x checkpoints x scalars
    seed1_val = data.filter((data["run_id"] == "toy/seed1") & (data["name"] == "val_acc"))
    assert seed1_val.sort("epoch")["value"].to_list() == pytest.approx([0.1, 0.225, 0.35, 0.475])
    assert "no metrics computed yet" in app.caption[0].value


def test_choosing_runs_narrows_the_curves_and_is_shared(runs_folder: Path) -> None:
    app = routed("folder", runs_folder)
    by_key(app.multiselect, "folder.runs_pick").set_value(["toy/seed1"]).run()
    data = chart_data(vega_charts(app)[0])
    assert set(data["run_id"]) == {"toy/seed1"}
    assert app.session_state["dyntools.runs"] == ["toy/seed1"]
    assert app.query_params["runs"] == "toy/seed1"


def test_the_page_runs_on_its_own_too(runs_folder: Path) -> None:
    app = direct("folder", runs_folder)
    assert not app.exception
    assert app.dataframe[0].value.shape[0] == 2


def test_missing_folder_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    app = routed("folder", tmp_path / "nope")
    assert not app.exception
    assert "does not exist" in app.error[0].value


def test_empty_folder_says_what_to_do(tmp_path: Path) -> None:
    app = routed("folder", tmp_path)
    assert not app.exception
    assert any("dyntools train" in warning.value for warning in app.warning)


def test_folder_typed_in_the_sidebar_is_loaded_and_remembered(
    runs_folder: Path, _config_home: Path
) -> None:
    app = AppTest.from_file(APP, default_timeout=30).run()
    assert "Enter a checkpoint folder" in app.info[0].value
    app.sidebar.text_input[0].input(str(runs_folder)).run()
    assert not app.exception
    assert app.dataframe[0].value.shape[0] == 2
    assert read_recent() == [str(runs_folder)]
    assert (_config_home / "dyntools" / "recent.json").is_file()


def test_recent_folders_are_offered_in_the_sidebar(runs_folder: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    routed("folder", runs_folder)  # remembered
    app = routed("folder", other)
    recent = by_key(app.sidebar.selectbox, "dyntools.recent_choice")
    assert recent.options == [str(runs_folder)]
    recent.set_value(str(runs_folder)).run()
    assert app.session_state["dyntools.folder"] == str(runs_folder)
    assert app.dataframe[0].value.shape[0] == 2


def _add_run(folder: Path, task: str, name: str) -> None:
    writer = CheckpointWriter(folder / task / name, torch.nn.Linear(3, 2), {"task": task})
    writer.save(0, train_loss=1.0)


def test_task_starts_from_the_chosen_runs_else_the_task_with_most_runs(runs_folder: Path) -> None:
    _add_run(runs_folder, "alpha", "seed0")  # first by name, but one run against toy's two
    app = routed("folder", runs_folder)
    assert by_key(app.selectbox, "folder.task").value == "toy"
    assert by_key(app.multiselect, "folder.runs_pick").value == ["toy/seed0", "toy/seed1"]
    # Runs chosen elsewhere (here: the URL of another page) decide the task.
    app = routed("folder", runs_folder, runs="alpha/seed0")
    assert by_key(app.selectbox, "folder.task").value == "alpha"
    assert by_key(app.multiselect, "folder.runs_pick").value == ["alpha/seed0"]
    # Choosing a task chooses its runs for every page.
    by_key(app.selectbox, "folder.task").set_value("toy").run()
    assert app.session_state["dyntools.runs"] == ["toy/seed0", "toy/seed1"]
    assert by_key(app.selectbox, "folder.task").value == "toy"


def test_view_options_come_back_from_the_url(runs_folder: Path) -> None:
    app = routed("folder", runs_folder, **{"folder.log_loss": "false"})
    assert by_key(app.toggle, "folder.log_loss").value is False
