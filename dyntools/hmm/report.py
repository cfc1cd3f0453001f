"""The text report of a fit, as ``dyntools fit`` prints it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from dyntools.hmm.analysis import FitResult
from dyntools.hmm.attribution import Driver
from dyntools.hmm.caveats import chosen_text, plural
from dyntools.hmm.convergence import ConvergenceAnalysis
from dyntools.hmm.graph import StateNode
from dyntools.text import printable

_MAX_SEGMENTS = 40  # segments of a run's state path shown before eliding


def selection_text(described: Mapping[str, Any] | None) -> str:
    """The tensors a fit's paper features were computed over, in words (``described``: a
    ``NetworkSelection.describe()``, None when the runs were computed with different ones)."""
    if described is None:
        return "each run's own tensor selection (the runs were computed with different ones)"
    preset = described.get("preset", "paper")
    parts = [f"preset {preset}"]
    if described.get("tensors"):
        parts.append("tensors " + ", ".join(map(printable, described["tensors"])))
    if described.get("layers"):
        parts.append("layers " + ", ".join(described["layers"]))
    return "the tensors of " + "; ".join(parts)


def format_fit_report(result: FitResult, *, top: int = 3) -> str:
    """Warnings, notices, selection table, chosen n, state paths, states, edges, convergence."""
    cfg = result.config
    lines = [
        f"HMM fit {result.config_hash[:12]}: {plural(len(result.run_ids), 'run')}, "
        f"{plural(sum(result.lengths), 'checkpoint')}, {plural(len(result.columns), 'feature')}, "
        f"covariance {cfg.covariance_type}, {cfg.normalize} z-score, "
        f"{plural(cfg.restarts, 'restart')} (seed {cfg.seed}), {result.seconds:.1f} s",
    ]
    if cfg.paper_features:
        described = None if cfg.network_selection is None else cfg.network_selection.describe()
        lines.append(f"paper features over {selection_text(described)}")
    lines += [f"warning: {c.message}" for c in result.caveats]
    lines += [f"note: {n.message}" for n in result.notices]
    held = "" if result.fitted is None else f"; {int((~result.fitted).sum())} checkpoints held out"
    lines += ["", f"model selection (log-likelihood on the fitted checkpoints{held}):"]
    heldout = any(r.heldout_log_likelihood is not None for r in result.selection)
    header = f"  {'n':>2} {'best LL':>12} {'mean LL':>12} {'std':>8} {'AIC':>12} {'BIC':>12}"
    header += f" {'conv':>5} {'fail':>4}" + (f" {'held-out LL/step':>17}" if heldout else "")
    lines.append(header)
    for row in result.selection:
        mark = " <- lowest BIC" if row.n_states == result.bic_choice else ""
        if row.failed == row.restarts:
            mark += f" (every restart failed: {row.failure})"
        line = (
            f"  {row.n_states:>2} {row.best_log_likelihood:>12.1f} {row.mean_log_likelihood:>12.1f}"
            f" {row.std_log_likelihood:>8.1f} {row.aic:>12.1f} {row.bic:>12.1f}"
            f" {row.converged:>2}/{row.restarts - row.failed:<2} {row.failed:>4}"
        )
        if heldout:
            value = row.heldout_log_likelihood
            line += f" {value:>17.3f}" if value is not None else f" {'':>17}"
        lines.append(line + mark)
    chosen = f"chosen: {result.n_states} states"
    if result.config.n_states is not None:
        chosen += f" (asked for; the lowest BIC is at {result.bic_choice})"
    elif result.config.criterion == "heldout":
        chosen += f" (highest held-out log-likelihood; the lowest BIC is at {result.bic_choice})"
    else:
        chosen += " (lowest BIC)"
    lines += [
        "",
        chosen,
        *_stability_lines(result),
        "",
        "state paths (state x consecutive checkpoints):",
    ]
    width = max(len(printable(r)) for r in result.run_ids)
    for run, path in result.paths().items():
        lines.append(f"  {printable(run):<{width}} {_run_lengths(path)}")
    unit = result.axis.value
    lines += ["", f"states (times in {unit}s):"]
    for node in result.graph.nodes:
        scalars = ", ".join(f"{k} {v:.3g}" for k, v in node.scalar_means.items())
        name = result.state_name(node.state)
        start = f", initial in {plural(node.initial_runs, 'run')}" if node.initial else ""
        lines.append(
            f"  {_symbol(node.state)}{f' ({name})' if name else ''}: "
            f"{node.occupancy:6.1%} of checkpoints, "
            f"{plural(node.runs_visiting, 'run')}, {unit}s "
            f"{_num(node.first_time)}-{_num(node.last_time)}"
            f" (~{node.spent_per_run:.3g} {unit}s per run)"
            f"{start}" + (f"; {scalars}" if scalars else "")
        )
    lines += [
        "",
        "transitions (count, probability; top features by mean change, and by switch gradient ±spread):",
    ]
    for edge in result.graph.edges:
        lines.append(
            f"  {_symbol(edge.source)} -> {_symbol(edge.target)}: {plural(edge.count, 'time')}, "
            f"p={edge.probability:.3f}"
        )
        lines.append("      mean change: " + _features(edge.top_mean_difference[:top]))
        lines.append("      gradient:    " + _features(edge.top_gradient[:top]))
    lines += ["", *_convergence_lines(result)]
    return "\n".join(lines)


def _convergence_lines(result: FitResult) -> list[str]:
    conv = result.convergence
    if conv is None:
        return ["convergence: no val_acc logged, nothing to analyse"]
    lines = [f"convergence (first checkpoint with val_acc >= {conv.threshold:g}):"]
    unit = result.axis.value
    for run, when in conv.converged_at.items():
        counts = " ".join(f"{_symbol(s)}:{c}" for s, c in enumerate(conv.visit_counts[run]) if c)
        lines.append(f"  {printable(run)}: {unit} {_num(when)}; visits: {counts}")
    if conv.not_converged:
        lines.append(f"  never converged: {printable(', '.join(conv.not_converged))}")
    if conv.r_squared is None:
        lines.append(f"  regression: needs at least 2 converged runs with different {unit}s")
    else:
        coefficients = ", ".join(
            f"{_symbol(s)} {c:+.3g}" for s, c in enumerate(conv.coefficients) if np.isfinite(c)
        )
        lines.append(
            f"  R^2 of the convergence {unit} on visit counts: {r_squared_text(conv)} "
            f"({unit}s per visit: {coefficients})"
        )
    for detour in conv.detours:
        where = (
            f"visited by {plural(detour.runs_visiting, 'run')}, converging at {unit} "
            f"{detour.mean_visiting:.1f} on average; the others at {detour.mean_not_visiting:.1f}"
        )
        if detour.supported:
            verdict = f"detour state {_symbol(detour.state)} (p = {_p(detour.p_value)})"
        elif detour.p_value is None and detour.runs_visiting < 2:
            verdict = f"state {_symbol(detour.state)} (one run: not enough runs to tell)"
        elif detour.p_value is None:  # a fit stored before detours were tested
            verdict = f"state {_symbol(detour.state)} (not tested: refit to test it)"
        else:
            verdict = (
                f"state {_symbol(detour.state)} (not a detour by this data: p = "
                f"{_p(detour.p_value)}; not enough runs to tell)"
            )
        lines.append(f"  {verdict}: {where}")
    if not conv.detours:
        lines.append("  no detour state")
    return lines


# Training scalars that say what a state is, in the order a summary names them.
DESCRIBING = (
    ("train_acc", "train acc"),
    ("val_acc", "val acc"),
    ("train_loss", "train loss"),
    ("val_loss", "val loss"),
)


def state_description(node: StateNode) -> str:
    """What the runs were doing in a state, from the accuracies and losses they logged:
    ``train acc 1.00, val acc 0.29, val loss 10.2`` ('' when none was logged)."""
    return ", ".join(
        f"{words} {node.scalar_means[name]:.3g}"
        for name, words in DESCRIBING
        if name in node.scalar_means and math.isfinite(node.scalar_means[name])
    )


def _stability_lines(result: FitResult) -> list[str]:
    found = result.stability
    if found is None:
        return ["stability: not checked (dyntools fit --stability N)"]
    per_state = ", ".join(f"{_symbol(s)} {a:.2f}" for s, a in enumerate(found.state_agreement))
    return [
        f"stability ({plural(found.resamples, 'resample')} of the runs): "
        f"{result.n_states} states chosen in {found.share_choosing(result.n_states):.0%} "
        f"({chosen_text(found)}); labels agree at ARI {found.mean_agreement:.2f}; "
        f"per state: {per_state}"
    ]


def r_squared_text(analysis: ConvergenceAnalysis) -> str:
    """The regression's R^2 in words: ``0.812 (adjusted 0.700, permutation p = 0.012)``."""
    if analysis.r_squared is None:
        return "n/a (fewer than 2 converged runs with different times)"
    adjusted = (
        "n/a" if analysis.adjusted_r_squared is None else f"{analysis.adjusted_r_squared:.3f}"
    )
    return f"{analysis.r_squared:.3f} (adjusted {adjusted}, permutation p = {_p(analysis.p_value)})"


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _symbol(state: int) -> str:
    """0-9 then a-z then A-Z, so that a path prints one character per checkpoint."""
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return alphabet[state] if state < len(alphabet) else f"<{state}>"


def _num(value: float) -> str:
    if not math.isfinite(value):
        return "?"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"


def _features(ranked: tuple[Driver, ...]) -> str:
    return ", ".join(driver.text() for driver in ranked) or "-"


def _run_lengths(path: np.ndarray) -> str:
    """``0x55 1x84 2x61``: each state with the number of consecutive checkpoints in it."""
    if path.size == 0:
        return "(empty)"
    cuts = np.flatnonzero(np.diff(path)) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [path.size]])
    parts = [f"{_symbol(int(path[a]))}x{b - a}" for a, b in zip(starts, ends, strict=True)]
    if len(parts) > _MAX_SEGMENTS:
        parts = [*parts[:_MAX_SEGMENTS], f"... ({len(parts)} segments)"]
    return " ".join(parts)
