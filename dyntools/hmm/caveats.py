"""What qualifies a fit's conclusions: the warnings the CLI, the JSON and the app show next to
what they qualify.

A fit is always returned; these say where it may mislead: more free parameters than checkpoints,
the number of states at the edge of the sweep (or the sweep clamped to what the data allow), a
state only one run visits, a convergence regression forced by having no more runs than unknowns,
and (``stability``) a number of states or state labels that resamples of the runs do not
reproduce.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from dyntools.hmm.convergence import ConvergenceAnalysis
from dyntools.hmm.graph import TransitionGraph
from dyntools.hmm.model_selection import SelectionRow
from dyntools.hmm.stability import STABLE_AGREEMENT, STABLE_SHARE, Stability


class CaveatCode(StrEnum):
    CLAMPED = "clamped"  # the sweep was lowered to the states the data allow
    PARAMETERS = "parameters"  # more free parameters than fitted checkpoints
    EDGE = "edge"  # BIC's minimum at the edge of the sweep
    ONE_RUN_STATE = "one-run-state"  # a state only one run visits
    FORCED_REGRESSION = "forced-regression"  # no more converged runs than unknowns
    UNSTABLE = "unstable"  # resamples of the runs choose another n or other labels


@dataclass(frozen=True)
class Caveat:
    code: CaveatCode
    message: str


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 run``, ``2 runs`` (``many`` for irregular plurals)."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"


@dataclass(frozen=True)
class SweepFacts:
    """What the caveats of a sweep need to know about it."""

    rows: Sequence[SelectionRow]
    asked_max_states: int
    feasible: int  # the most states the data allow
    states_needing: int  # checkpoints each state's covariance needs
    covariance_type: str
    chosen: int
    bic_choice: int
    n_rows: int  # fitted checkpoints
    n_features: int
    n_runs: int  # fitted runs


def fit_caveats(
    sweep: SweepFacts, graph: TransitionGraph, convergence: ConvergenceAnalysis | None
) -> tuple[Caveat, ...]:
    """Every caveat of a fit, in the order the report shows them."""
    found: list[Caveat] = []
    largest = len(sweep.rows)
    if sweep.asked_max_states > largest:
        found.append(
            Caveat(
                CaveatCode.CLAMPED,
                f"max_states {sweep.asked_max_states} lowered to {largest}: "
                f"{plural(sweep.n_rows, 'checkpoint')} allow at most {sweep.feasible} states "
                f"of a {sweep.covariance_type} covariance over "
                f"{plural(sweep.n_features, 'feature')} ({sweep.states_needing} checkpoints "
                "each)",
            )
        )
    if largest > 1 and sweep.bic_choice in (1, largest):
        more = (
            "the data allow no more"
            if largest >= sweep.feasible
            else f"raise max_states (the data allow up to {sweep.feasible})"
        )
        where = (
            f"at the largest number of states tried ({largest}): more states might fit better; "
            + more
            if sweep.bic_choice == largest
            else "at a single state: these features show no distinct phases"
        )
        found.append(Caveat(CaveatCode.EDGE, f"BIC's minimum is {where}"))
    chosen = next(row for row in sweep.rows if row.n_states == sweep.chosen)
    if chosen.n_parameters > sweep.n_rows:
        found.append(
            Caveat(
                CaveatCode.PARAMETERS,
                f"the {sweep.chosen}-state model has {chosen.n_parameters} free "
                f"parameters for {plural(sweep.n_rows, 'checkpoint')}: it can fit noise; prefer "
                "fewer states, a simpler covariance, fewer features or more runs",
            )
        )
    if sweep.n_runs > 1:
        for node in graph.nodes:
            if node.runs_visiting == 1:
                found.append(
                    Caveat(
                        CaveatCode.ONE_RUN_STATE,
                        f"state {node.state} is visited by one run only: it may be that run's "
                        "idiosyncrasy rather than a phase of training",
                    )
                )
    if convergence is not None and convergence.r_squared is not None and convergence.forced:
        runs = len(convergence.converged_at)
        found.append(
            Caveat(
                CaveatCode.FORCED_REGRESSION,
                f"only {plural(runs, 'converged run')} for {convergence.regressors + 1} "
                "unknowns: the convergence regression's R^2 is 1 by construction; fit more "
                "runs for a meaningful one",
            )
        )
    return tuple(found)


def stability_caveats(found: Stability, n_states: int) -> tuple[Caveat, ...]:
    """An unstable number of states, unstable labels overall, and unstable states."""
    caveats = []
    share = found.share_choosing(n_states)
    if share < STABLE_SHARE:
        caveats.append(
            Caveat(
                CaveatCode.UNSTABLE,
                f"the number of states is not stable: {n_states} is chosen in {share:.0%} of "
                f"{plural(found.resamples, 'resample')} of the runs "
                f"({chosen_text(found)})",
            )
        )
    agreement = found.mean_agreement
    if agreement < STABLE_AGREEMENT:
        caveats.append(
            Caveat(
                CaveatCode.UNSTABLE,
                f"the state labels are not stable: resamples of the runs agree with them at an "
                f"adjusted Rand index of {agreement:.2f} (1 is the same partition, 0 chance)",
            )
        )
    weak = [s for s, a in enumerate(found.state_agreement) if a < STABLE_AGREEMENT]
    if weak:
        caveats.append(
            Caveat(
                CaveatCode.UNSTABLE,
                f"{'state' if len(weak) == 1 else 'states'} {', '.join(map(str, weak))}: fewer "
                f"than half of {'its' if len(weak) == 1 else 'their'} checkpoints keep their "
                "state in the resamples",
            )
        )
    return tuple(caveats)


def chosen_text(found: Stability) -> str:
    """``5: 10%, 6: 25%, 7: 65%``: how often each number of states was chosen."""
    counts = sorted(set(found.chosen))
    return ", ".join(
        f"{n}: {found.share_choosing(n):.0%}" if n else f"failed: {found.share_choosing(0):.0%}"
        for n in counts
    )
