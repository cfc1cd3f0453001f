"""dyntools fit: finds the database of a parent folder, fits the runs below FOLDER, reads back."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import torch

from dyntools.checkpoints import CheckpointWriter
from dyntools.cli import main
from dyntools.pipeline import ComputeOptions, compute
from dyntools.pipeline.fits import fit_data
from dyntools.selection import NetworkSelection
from dyntools.store import Store, locate_db
from dyntools.views.compare_fits import describe_config


def write_runs(folder: Path, seeds: range, epochs: int = 12) -> None:
    for seed in seeds:
        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Linear(8, 3))
        writer = CheckpointWriter(folder / f"seed{seed}", model, {"task": "t", "seed": seed})
        for epoch in range(epochs):
            with torch.no_grad():  # two regimes: weights grow, then shrink
                scale = 1.2 if epoch < epochs // 2 else 0.8
                for parameter in model.parameters():
                    parameter.mul_(scale).add_(0.01 * torch.randn_like(parameter))
            writer.save(epoch, val_acc=float(epoch >= epochs // 2), train_loss=1.0 / (epoch + 1))


def test_fit_reads_a_parent_database_and_is_read_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_runs(tmp_path / "task-a", range(2))
    write_runs(tmp_path / "task-b", range(1))
    compute(tmp_path, ComputeOptions(workers=1))
    args = ["fit", str(tmp_path / "task-a"), "--max-states", "3", "--restarts", "2", "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["from_store"] is False
    assert sorted(first["run_ids"]) == ["task-a/seed0", "task-a/seed1"]
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["from_store"] is True and second["config_hash"] == first["config_hash"]

    assert main(["fit", str(tmp_path / "task-a"), "--max-states", "2", "--restarts", "2"]) == 0
    report = capsys.readouterr().out
    assert "model selection" in report and "fitted and stored" in report


def test_fit_without_a_database_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fit", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "run `dyntools compute" in error and len(error.strip().splitlines()) == 1


def test_stability_and_state_names_are_stored_with_the_fit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_runs(tmp_path, range(3))
    compute(tmp_path, ComputeOptions(workers=1))
    base = ["fit", str(tmp_path), "--max-states", "3", "--restarts", "2"]
    assert main([*base, "--stability", "4", "--name", "0=start", "--name", "1=growing"]) == 0
    captured = capsys.readouterr()
    assert "checking stability: 4 resamples" in captured.err
    assert "stability (4 resamples of the runs)" in captured.out
    assert "  0 (start):" in captured.out and "  1 (growing):" in captured.out
    # Asked again: the fit, its stability and its names come back from the store.
    assert main([*base, "--stability", "4", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["from_store"] is True
    assert payload["stability"]["resamples"] == 4
    assert payload["state_names"][:2] == ["start", "growing"]
    assert main([*base, "--name", "two=x"]) == 2
    assert "--name takes STATE=NAME" in capsys.readouterr().err


def test_a_fit_names_the_tensors_its_paper_features_were_computed_over(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_runs(tmp_path, range(2))
    compute(tmp_path, ComputeOptions(workers=1))
    # A second compute over one hook point stores network values of the same preset over it.
    compute(tmp_path, ComputeOptions(select=("0",), workers=1))
    args = ["fit", str(tmp_path), "--max-states", "2", "--restarts", "2"]
    assert main([*args, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["config"]["paper_features"] is True
    assert document["config"]["network_selection"] == {"preset": "paper"}
    assert main(args) == 0
    assert "paper features over the tensors of preset paper" in capsys.readouterr().out
    store = Store(locate_db(tmp_path).path)
    (config_json,) = store.list_fits()["config_json"].to_list()
    assert "paper features (the tensors of preset paper)" in describe_config(
        json.loads(config_json)
    )
    # One network value per run, checkpoint and metric, whichever way the selection is named.
    data = fit_data(store)
    network = pl.col("scope") == "network"
    default = data.for_fit(None).filter(network)
    named = data.for_fit(NetworkSelection()).filter(network)
    assert default.height == named.height == default.unique(["run_id", "step", "metric"]).height
    # Exports name the selection of every network value.
    tidy = store.tidy_table().filter(network)
    assert tidy.height and tidy["params"].str.contains('"preset":"paper"').all()


def test_a_fit_takes_the_paper_features_of_runs_computed_only_over_chosen_hook_points(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_runs(tmp_path, range(2))
    compute(tmp_path, ComputeOptions(select=("0",), workers=1))
    assert main(["fit", str(tmp_path), "--max-states", "2", "--restarts", "2", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["config"]["network_selection"] == {"preset": "paper"}
    assert "l1" in document["columns"]


def test_a_fit_says_when_its_runs_paper_features_cover_different_hook_points(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_runs(tmp_path, range(2))
    compute(tmp_path, ComputeOptions(runs=("seed0",), workers=1))
    compute(tmp_path, ComputeOptions(runs=("seed1",), select=("0",), workers=1))
    assert main(["fit", str(tmp_path), "--max-states", "2", "--restarts", "2"]) == 0
    report = capsys.readouterr().out
    assert "note: the paper features of these runs were computed over different hook points" in (
        report
    )
    assert "seed1 over 1, seed0 over 2" in report
