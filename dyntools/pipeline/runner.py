"""``compute``: discover runs, ask the store what is missing, compute it on the chosen backend
(this process, worker processes or a Ray cluster: ``backends.py``), and write the results in
short transactions from this process only.

A kill at any moment loses at most the batch being written: every batch is one transaction, and
its ``computed`` rows go in with its values, so the next compute resumes where this one stopped.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from itertools import takewhile
from pathlib import Path
from typing import Any, cast

from dyntools.capture import ActivationHookPoint, can_rebuild, list_modules, rebuild_model
from dyntools.checkpoints import CheckpointRef, Probe, Run, discover_runs, probe_digest, read_probe
from dyntools.hookpoints import select_paths
from dyntools.metrics.hsic import resolved_params
from dyntools.metrics.kinds import HookKind, InformationMetric, params_key
from dyntools.metrics.registry import metric
from dyntools.pipeline.activation_job import run_activation_units
from dyntools.pipeline.backends import backend_entry
from dyntools.pipeline.jobs import Backend, Job, JobResult
from dyntools.pipeline.options import ComputeOptions
from dyntools.pipeline.plan import (
    WeightPlan,
    WorkUnit,
    candidates,
    run_frames,
    weight_plan,
    weight_units,
)
from dyntools.pipeline.probes import attach_probes
from dyntools.pipeline.threads import SERIAL_BELOW, single_threaded
from dyntools.pipeline.weight_job import run_weight_units
from dyntools.pipeline.workers import WorkerDiedError
from dyntools.roles import Layer, Part
from dyntools.selection import NetworkSelection
from dyntools.store import Store, locate_db
from dyntools.store.schema import (
    COMPUTED,
    ERRORS,
    HISTOGRAMS,
    METRICS,
    MODULES,
    ErrorRow,
    ModuleRow,
)
from dyntools.text import path_text

# The error code of a file discovery could not read (the checkpoints layer's problems).
UNREADABLE = "unreadable"

# Write at least this often (seconds, or checkpoints), so a kill loses little and the app sees
# progress; each write is one transaction.
WRITE_EVERY_S = 1.0
WRITE_EVERY_JOBS = 16
# Containers whose forward is never called: hooks on them would capture nothing.
CONTAINER_TYPES = ("ModuleList", "ModuleDict", "ParameterList", "ParameterDict")

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class Failure:
    """A checkpoint (or run) whose units could not be computed, and why."""

    file: str
    reason: str


@dataclass(frozen=True)
class ComputeSummary:
    """What a compute did: checkpoints computed, skipped (nothing missing) and failed."""

    folder: str
    db: str
    runs: int
    checkpoints: int
    computed: int
    skipped: int
    failed: tuple[Failure, ...]
    problems: tuple[str, ...]
    values_written: int
    seconds: float
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["schema"] = 1
        return data


# Whether a run's checkpoint may be read now (complete on disk).
Ready = Callable[[Run, CheckpointRef], bool]


@dataclass(frozen=True)
class RebuiltModel:
    """A run's model as the compute sees it: its modules, or why it cannot be rebuilt."""

    modules: tuple[ActivationHookPoint, ...] = ()
    problem: str | None = None

    @property
    def module_types(self) -> dict[str, str] | None:
        """Module path -> class name, for tensor roles (None when not rebuilt)."""
        return {m.path: m.module_type for m in self.modules} if self.modules else None


def rebuilt_model(run: Run, options: ComputeOptions) -> RebuiltModel:
    """The run's model rebuilt from run.json or config.json (or the named factory); a run that
    does not describe its model, or whose description fails, gets the reason instead."""
    if options.factory is None and not can_rebuild(run.config):
        return RebuiltModel(problem=f"run {run.run_id} does not say which model it trained")
    try:
        model = rebuild_model(run.config, factory=options.factory)
    except (ValueError, OSError, RuntimeError, TypeError) as error:
        return RebuiltModel(problem=f"run {run.run_id}: {error}")
    return RebuiltModel(modules=tuple(list_modules(model)))


