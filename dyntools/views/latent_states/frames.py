"""Frames behind the Latent states page (and the state background of the Metrics page).

All from a ``FitResult``: the model-selection table, per-run state paths as points and as
intervals on the fit's axis (steps or epochs), a state's summary and where each run spent it,
and the convergence analysis.
States are labelled ``S0``, ``S1``, ... in order of first visit (the fit relabels them so),
so a label and its colour stay the same across refits.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence

import numpy as np
import polars as pl

from dyntools.hmm import FitResult
from dyntools.hmm.attribution import Driver
from dyntools.hmm.caveats import CaveatCode, chosen_text, plural
from dyntools.hmm.graph import TransitionEdge
from dyntools.hmm.report import state_description
from dyntools.views.colors import category_color


def state_label(state: int) -> str:
    return f"S{state}"


def state_color(state: int) -> str:
    """A state's colour, stable across refits (states are numbered by first visit)."""
    return category_color(state)


def state_domain(n_states: int) -> tuple[list[str], list[str]]:
    """Labels and colours of states 0..n-1, for a chart's colour scale."""
    return [state_label(s) for s in range(n_states)], [state_color(s) for s in range(n_states)]


def selection_frame(result: FitResult) -> pl.DataFrame:
    """One row per number of states: log-likelihoods, AIC, BIC, and which n is used.

    ``heldout_log_likelihood`` is the held-out runs' log-likelihood per time step under that
    n's best model (null without held-out runs, or where every restart failed).
    """
    return pl.DataFrame(
        [
            {
                "n_states": row.n_states,
                "best_log_likelihood": row.best_log_likelihood,
                "mean_log_likelihood": row.mean_log_likelihood,
                "std_log_likelihood": row.std_log_likelihood,
                "aic": row.aic,
                "bic": row.bic,
                "heldout_log_likelihood": row.heldout_log_likelihood,
                "converged": row.converged,
                "failed": row.failed,
                "restarts": row.restarts,
                "bic_choice": row.n_states == result.bic_choice,
                "used": row.n_states == result.n_states,
            }
            for row in result.selection
        ],
        schema_overrides={"heldout_log_likelihood": pl.Float64},  # all None without held-out
    )


def state_points(result: FitResult) -> pl.DataFrame:
    """One row per (run, checkpoint): its decoded state and that state's posterior."""
    states = result.states.astype(np.int64)
    confidence = result.posteriors[np.arange(states.size), states]
    return pl.DataFrame(
        {
            "run_id": np.repeat(np.array(result.run_ids, dtype=object), result.lengths).tolist(),
            "step": result.steps.astype(np.int64),
            "epoch": result.epochs,
            "time": result.times,
            "state": [state_label(int(s)) for s in states],
            "posterior": confidence.astype(np.float64),
        }
    )


