"""On the sample modular-addition runs the decoded states change near the grokking epoch.

Metrics are computed here straight from the checkpoints (l2 norm of every tensor, numpy), so
the test needs neither the store nor the compute pipeline, only ``sample_runs/``.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from conftest import SAMPLE_RUNS
from safetensors import safe_open

from dyntools.checkpoints import find_own_runs, read_own_run
from dyntools.hmm import FitConfig, fit_latent_states

MODULAR = SAMPLE_RUNS / "modular-addition"


def tidy_frames() -> tuple[pl.DataFrame, pl.DataFrame]:
    metric_rows: list[tuple[str, int, int | None, str, str, float]] = []
    scalar_rows: list[tuple[str, int, int | None, str, float]] = []
    for run_dir in find_own_runs(MODULAR):
        run = read_own_run(run_dir)
        run_id = run_dir.name
        for ckpt in run.checkpoints:
            with safe_open(str(ckpt.path), framework="numpy") as handle:
                for name in handle.keys():  # noqa: SIM118 - safe_open is not a dict
                    tensor = handle.get_tensor(name).astype(np.float64)
                    metric_rows.append(
                        (run_id, ckpt.step, ckpt.epoch, name, "l2", float(np.linalg.norm(tensor)))
                    )
            for key, value in ckpt.scalars.items():
                scalar_rows.append((run_id, ckpt.step, ckpt.epoch, key, float(value)))
    metrics = pl.DataFrame(
        metric_rows,
        schema=["run_id", "step", "epoch", "hook_point", "metric", "value"],
        orient="row",
    )
    scalars = pl.DataFrame(
        scalar_rows, schema=["run_id", "step", "epoch", "name", "value"], orient="row"
    )
    return metrics, scalars


@pytest.mark.skipif(
    not MODULAR.is_dir(),
    reason=f"{MODULAR} is absent: run `make sample-runs` to generate the sample runs",
)
def test_states_change_near_the_grokking_epoch() -> None:
    metrics, scalars = tidy_frames()
    result = fit_latent_states(metrics, scalars, FitConfig(max_states=6, restarts=3))
    assert result.convergence is not None, "the sample runs must log val_acc"
    grokked = result.convergence.convergence_epoch
    assert grokked, "no sample run reaches 90% validation accuracy"
    epochs = dict(
        zip(result.run_ids, np.split(result.epochs, np.cumsum(result.lengths)[:-1]), strict=True)
    )
    near = 0
    for run, path in result.paths().items():
        if run not in grokked:
            continue
        span = float(np.nanmax(epochs[run]) - np.nanmin(epochs[run]))
        changes = epochs[run][1:][np.diff(path) != 0]
        if changes.size and np.min(np.abs(changes - grokked[run])) <= 0.15 * span:
            near += 1
    assert near >= max(1, len(grokked) // 2 + 1), (
        f"only {near} of {len(grokked)} runs change state within 15% of training "
        "around their grokking epoch"
    )