def activation_paths(model: RebuiltModel, options: ComputeOptions) -> list[str]:
    """The modules of the run's rebuilt model whose outputs are captured."""
    if model.problem is not None:
        raise ValueError(f"{model.problem}: no activation metrics (name a --factory)")
    paths = [m.path for m in model.modules if m.module_type not in CONTAINER_TYPES]
    if options.activation_select:
        return select_paths(paths, list(options.activation_select))
    return paths


def _activation_units(run: Run, options: ComputeOptions, model: RebuiltModel) -> list[WorkUnit]:
    metrics = options.activation_metrics
    if not metrics:
        return []
    if run.probe is None:
        raise ValueError(
            f"run {run.run_id} has no probe batch, so no activation metrics: save one with "
            "CheckpointWriter.save_probe(x, y), or make one with `dyntools probe FOLDER --from "
            "FILE`"
        )
    params = {name: _activation_params(run.probe, name, options) for name in metrics}
    # Activation values are of the probe batch: another probe (`dyntools probe --force`)
    # computes them again.
    probe = probe_digest(run.probe)
    return [
        WorkUnit(HookKind.ACTIVATION, path, name, params[name], probe)
        for path in activation_paths(model, options)
        for name in metrics
    ]


def _activation_params(probe: Path, name: str, options: ComputeOptions) -> str:
    """The stored parameters of an activation metric in this run: an information metric's
    ``auto`` codings become the coding this run's probe tensors get."""
    if not isinstance(metric(name), InformationMetric):
        return options.params_key(name)
    batch = read_probe(probe)
    try:
        return params_key(resolved_params(options.params_of(name), batch.x, batch.y))
    except ValueError as error:
        raise ValueError(f"{probe}: {name}: {error}") from None


def _unmatched_notes(
    unmatched: dict[str, dict[str, str]], runs: int, options: ComputeOptions
) -> list[str]:
    """Notes for patterns some runs lack; a pattern no run has is the user's mistake: raise."""
    if not options.select:
        return []
    nowhere = [p for p in options.select if len(unmatched.get(p, {})) == runs and runs > 0]
    if nowhere:
        first = next(iter(unmatched[nowhere[0]].values()))
        raise ValueError(f"no run has hook point {nowhere[0]!r}: {first}")
    return [
        f"hook point pattern {pattern!r} matches nothing in {len(lacking)} run(s) "
        f"({', '.join(sorted(lacking)[:3])}{', ...' if len(lacking) > 3 else ''}): "
        "they were computed without it"
        for pattern, lacking in unmatched.items()
        if lacking
    ]


@dataclass
class _Planned:
    jobs: list[Job]
    checkpoints: int
    notes: list[str]
    network_selections: dict[str, str]  # run id -> the params of its network-scope rows
    modules: list[ModuleRow]  # every rebuilt model's modules, in network order


def _plan_jobs(
    runs: Iterable[Run], options: ComputeOptions, store: Store, failures: list[Failure]
) -> _Planned:
    jobs: list[Job] = []
    checkpoints = 0
    run_list = list(runs)
    unmatched: dict[str, dict[str, str]] = {}
    selections: dict[str, str] = {}
    modules: list[ModuleRow] = []
    guessed: dict[str, list[str]] = {}
    for run in run_list:
        checkpoints += len(run.checkpoints)
        model = rebuilt_model(run, options)
        modules.extend(
            ModuleRow(run.run_id, m.path, position, m.module_type)
            for position, m in enumerate(model.modules)
        )
        plan, missing_patterns = weight_plan(run, options, model.module_types)
        selections[run.run_id] = plan.network_params
        for pattern, why in missing_patterns.items():
            unmatched.setdefault(pattern, {})[run.run_id] = why
        units_w = weight_units(plan, options)
        try:
            units_a = _activation_units(run, options, model)
        except (ValueError, OSError, RuntimeError) as error:
            failures.append(Failure(str(run.path), str(error)))
            units_a = []
        missing = store.missing_work(candidates(run, units_w + units_a, run.checkpoints))
        if missing.is_empty():
            continue
        if not model.module_types:
            guessed[run.run_id] = _by_rank(plan)
        planned = {unit.key: unit for unit in units_w + units_a}
        by_step: dict[int, set[WorkUnit]] = defaultdict(set)
        for step, *key in missing.select(
            "step", "kind", "hook_point", "metric", "params"
        ).iter_rows():
            by_step[step].add(planned[tuple(key)])
        activation_set = set(units_a)
        for index, ref in enumerate(run.checkpoints):
            todo = by_step.get(ref.step)
            if not todo:
                continue
            jobs.append(
                Job(
                    run=run,
                    ref=ref,
                    plan=plan,
                    weight_units=tuple(sorted(todo - activation_set)),
                    activation_units=tuple(sorted(todo & activation_set)),
                    previous=run.checkpoints[index - 1] if index > 0 else None,
                    initial=run.checkpoints[0],
                )
            )
    notes = _unmatched_notes(unmatched, len(run_list), options) + _guess_notes(guessed)
    return _Planned(jobs, checkpoints, notes, selections, modules)


