"""The training loop: every task trains, runs are deterministic, run.json rebuilds the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from dyntools.checkpoints import read_run
from dyntools.checkpoints.format import RUN_SCHEMA_VERSION
from dyntools.models import build_model
from dyntools.train import TASKS, get_task, train

# Tiny settings so each task trains in about a second.
TINY: dict[str, dict[str, Any]] = {
    "modular-addition": {
        "p": 7,
        "d_model": 8,
        "n_heads": 2,
        "d_mlp": 16,
        "epochs": 3,
        "checkpoints": "every",
    },
    "sparse-parity": {
        "n_bits": 8,
        "n_train": 64,
        "n_val": 16,
        "hidden": 16,
        "epochs": 3,
        "checkpoints": "every",
    },
    "digits-cnn": {"epochs": 2, "checkpoints": "every"},
    "digits-resnet": {"widths": [4, 8], "epochs": 2, "checkpoints": "every"},
}


def tensors(run_dir: Path, epoch: int) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / f"epoch_{epoch:05d}.safetensors"))


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_trains_and_writes_a_rebuildable_run(name: str, tmp_path: Path) -> None:
    result = train(get_task(name), tmp_path, seed=0, overrides=TINY[name])
    epochs = TINY[name]["epochs"]
    assert [r.epoch for r in result.records] == list(range(epochs + 1))
    run = read_run(tmp_path)
    config = run.config
    assert config["schema_version"] == RUN_SCHEMA_VERSION
    assert config["task"] == name and config["seed"] == 0
    assert config["hyperparameters"]["epochs"] == epochs
    assert {"name", "lr", "weight_decay"} <= set(config["optimizer"])
    assert config["dataset"]["n_train"] > 0 and config["dyntools_version"]
    assert [c.epoch for c in run.checkpoints] == list(range(epochs + 1))
    steps = [c.step for c in run.checkpoints]
    assert steps[0] == 0 and steps == sorted(steps) and steps[-1] > steps[0]
    for checkpoint in run.checkpoints:
        assert set(checkpoint.scalars) == {"train_loss", "val_loss", "train_acc", "val_acc"}
        with safe_open(str(checkpoint.path), framework="pt") as handle:
            metadata = handle.metadata()
        assert metadata["epoch"] == str(checkpoint.epoch)
        model = build_model(config["model"])
        model.load_state_dict(load_file(str(checkpoint.path)), strict=True)
    # The probe is the first validation samples, and the rebuilt model reproduces the accuracy.
    assert run.probe is not None
    probe = load_file(str(run.probe))
    assert probe["x"].shape[0] == probe["y"].shape[0] == config["probe"]["n"] <= 512
    assert result.records[-1].train_loss < result.records[0].train_loss


def test_scalars_match_a_recomputation_from_the_checkpoint(tmp_path: Path) -> None:
    task = get_task("digits-cnn")
    result = train(task, tmp_path, seed=1, overrides=TINY["digits-cnn"])
    run = read_run(tmp_path)
    model = build_model(run.config["model"])
    model.load_state_dict(tensors(tmp_path, 2))
    model.eval()
    data = task.build_data(run.config["hyperparameters"], 1)
    with torch.no_grad():
        accuracy = (model(data.x_val).argmax(-1) == data.y_val).float().mean().item()
    assert accuracy == pytest.approx(result.records[-1].val_acc, abs=1e-6)
    assert run.checkpoints[-1].scalars["val_acc"] == result.records[-1].val_acc


@pytest.mark.parametrize("name", ["modular-addition", "digits-resnet"])
def test_same_seed_gives_identical_tensors_and_another_seed_does_not(
    name: str, tmp_path: Path
) -> None:
    overrides = {**TINY[name], "epochs": 2}
    for folder, seed in (("a", 3), ("b", 3), ("c", 4)):
        train(get_task(name), tmp_path / folder, seed=seed, overrides=overrides)
    first, again, other = (tensors(tmp_path / f, 2) for f in "abc")
    assert first.keys() == again.keys()
    for key in first:
        assert torch.equal(first[key], again[key]), key
    assert any(not torch.equal(first[k], other[k]) for k in first if first[k].is_floating_point())
    meta = [read_run(tmp_path / f).checkpoints[-1].scalars for f in "ab"]
    assert meta[0] == meta[1]


def test_determinism_settings_are_restored(tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    train(get_task("sparse-parity"), tmp_path, seed=0, overrides=TINY["sparse-parity"])
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()


def test_options_map_to_the_model(tmp_path: Path) -> None:
    train(
        get_task("modular-addition"),
        tmp_path / "ln",
        seed=0,
        overrides={**TINY["modular-addition"], "epochs": 1, "layernorm": True},
    )
    assert "blocks.0.ln1.w" in tensors(tmp_path / "ln", 1)
    train(
        get_task("digits-resnet"),
        tmp_path / "fork",
        seed=0,
        overrides={**TINY["digits-resnet"], "epochs": 1, "batchnorm": False, "residual": False},
    )
    config = read_run(tmp_path / "fork").config
    assert config["model"]["kwargs"]["batchnorm"] is False
    assert config["model"]["kwargs"]["residual"] is False


def test_schedule_decides_which_epochs_are_saved(tmp_path: Path) -> None:
    result = train(
        get_task("sparse-parity"),
        tmp_path,
        seed=0,
        overrides={**TINY["sparse-parity"], "epochs": 7, "checkpoints": "every 3"},
    )
    assert [r.epoch for r in result.records] == [0, 3, 6, 7]
    assert sorted(p.name for p in tmp_path.glob("epoch_*")) == [
        "epoch_00000.safetensors",
        "epoch_00003.safetensors",
        "epoch_00006.safetensors",
        "epoch_00007.safetensors",
    ]


def test_presets_match_the_papers() -> None:
    paper = get_task("modular-addition").presets["paper"]
    assert (paper["p"], paper["train_fraction"], paper["d_model"], paper["n_heads"]) == (
        113,
        0.3,
        128,
        4,
    )
    assert (paper["d_mlp"], paper["lr"], paper["weight_decay"], paper["batch_size"]) == (
        512,
        1e-3,
        1.0,
        256,
    )
    parity = get_task("sparse-parity").presets["paper"]
    assert (parity["n_bits"], parity["k"], parity["n_train"], parity["n_val"]) == (40, 3, 1000, 100)
    assert (parity["hidden"], parity["optimizer"], parity["lr"], parity["weight_decay"]) == (
        1000,
        "sgd",
        0.1,
        0.01,
    )
    assert (parity["batch_size"], parity["epochs"]) == (32, 300)


def test_bad_options_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    task = get_task("digits-cnn")
    with pytest.raises(ValueError, match="--layernorm does not apply"):
        train(task, tmp_path / "a", seed=0, overrides={"layernorm": True})
    with pytest.raises(ValueError, match="no preset 'huge'"):
        train(task, tmp_path / "b", seed=0, preset="huge")
    with pytest.raises(ValueError, match="epochs"):
        train(task, tmp_path / "c", seed=0, overrides={"epochs": 0})
    with pytest.raises(ValueError, match="seed"):
        train(task, tmp_path / "d", seed=-1)
    with pytest.raises(LookupError, match="known tasks: modular-addition"):
        get_task("mnist")
    assert list(tmp_path.iterdir()) == []
