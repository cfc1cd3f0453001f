"""The work of one checkpoint: read it, compute its missing units, return typed store rows.

Jobs run in this process or in worker processes; only the parent process writes to the store
(DuckDB allows one writer).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dyntools.checkpoints import CheckpointRef, Run
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
        )
        for unit in units
    ]