def _by_rank(plan: WeightPlan) -> list[str]:
    """The tensors the network values take as linear or convolution weights from their rank
    alone: no rebuilt model says what they are, and no name rule does (an embedding saved as
    ``0.weight`` reads as a linear layer)."""
    tensors = plan.tensors
    return [
        name
        for name, role in tensors.roles.items()
        if role.part is Part.WEIGHT
        and role.layer in (Layer.LINEAR, Layer.CONV)
        and tensors.selection.includes(name, role)
    ]


def _guess_notes(guessed: Mapping[str, list[str]]) -> list[str]:
    """One note for the runs whose paper features take tensors by their rank alone."""
    runs = {run_id: names for run_id, names in guessed.items() if names}
    if not runs:
        return []
    run_id, names = next(iter(runs.items()))
    return [
        f"{len(runs)} run(s) ({run_id}{', ...' if len(runs) > 1 else ''}) have no model dyntools "
        f"can rebuild: the paper features take {len(names)} tensor(s) there as linear or "
        f"convolution weights by name and rank alone (e.g. {names[0]}); check them with "
        "`dyntools hookpoints FOLDER --roles` (an embedding reads as a linear layer) and choose "
        "with --paper-tensors or --paper-layers"
    ]


def _ready_prefix(run: Run, ready: Ready) -> Run:
    return dataclasses.replace(
        run, checkpoints=tuple(takewhile(partial(ready, run), run.checkpoints))
    )


def chosen_runs(runs: Sequence[Run], run_ids: Sequence[str]) -> list[Run]:
    """The runs named by ``run_ids`` (every run when none is named), in discovery order."""
    if not run_ids:
        return list(runs)
    known = {run.run_id for run in runs}
    unknown = [run_id for run_id in run_ids if run_id not in known]
    if unknown:
        raise ValueError(
            f"no run {', '.join(map(repr, unknown))} in this folder; its runs: "
            f"{', '.join(sorted(known)) or 'none'}"
        )
    return [run for run in runs if run.run_id in set(run_ids)]


def run_job(job: Job, options: ComputeOptions, probe: Probe | None = None) -> JobResult:
    """Everything missing for one checkpoint (in this process or a worker). ``probe``: the
    run's probe batch when the backend holds it already (else read from the run's file)."""
    # Small checkpoints run on one intra-op thread (restored afterwards): see threads.py.
    largest = max((info.numel for info in job.ref.tensors), default=0)
    with single_threaded(largest < SERIAL_BELOW):
        result = run_weight_units(job, options)
        activations = run_activation_units(job, options, probe)
    result.merge(activations)
    return result


def load_backend(name: str) -> Backend:
    """The backend ``name`` of the registry; one whose package is missing raises, saying how to
    install it."""
    entry = backend_entry(name)
    entry.require(name)
    # The registry names its functions as text (see backends.py); each module checks
    # statically that its function is a Backend.
    return cast(Backend, entry.load())


