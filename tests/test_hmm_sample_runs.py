"""End to end on the committed sample runs: compute -> store -> fit. The decoded states of the
modular-addition runs change near their grokking epoch, and a refit is read back from the store.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLE_RUNS

from dyntools.hmm import FitConfig
from dyntools.pipeline import ComputeOptions, compute
from dyntools.pipeline.fits import fit_or_load
from dyntools.store import Store

MODULAR = SAMPLE_RUNS / "modular-addition"


@pytest.mark.skipif(
    not MODULAR.is_dir(),
    reason=f"{MODULAR} is absent: run `make sample-runs` to generate the sample runs",
)
@pytest.mark.slow
def test_states_change_near_the_grokking_epoch(tmp_path: Path) -> None:
    db = tmp_path / "db.duckdb"
    summary = compute(MODULAR, ComputeOptions(workers=1), db=db)
    assert summary.failed == () and summary.computed == summary.checkpoints
    config = FitConfig(paper_features=True, max_states=6, restarts=3)
    outcome = fit_or_load(Store(db), config)
    assert not outcome.from_store
    result = outcome.result
    assert result.convergence is not None, "the sample runs must log val_acc"
    grokked = result.convergence.converged_at
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
    again = fit_or_load(Store(db), config)
    assert again.from_store and again.config_hash == outcome.config_hash
    assert again.result.paths().keys() == result.paths().keys()
    for run, path in result.paths().items():
        assert np.array_equal(again.result.paths()[run], path)
