"""The local backend: jobs run in this process, or in worker processes set up for large
checkpoints (the registry of backends: ``backends.py``).

Worker processes are the pipeline's own, so they get the process-wide settings bounded memory
needs (``allocator``); work done in the caller's process changes nothing there that outlives a
job (torch's thread count is restored after each checkpoint).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, TypeVar

import torch

from dyntools.pipeline.allocator import return_large_frees
from dyntools.processes import die_with_parent

if TYPE_CHECKING:
    from dyntools.pipeline.jobs import Backend

J = TypeVar("J")
R = TypeVar("R")
Opts = TypeVar("Opts")


def configure_process(threads: int | None = None) -> None:
    """Settings of a process that computes for the pipeline and for nothing else: a fixed
    glibc mmap threshold (bounded memory on large checkpoints) and, when given, torch's
    intra-op thread count. Worker processes and the ``dyntools compute`` command call it."""
    return_large_frees()
    if threads is not None:
        torch.set_num_threads(threads)


def _worker_setup(threads: int, parent: int) -> None:
    die_with_parent(parent)
    configure_process(threads)


class WorkerDiedError(RuntimeError):
    """A worker process ended without a result (the system killed it: out of memory)."""


def auto_workers(jobs: int) -> int:
    """Processes pay a start-up cost (importing torch), so use them only for enough work."""
    cores = os.cpu_count() or 1
    return cores if jobs >= 32 * cores else 1


def run_local(
    jobs: Sequence[J], options: Opts, workers: int | None, run: Callable[[J, Opts], R]
) -> Iterator[R]:
    """The local backend: ``run_jobs`` with ``workers`` (None: decided from the amount of
    work)."""
    return run_jobs(jobs, options, auto_workers(len(jobs)) if workers is None else workers, run)


def run_jobs(
    jobs: Sequence[J], options: Opts, workers: int, run: Callable[[J, Opts], R]
) -> Iterator[R]:
    """``run(job, options)`` for every job, in order: here when ``workers`` is 1 (or there is
    one job), else in that many worker processes."""
    if workers <= 1 or len(jobs) < 2:
        for job in jobs:
            yield run(job, options)
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    # spawn, not fork: forking a process that already runs torch's thread pools can deadlock.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_worker_setup, initargs=(threads, os.getpid())
    ) as pool:
        try:
            yield from pool.map(run, jobs, [options] * len(jobs), chunksize=1)
        except BrokenProcessPool:
            raise WorkerDiedError(
                "a worker process died before finishing (the system killed it, most often for "
                "lack of memory): not computed; run again with fewer --workers (1 computes in "
                "one process) or on a machine with more memory"
            ) from None


if TYPE_CHECKING:
    _: Backend = run_local  # the registry's shape (checked statically)