def _write(store: Store, batch: list[JobResult]) -> int:
    if not batch:
        return 0
    metrics = METRICS.frame(row for r in batch for row in r.metrics)
    store.write_results(
        metrics=metrics,
        histograms=HISTOGRAMS.frame(row for r in batch for row in r.histograms),
        errors=ERRORS.frame(row for r in batch for row in r.errors),
        computed=COMPUTED.frame(row for r in batch for row in r.computed),
    )
    return metrics.height


def compute(
    folder: str | Path,
    options: ComputeOptions | None = None,
    *,
    db: str | Path | None = None,
    progress: ProgressCallback | None = None,
    ready: Ready | None = None,
) -> ComputeSummary:
    """Compute every missing metric of every run below ``folder`` into its DuckDB store.

    ``ready``: which checkpoints may be read now (``dyntools watch`` leaves those still being
    written for a later compute); None: every checkpoint. Nothing in the calling process
    changes: work done here runs with torch's thread count restored after each checkpoint, and
    process-wide settings apply to worker processes only.
    """
    started = time.monotonic()
    options = options or ComputeOptions()
    backend = load_backend(options.backend)  # a missing package says so before any work
    discovery = discover_runs(Path(folder))
    selected = chosen_runs(discovery.runs, options.runs)
    if ready is not None:
        # The ready checkpoints before the first one that is not: a metric against the
        # previous checkpoint must never skip one still being written.
        selected = [_ready_prefix(run, ready) for run in selected]
    notes: list[str] = []
    if db is None:
        location = locate_db(Path(folder))
        db_path = location.path
        if location.note:
            notes.append(location.note)
    else:
        db_path = Path(db)
    store = Store(db_path)
    runs, checkpoints, scalars = run_frames(discovery.runs)
    store.upsert_runs(runs)
    store.upsert_checkpoints(checkpoints)
    gone = store.reconcile(discovery.root, checkpoints)
    if gone:
        notes.append(
            f"{gone} checkpoint(s) computed before are gone from disk: their results are kept "
            "in the database and left out of fits, views and exports"
        )
    problems = discovery.all_problems()
    store.write_results(
        scalars=scalars,
        errors=ERRORS.frame(
            ErrorRow(path_text(p.path), "discover", p.what, UNREADABLE, p.hint) for p in problems
        ),
    )
    failures: list[Failure] = []
    # Runs that carry no probe get their task's, made by `dyntools probe`, if any.
    planned = _plan_jobs(attach_probes(selected, db_path), options, store, failures)
    jobs, total_checkpoints = planned.jobs, planned.checkpoints
    notes.extend(planned.notes)
    store.set_modules(MODULES.frame(planned.modules))
    if not options.select and options.network == NetworkSelection():
        # A default compute's selection is what fits of the paper features use by default.
        store.set_network_selection(planned.network_selections)
    written = 0
    batch: list[JobResult] = []
    last_write = time.monotonic()
    if progress is not None:
        progress(0, len(jobs))
    results = backend(jobs, options, options.workers, run_job)
    finished = 0
    try:
        for job, result in zip(jobs, results, strict=True):
            finished += 1
            if result.failure is not None:
                failures.append(Failure(str(job.ref.path), result.failure))
            batch.append(result)
            if progress is not None:
                progress(finished, len(jobs))
            if len(batch) >= WRITE_EVERY_JOBS or time.monotonic() - last_write >= WRITE_EVERY_S:
                written += _write(store, batch)
                batch, last_write = [], time.monotonic()
    except WorkerDiedError as error:
        # What finished is kept; the rest is left for the next compute, which finds it missing.
        for job in jobs[finished:]:
            failures.append(Failure(str(job.ref.path), str(error)))
    written += _write(store, batch)
    failed_files = {f.file for f in failures}
    return ComputeSummary(
        folder=str(folder),
        db=str(db_path),
        runs=len(discovery.runs),
        checkpoints=total_checkpoints,
        computed=len(jobs) - len([j for j in jobs if str(j.ref.path) in failed_files]),
        skipped=total_checkpoints - len(jobs),
        failed=tuple(failures),
        problems=tuple(p.message() for p in problems),
        values_written=written,
        seconds=round(time.monotonic() - started, 3),
        notes=tuple(notes),
    )
