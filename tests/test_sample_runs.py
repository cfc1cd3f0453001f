"""The committed sample_runs/: complete, small, grokking, and reproducible by the training code."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dyntools.checkpoints import discover_runs, read_run
from dyntools.models import build_model
from dyntools.train import get_task, train
from dyntools.train.summary import grokking_row

SAMPLE_RUNS = Path(__file__).resolve().parent.parent / "sample_runs"
EXPECTED = {"modular-addition": 3, "sparse-parity": 3, "digits-cnn": 3, "digits-resnet": 1}

pytestmark = pytest.mark.skipif(not SAMPLE_RUNS.is_dir(), reason="sample_runs/ not generated")


def test_every_task_has_its_seeds_and_rebuildable_checkpoints() -> None:
    runs = [run.path for run in discover_runs(SAMPLE_RUNS).runs]
    for task, n_seeds in EXPECTED.items():
        mine = [r for r in runs if r.parent.name == task]
        assert len(mine) >= n_seeds, task
        run = read_run(mine[0])
        assert run.probe is not None and len(run.checkpoints) >= 10
        model = build_model(run.config["model"])
        model.load_state_dict(load_file(str(run.checkpoints[-1].path)), strict=True)
        for checkpoint in run.checkpoints:
            for tensor in load_file(str(checkpoint.path)).values():
                assert tensor.dtype in (torch.float32, torch.int64)


def test_sample_runs_stay_small() -> None:
    total = sum(p.stat().st_size for p in SAMPLE_RUNS.rglob("*") if p.is_file())
    assert total < 38 * 2**20  # the issue allows 40 MB in git


def test_modular_addition_runs_grok() -> None:
    for run in sorted((SAMPLE_RUNS / "modular-addition").glob("seed*")):
        row = grokking_row(run, run.name)
        assert row.first_train_epoch is not None and row.first_val_epoch is not None, run
        # memorization first (validation accuracy still low), generalization much later
        assert row.val_acc_at_first_train < 0.3, row
        assert row.first_val_epoch >= 5 * row.first_train_epoch, row


def test_training_code_reproduces_a_committed_run(tmp_path: Path) -> None:
    committed = SAMPLE_RUNS / "sparse-parity" / "seed1"
    config = read_run(committed).config
    # Epoch 25 of a 25-epoch run is epoch 25 of the 300-epoch run: no learning-rate schedule.
    overrides = {"checkpoints": "every 25", "epochs": 25}
    train(get_task("sparse-parity"), tmp_path, seed=config["seed"], overrides=overrides)
    mine = load_file(str(tmp_path / "epoch_00025.safetensors"))
    theirs = load_file(str(committed / "epoch_00025.safetensors"))
    assert mine.keys() == theirs.keys()
    for key in mine:
        # Bit-identical on the machine that made them; another CPU's kernels may differ in the
        # last bits, which is all this tolerance allows.
        torch.testing.assert_close(mine[key], theirs[key], rtol=1e-4, atol=1e-6)
