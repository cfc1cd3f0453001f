"""The Latent states page's fit options (views.fit_options) and the held-out column of the
selection frame, against hand-worked examples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from dyntools.charts import heldout_likelihood
from dyntools.hmm import FitConfig
from dyntools.hmm.model_selection import SelectionRow
from dyntools.metrics import Feature
from dyntools.views.latent_states.frames import selection_frame
from dyntools.views.latent_states.options import (
    fitted_runs,
    heldout_checkpoints,
    heldout_runs,
    runs_text,
    shared_features,
    shared_scalars,
    split_heldout,
)

# a logs loss and val_acc (val_acc at two steps), b adds lr, c logs only loss.
SCALARS = pl.DataFrame(
    {
        "run_id": ["a", "a", "a", "b", "b", "b", "c"],
        "step": [0, 0, 1, 0, 0, 0, 0],
        "name": ["loss", "val_acc", "val_acc", "loss", "val_acc", "lr", "loss"],
        "value": [1.0, 0.1, 0.2, 1.0, 0.1, 0.5, 1.0],
    }
)


def test_shared_scalars_are_those_every_chosen_run_logged() -> None:
    assert shared_scalars(SCALARS, ["a", "b"]) == ["loss", "val_acc"]
    assert shared_scalars(SCALARS, ["b"]) == ["loss", "lr", "val_acc"]
    assert shared_scalars(SCALARS, ["a", "b", "c"]) == ["loss"]
    # a's val_acc at two steps does not stand in for c's missing one.
    assert shared_scalars(SCALARS, ["a", "c"]) == ["loss"]
    assert shared_scalars(SCALARS, ["a", "a"]) == ["loss", "val_acc"]
    assert shared_scalars(SCALARS, []) == []
    assert shared_scalars(SCALARS, ["unknown"]) == []


def test_shared_features_name_hook_point_and_metric() -> None:
    index = pl.DataFrame(
        {
            "run_id": ["a", "a", "a", "b", "b"],
            "hook_point": ["fc2", "fc1", "fc1", "fc1", "fc2"],
            "metric": ["l2", "l2", "spectral", "l2", "spectral"],
            "params": ["", "", "", "", ""],
        }
    )
    assert shared_features(index, ["a", "b"]) == [Feature("fc1", "l2")]
    assert [f.format() for f in shared_features(index, ["a"])] == [
        "fc1/l2",
        "fc1/spectral",
        "fc2/l2",
    ]


def test_split_heldout_keeps_the_run_order_and_ignores_unchosen_runs() -> None:
    assert split_heldout(["a", "b", "c"], ["c", "x", "a"]) == (("b",), ("a", "c"))
    assert split_heldout(["a", "b"], []) == (("a", "b"), ())
    assert split_heldout(["a"], ["a"]) == ((), ("a",))


@dataclass(frozen=True)
class _Result:
    """The FitResult fields the functions under test read (a hand-made example)."""

    run_ids: tuple[str, ...]
    config: FitConfig
    selection: tuple[SelectionRow, ...] = ()
    bic_choice: int = 1
    n_states: int = 1
    lengths: tuple[int, ...] = ()
    fitted: np.ndarray | None = None


def test_fitted_and_heldout_runs_of_a_result() -> None:
    result = _Result(("r1", "r2", "r3"), FitConfig(heldout_runs=("r3", "r1")))
    assert fitted_runs(result) == ("r2",)  # type: ignore[arg-type]
    assert heldout_runs(result) == ("r1", "r3")  # type: ignore[arg-type]
    assert runs_text(result) == "1 run fitted, 2 held out"  # type: ignore[arg-type]
    plain = _Result(("r1", "r2"), FitConfig())
    assert fitted_runs(plain) == ("r1", "r2")  # type: ignore[arg-type]
    assert runs_text(plain) == "2 runs"  # type: ignore[arg-type]


def _row(n: int, ll: float, heldout: float | None) -> SelectionRow:
    return SelectionRow(
        n_states=n,
        best_log_likelihood=ll,
        mean_log_likelihood=ll,
        std_log_likelihood=0.0,
        n_parameters=2 * n,
        aic=-2 * ll + 4 * n,
        bic=-2 * ll + 2 * n * 2.0,
        heldout_log_likelihood=heldout,
        restarts=2,
        failed=0,
        converged=2,
        best_seed=0,
    )


def test_selection_frame_has_the_heldout_log_likelihood_per_step() -> None:
    rows = (_row(1, -10.0, -1.5), _row(2, -6.0, -1.25), _row(3, -5.0, None))
    result = _Result(("r1", "r2"), FitConfig(heldout_runs=("r2",)), rows, 2, 2)
    frame = selection_frame(result)  # type: ignore[arg-type]
    assert frame["heldout_log_likelihood"].to_list() == [-1.5, -1.25, None]
    assert frame["used"].to_list() == [False, True, False]
    # The chart of it draws the scored numbers of states only, with the rule at the n used.
    chart = heldout_likelihood(frame, 2).to_dict()
    line, rule = (chart["datasets"][layer["data"]["name"]] for layer in chart["layer"])
    assert [(p["n_states"], p["heldout_log_likelihood"]) for p in line] == [
        (1, -1.5),
        (2, -1.25),
    ]
    assert rule == [{"n_states": 2}]


def test_selection_frame_without_heldout_runs_has_a_null_float_column() -> None:
    result = _Result(("r1",), FitConfig(), (_row(1, -10.0, None), _row(2, -6.0, None)))
    frame = selection_frame(result)  # type: ignore[arg-type]
    assert frame.schema["heldout_log_likelihood"] == pl.Float64
    assert frame["heldout_log_likelihood"].null_count() == 2


def test_heldout_checkpoints_of_the_fitted_runs_are_counted() -> None:
    fitted = np.array([True, False, True, True, False, False])  # r2's last two: a held-out run
    result = _Result(("r1", "r2"), FitConfig(heldout_runs=("r2",)), lengths=(3, 3), fitted=fitted)
    assert heldout_checkpoints(result) == 1  # type: ignore[arg-type]
    assert runs_text(result) == "1 run fitted, 1 held out; 1 checkpoint of the fitted runs held out"  # type: ignore[arg-type]
