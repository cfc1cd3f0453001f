"""The work of one checkpoint: read it, compute its missing units, return typed store rows.

Jobs run in this process, in worker processes or on a Ray cluster (a ``Backend``); only the
compute's own process writes to the store (DuckDB allows one writer).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from dyntools.checkpoints import CheckpointRef, Probe, Run
from dyntools.metrics.kinds import HookKind
from dyntools.metrics.records import Reason
from dyntools.pipeline.options import ComputeOptions
from dyntools.pipeline.plan import WeightPlan, WorkUnit
from dyntools.store.schema import ComputedRow, ErrorRow, HistogramRow, MetricRow


@dataclass(frozen=True)
class Job:
    """The missing units of one checkpoint.

    ``previous``/``initial``: the run's previous and first checkpoints, for temporal metrics.
    """

    run: Run
    ref: CheckpointRef
    plan: WeightPlan
    weight_units: tuple[WorkUnit, ...]
    activation_units: tuple[WorkUnit, ...] = ()
    previous: CheckpointRef | None = None
    initial: CheckpointRef | None = None


@dataclass
class JobResult:
    """Rows for the store, plus the one-line reason if the whole checkpoint failed."""

    run_id: str
    step: int
    metrics: list[MetricRow] = field(default_factory=list)
    histograms: list[HistogramRow] = field(default_factory=list)
    errors: list[ErrorRow] = field(default_factory=list)
    computed: list[ComputedRow] = field(default_factory=list)
    failure: str | None = None

    def merge(self, other: JobResult) -> None:
        """Add ``other``'s rows (of the same checkpoint); the first failure is kept."""
        self.metrics += other.metrics
        self.histograms += other.histograms
        self.errors += other.errors
        self.computed += other.computed
        self.failure = self.failure or other.failure


# The stage a job's problems are recorded under, by the kind of units it computes.
STAGES: Final = {HookKind.WEIGHT: "weights", HookKind.ACTIVATION: "activations"}


def error_row(
    kind: HookKind, job: Job, what: str, reason: Reason, hook_point: str | None
) -> ErrorRow:
    """A problem a job met computing units of ``kind``, of the units of ``hook_point`` ('' the
    network values; None the whole job: a recompute of those units replaces it)."""
    return ErrorRow(
        str(job.ref.path),
        STAGES[kind],
        what,
        reason.code,
        reason.message,
        job.run.run_id,
        job.ref.step,
        kind=kind,
        hook_point=hook_point,
    )


def done(job: Job, units: tuple[WorkUnit, ...], fingerprint: str) -> list[ComputedRow]:
    """The ``computed`` rows that mark ``units`` of the job's checkpoint as done."""
    return [
        ComputedRow(
            job.run.run_id,
            job.ref.step,
            unit.kind,
            unit.hook_point,
            unit.metric,
            fingerprint,
            unit.params,
            unit.inputs,
        )
        for unit in units
    ]


class RunJob(Protocol):
    """Computes one job. ``probe``: the run's probe batch when the backend already holds it
    (the Ray backend reads it once per run into its object store); None reads the run's
    probe file."""

    def __call__(
        self, job: Job, options: ComputeOptions, probe: Probe | None = None, /
    ) -> JobResult: ...


class Backend(Protocol):
    """Where jobs run (``dyntools.pipeline.backends``): ``run(job, options)`` for every job,
    results yielded in job order. ``workers``: how many run at once (None: the backend
    decides). A worker that dies raises ``WorkerDiedError``."""

    def __call__(
        self, jobs: Sequence[Job], options: ComputeOptions, workers: int | None, run: RunJob, /
    ) -> Iterator[JobResult]: ...
