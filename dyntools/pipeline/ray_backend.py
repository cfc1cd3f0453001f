"""The Ray backend: a compute's jobs as tasks on a Ray cluster.

The compute plans the jobs (only the missing units) and writes their results to the store from
its own process, as with the local backend; here each job is a Ray task that reads its
checkpoint and computes on a worker of the cluster, and its rows come back to the compute.

- The cluster: the one this process is connected to already (a notebook's ``ray.init``), else
  the one at ``options.ray_address`` (``ray.init(address)``: ``host:port``, ``ray://`` or
  ``auto``; disconnected after, the cluster keeps running), else a local one started for the
  compute and shut down after it.
- Workers: ``workers`` tasks at a time (None: one per CPU of the cluster), each reserving
  ``cluster CPUs / workers`` as its ``num_cpus`` (at most a node's CPUs) and computing on that
  many torch threads (at least one). Ray starts workers with ``OMP_NUM_THREADS=1``, so every
  task sets torch's thread count itself.
- A worker lost mid-task (killed, its node gone) is retried ``MAX_RETRIES`` times by Ray, then
  raises ``WorkerDiedError`` as a dead local worker does; a checkpoint that fails to read or
  compute is its job's failure row, as locally.
- Each run's probe batch is read once here and put in the object store; tasks get it from
  there rather than each reading the file.

ray is an optional extra (``pip install 'dyntools[ray]'``): it is imported only when a compute
asks for this backend.
"""

from __future__ import annotations

import math
import os
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dyntools.checkpoints import Probe, read_probe
from dyntools.pipeline.jobs import Job, JobResult, RunJob
from dyntools.pipeline.options import ComputeOptions
from dyntools.pipeline.workers import WorkerDiedError, configure_process

if TYPE_CHECKING:
    from dyntools.pipeline.jobs import Backend

# How often Ray runs a task again whose worker died (application errors are not retried: the
# job returns them as failure rows, and they would fail the same way again).
MAX_RETRIES = 3
INSTALL = "pip install 'dyntools[ray]'"


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as error:
        raise ValueError(f"the ray backend needs ray, which is not installed: {INSTALL}") from (
            error
        )
    return ray


@contextmanager
def process_state_kept() -> Iterator[None]:
    """The process's environment variables and SIGTERM handler as they were before the body:
    ``ray.init`` sets both (PYTHONBREAKPOINT, RAY_AUTH_MODE, a handler that exits) and
    ``ray.shutdown`` leaves them, while a compute changes nothing in its caller's process (the
    app's server, a notebook)."""
    environ = dict(os.environ)
    # Only the main thread can read or set signal handlers; ray.init sets none elsewhere.
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        for name in set(os.environ) - set(environ):
            del os.environ[name]
        os.environ.update(environ)
        if handler is not None:  # None: not set from Python, nothing to put back
            signal.signal(signal.SIGTERM, handler)


@contextmanager
def connected(ray: Any, address: str | None) -> Iterator[None]:
    """This process connected to a Ray cluster for the body: the one it is connected to
    already, or the one at ``address``, or a local one started here (shut down after)."""
    if ray.is_initialized():
        current = ray.get_runtime_context().gcs_address
        if address not in (None, "auto", current):
            raise ValueError(
                f"this process is connected to the Ray cluster at {current} already, not "
                f"{address}: leave out the Ray address, or disconnect first (ray.shutdown())"
            )
        yield  # someone else's connection: left as it is
        return
    with process_state_kept():
        try:
            if address is None:
                # "local": a new instance even when RAY_ADDRESS or `ray start` names another
                # one; the compute owns it. No dashboard: nothing looks at it, and it is slower
                # to start.
                ray.init(address="local", include_dashboard=False)
            else:
                ray.init(address=address)
        except ConnectionError as error:
            why = f"cannot connect to the Ray cluster at {address}: {error}"
            raise ConnectionError(why) from error
        try:
            yield
        finally:
            # Stops a local instance started here; for a cluster, disconnects only.
            ray.shutdown()


@dataclass(frozen=True)
class WorkerShape:
    """How a compute's tasks use the cluster: ``count`` run at once, each reserving ``cpus``
    of the cluster's CPUs (so that Ray runs no more than ``count`` at once) and computing on
    ``threads`` torch threads."""

    count: int
    cpus: float
    threads: int