def state_intervals(result: FitResult) -> pl.DataFrame:
    """Per run, maximal intervals spent in one state: run_id, state, start, end (on the fit's
    axis: steps or epochs).

    A checkpoint stands for the time up to the next one; the last one for one more gap.
    """
    rows = []
    when = result.times
    bounds = np.concatenate([[0], np.cumsum(result.lengths)])
    for k, run in enumerate(result.run_ids):
        times = when[bounds[k] : bounds[k + 1]]
        states = result.states[bounds[k] : bounds[k + 1]]
        if times.size == 0:
            continue
        gap = float(np.diff(times)[-1]) if times.size > 1 else 1.0
        ends = np.append(times[1:], times[-1] + gap)
        start = 0
        for i in range(1, times.size + 1):
            if i == times.size or states[i] != states[start]:
                rows.append(
                    {
                        "run_id": run,
                        "state": state_label(int(states[start])),
                        "start": float(times[start]),
                        "end": float(ends[i - 1]),
                    }
                )
                start = i
    schema = {"run_id": pl.String, "state": pl.String, "start": pl.Float64, "end": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def state_summary(result: FitResult, state: int) -> pl.DataFrame:
    """A state's node as a two-column table (what, value) for display."""
    nodes = {node.state: node for node in result.graph.nodes}
    if state not in nodes:
        raise LookupError(
            f"state {state} is not in this fit (it has {result.n_states} states: "
            f"{', '.join(state_label(s) for s in range(result.n_states))})"
        )
    node = nodes[state]
    unit = result.axis.value
    rows: list[tuple[str, str]] = [
        ("name", result.state_name(state) or "(none: name it below)"),
        ("summary", state_description(node) or "(no accuracy or loss logged)"),
        ("checkpoints", str(node.checkpoints)),
        ("share of checkpoints", f"{node.occupancy:.1%}"),
        ("runs visiting", str(node.runs_visiting)),
        ("runs starting here", str(node.initial_runs)),
        (f"{unit}s spent per visiting run", _fmt(node.spent_per_run)),
        (
            f"first / mean / last {unit}",
            " / ".join(_fmt(t) for t in (node.first_time, node.mean_time, node.last_time)),
        ),
    ]
    rows += [(f"mean {name}", _fmt(value)) for name, value in sorted(node.scalar_means.items())]
    return pl.DataFrame(rows, schema={"what": pl.String, "value": pl.String}, orient="row")


def _fmt(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.4g}"


def runs_in_state(result: FitResult, state: int) -> pl.DataFrame:
    """Where each run spent ``state``: checkpoints, visits, time spent, first and last time
    (on the fit's axis)."""
    intervals = state_intervals(result).filter(pl.col("state") == state_label(state))
    points = state_points(result).filter(pl.col("state") == state_label(state))
    spent = intervals.group_by("run_id").agg(
        (pl.col("end") - pl.col("start")).sum().alias("spent"),
        pl.len().alias("visits"),
    )
    counts = points.group_by("run_id").agg(
        pl.len().alias("checkpoints"),
        pl.col("time").min().alias("first"),
        pl.col("time").max().alias("last"),
    )
    runs = pl.DataFrame({"run_id": list(result.run_ids)})
    return (
        runs.join(counts, on="run_id", how="left")
        .join(spent, on="run_id", how="left")
        .with_columns(
            pl.col("checkpoints").fill_null(0),
            pl.col("visits").fill_null(0),
            pl.col("spent").fill_null(0.0),
        )
        .select("run_id", "checkpoints", "visits", "spent", "first", "last")
    )


def posterior_frame(result: FitResult, run: str) -> pl.DataFrame:
    """The smoothed posterior p(state | the whole run) of every checkpoint of ``run``, long:
    run_id, step, epoch, time, state, probability (each checkpoint's probabilities sum to 1)."""
    if run not in result.run_ids:
        raise LookupError(f"run {run!r} is not in this fit; its runs: {', '.join(result.run_ids)}")
    k = result.run_ids.index(run)
    bounds = np.concatenate([[0], np.cumsum(result.lengths)])
    rows = slice(int(bounds[k]), int(bounds[k + 1]))
    posteriors = result.posteriors[rows]
    n_rows = posteriors.shape[0]
    return pl.DataFrame(
        {
            "run_id": [run] * (n_rows * result.n_states),
            "step": np.repeat(result.steps[rows].astype(np.int64), result.n_states),
            "epoch": np.repeat(result.epochs[rows], result.n_states),
            "time": np.repeat(result.times[rows], result.n_states),
            "state": [state_label(s) for s in range(result.n_states)] * n_rows,
            "probability": posteriors.reshape(-1).astype(np.float64),
        }
    )


def transition_label(source: int, target: int) -> str:
    return f"{state_label(source)} → {state_label(target)}"


def transitions_between_states(result: FitResult) -> dict[str, TransitionEdge]:
    """The observed transitions between two different states, by label (``S0 → S1``)."""
    return {
        transition_label(edge.source, edge.target): edge
        for edge in result.graph.edges
        if edge.source != edge.target
    }


# The two rankings of a transition's features (hmm.graph), each with how it is read.
DRIVER_KINDS: tuple[tuple[str, Callable[[TransitionEdge], tuple[Driver, ...]]], ...] = (
    ("switch log-odds gradient", lambda edge: edge.top_gradient),
    ("mean difference (target - source, standard units)", lambda edge: edge.top_mean_difference),
)


def drivers_frame(edge: TransitionEdge) -> pl.DataFrame:
    """The features driving one transition, in both rankings: kind, rank, feature, score and
    its spread over the switches (NaN where a ranking has none)."""
    rows = [
        {
            "kind": kind,
            "rank": rank,
            "feature": driver.feature,
            "score": driver.value,
            "spread": driver.spread,
        }
        for kind, ranking in DRIVER_KINDS
        for rank, driver in enumerate(ranking(edge), start=1)
    ]
    schema = {
        "kind": pl.String,
        "rank": pl.Int64,
        "feature": pl.String,
        "score": pl.Float64,
        "spread": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema)


def edges_frame(result: FitResult) -> pl.DataFrame:
    """The observed transitions with their probability and top features (as text)."""
    return pl.DataFrame(
        [
            {
                "from": state_label(edge.source),
                "to": state_label(edge.target),
                "count": edge.count,
                "probability": edge.probability,
                "top_mean_difference": _features_text(edge.top_mean_difference),
                "top_gradient": _features_text(edge.top_gradient),
            }
            for edge in result.graph.edges
        ],
        schema={
            "from": pl.String,
            "to": pl.String,
            "count": pl.Int64,
            "probability": pl.Float64,
            "top_mean_difference": pl.String,
            "top_gradient": pl.String,
        },
    )


def _features_text(features: tuple[Driver, ...]) -> str:
    return "; ".join(driver.text() for driver in features)


def convergence_frame(result: FitResult) -> pl.DataFrame:
    """Per run: where it converged (on the fit's axis; null if never) and the checkpoints spent
    in each state."""
    analysis = result.convergence
    if analysis is None:
        return pl.DataFrame(schema={"run_id": pl.String, "converged_at": pl.Float64})
    counts = state_points(result).group_by("run_id", "state").len()
    wide = counts.pivot(on="state", index="run_id", values="len").fill_null(0)
    labels = [state_label(s) for s in range(result.n_states)]
    wide = wide.with_columns(pl.lit(0, dtype=pl.UInt32).alias(s) for s in labels if s not in wide)
    converged = pl.DataFrame(
        {
            "run_id": list(result.run_ids),
            "converged_at": [analysis.converged_at.get(r) for r in result.run_ids],
        },
        schema={"run_id": pl.String, "converged_at": pl.Float64},
    )
    return converged.join(wide, on="run_id", how="left").select("run_id", "converged_at", *labels)


def regression_frame(result: FitResult) -> pl.DataFrame:
    """Per state: the regression coefficient (time per checkpoint spent) and, for states whose
    visitors converge later, the detour test: ``detour`` is "yes" when supported, "no" when the
    permutation test does not support it, "can't tell" with one visiting run."""
    analysis = result.convergence
    if analysis is None:
        return pl.DataFrame(schema={"state": pl.String, "per_visit": pl.Float64})
    detours = {d.state: d for d in analysis.detours}

    def verdict(state: int) -> str | None:
        found = detours.get(state)
        if found is None:
            return None
        if found.p_value is None:
            return "can't tell (one run)" if found.runs_visiting < 2 else "not tested"
        return "yes" if found.supported else "no"

    return pl.DataFrame(
        [
            {
                "state": state_label(s),
                "per_visit": coefficient,
                "detour": verdict(s),
                "p_value": detours[s].p_value if s in detours else None,
                "mean_visiting": detours[s].mean_visiting if s in detours else None,
                "mean_not_visiting": detours[s].mean_not_visiting if s in detours else None,
            }
            for s, coefficient in enumerate(analysis.coefficients)
        ],
        schema={
            "state": pl.String,
            "per_visit": pl.Float64,
            "detour": pl.String,
            "p_value": pl.Float64,
            "mean_visiting": pl.Float64,
            "mean_not_visiting": pl.Float64,
        },
    )


def stability_frame(result: FitResult) -> pl.DataFrame:
    """Per state: the share of its checkpoints that resamples of the runs keep in it."""
    found = result.stability
    schema = {"state": pl.String, "kept_in_resamples": pl.Float64}
    if found is None:
        return pl.DataFrame(schema=schema)
    return pl.DataFrame(
        {
            "state": [state_label(s) for s in range(len(found.state_agreement))],
            "kept_in_resamples": list(found.state_agreement),
        },
        schema=schema,
    )


def stability_text(result: FitResult) -> str:
    """``6 states chosen in 20% of 20 resamples of the runs (5: 10%, ...); labels agree at ARI
    0.39``, or why there is none."""
    found = result.stability
    if found is None:
        return "not checked"
    return (
        f"{result.n_states} states chosen in {found.share_choosing(result.n_states):.0%} of "
        f"{plural(found.resamples, 'resample')} of the runs ({chosen_text(found)}); labels "
        f"agree with the fit's at an adjusted Rand index of {found.mean_agreement:.2f}"
    )


def caveats_about(result: FitResult, *codes: CaveatCode) -> list[str]:
    """The messages of the fit's caveats with these codes (to show next to what they qualify)."""
    return [caveat.message for caveat in result.caveats if caveat.code in codes]


def latest_fit(fits: pl.DataFrame, runs: Sequence[str]) -> str | None:
    """The newest saved fit (``Store.list_fits``, newest first) that covers any of ``runs``."""
    wanted = set(runs)
    for config_hash, config_json in fits.select("config_hash", "config_json").iter_rows():
        fitted = json.loads(config_json).get("runs")
        if fitted is None or wanted & set(fitted):
            return str(config_hash)
    return None