def worker_shape(ray: Any, workers: int | None, jobs: int) -> WorkerShape:
    """``workers`` tasks (None: one per CPU; never more than the jobs) sharing the connected
    cluster's CPUs, a task never wider than the largest node (or no node could run it)."""
    total = float(ray.cluster_resources().get("CPU", 1.0)) or 1.0
    largest = max(
        (float(node["Resources"].get("CPU", 0.0)) for node in ray.nodes() if node["Alive"]),
        default=1.0,
    )
    count = max(1, min(workers if workers is not None else int(total), jobs))
    # Rounded down to Ray's resolution (1/10000 of a CPU): `count` shares must fit the total.
    share = math.floor(min(largest, total / count) * 10_000) / 10_000
    return WorkerShape(count, share, max(1, int(share)))


def _run_task(
    run: RunJob, job: Job, options: ComputeOptions, threads: int, probe: Probe | None
) -> JobResult:
    """One job on a Ray worker (``probe`` arrives from the object store)."""
    # A Ray worker computes for the pipeline only: the workers' process settings, and torch
    # threads set here because Ray starts workers with OMP_NUM_THREADS=1.
    configure_process(threads)
    return run(job, options, probe)


def _probes(ray: Any, jobs: Sequence[Job]) -> dict[Path, Any]:
    """Each run's probe batch, read once and put in the object store (by probe file). A probe
    that cannot be read is left out: the tasks read the file and fail on it as locally."""
    refs: dict[Path, Any] = {}
    for job in jobs:
        path = job.run.probe
        if not job.activation_units or path is None or path in refs:
            continue
        try:
            refs[path] = ray.put(read_probe(path))
        except (OSError, ValueError):
            refs[path] = None
    return refs


def run_on_ray(
    jobs: Sequence[Job], options: ComputeOptions, workers: int | None, run: RunJob
) -> Iterator[JobResult]:
    """``run(job, options, probe)`` for every job as a task on a Ray cluster, yielded in job
    order, with at most ``workers`` tasks running at once (None: one per CPU)."""
    ray = _import_ray()
    if not jobs:  # nothing missing: no cluster to start
        return
    with connected(ray, options.ray_address):
        shape = worker_shape(ray, workers, len(jobs))
        task = ray.remote(_run_task).options(num_cpus=shape.cpus, max_retries=MAX_RETRIES)
        # Twice as many tasks submitted as run: each worker finds its next job queued at its
        # node when it finishes one, instead of waiting for this process to hear of it and
        # submit the next (small checkpoints take milliseconds). The CPUs each task reserves
        # keep Ray from running more than `shape.count` at once.
        window = 2 * shape.count
        probes = _probes(ray, jobs)
        refs: dict[int, Any] = {}  # job index -> its task's result, until yielded
        running: list[Any] = []  # tasks not seen finished
        submitted = 0
        try:
            for index in range(len(jobs)):
                while True:
                    # Keep the window full while waiting for this job's task.
                    while submitted < len(jobs) and len(running) < window:
                        job = jobs[submitted]
                        probe = None if job.run.probe is None else probes.get(job.run.probe)
                        ref = task.remote(run, job, options, shape.threads, probe)
                        refs[submitted] = ref
                        running.append(ref)
                        submitted += 1
                    if refs[index] not in running:
                        break
                    _, running = ray.wait(running, num_returns=1)
                yield _result(ray, refs.pop(index), jobs[index])
        finally:
            # Stopped early (an error, or the caller stopped reading): nothing left running.
            for ref in running:
                # A worker or node gone already has nothing left to cancel.
                with suppress(ray.exceptions.RayError):
                    ray.cancel(ref)


def _result(ray: Any, ref: Any, job: Job) -> JobResult:
    died = (
        ray.exceptions.WorkerCrashedError,
        ray.exceptions.OutOfMemoryError,
        ray.exceptions.NodeDiedError,
        ray.exceptions.LocalRayletDiedError,
    )
    try:
        result: JobResult = ray.get(ref)
    except died as error:
        raise WorkerDiedError(
            f"a Ray worker died computing {job.ref.path}, and so did the retries "
            f"({type(error).__name__}: most often the system killed it for lack of memory): not "
            "computed; run again with fewer --workers or on nodes with more memory"
        ) from None
    return result


if TYPE_CHECKING:
    _: Backend = run_on_ray  # the registry's shape (checked statically)
