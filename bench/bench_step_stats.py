"""Per-step activation statistics (``dyntools.hooks.ActivationStats``): what recording adds to
a training step of each sample task, on the CPU. Goal: < 5% of the step time at ``every=1``.

Each task trains with its default preset's model, batch and optimizer, one thread (as
``dyntools train`` does). Rounds alternate a stretch of plain steps and the same number of steps
with ActivationStats on its default modules (construction and ``close()``, which finishes and
writes what is left, counted in); the best round of each is compared. The peer column is the
plain step: the ratio is plain / recorded (0.95 = 5% slower). Rows per task: the default (on
the CPU: computed in the training thread), ``every=10``, and ``background=True``, whose note
also gives the training thread's own CPU time (what the wall time would be if the thread ran
on a free core without contention).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from bench.report import Row
from dyntools.hooks import ActivationStats
from dyntools.models import build_model
from dyntools.train import TASKS, get_task
from dyntools.train.loop import deterministic
from dyntools.train.objectives import OBJECTIVES, make_optimizer

SECONDS_PER_STRETCH = 1.0
ROUNDS = 5


def _task_rows(name: str, root: Path) -> list[Row]:
    task = get_task(name)
    hyper = task.hyperparameters(task.default_preset, {})
    with deterministic(0):
        data = task.build_data(hyper, 0)
        model = build_model(task.model_spec(hyper, data))
        optimizer = make_optimizer(model.parameters(), hyper)
        objective = OBJECTIVES[task.loss]
        n_train = int(data.x_train.shape[0])
        batch = int(hyper["batch_size"] or n_train)
        order = torch.randperm(n_train)
        batches = [order[i : i + batch] for i in range(0, n_train - batch + 1, batch)]
        model.train()

        def steps(count: int) -> None:
            for i in range(count):
                index = batches[i % len(batches)]
                loss = objective.loss(model(data.x_train[index]), data.y_train[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()

        steps(5)  # first steps allocate
        start = time.perf_counter()
        steps(5)
        count = max(10, round(SECONDS_PER_STRETCH / ((time.perf_counter() - start) / 5)))
        kinds = {  # name: (background, every)
            "plain": None,
            "default": (False, 1),  # on the CPU the default is background=False
            "every=10": (False, 10),
            "background thread": (True, 1),
        }
        # Per kind and round: wall, process CPU (every thread) and this thread's CPU per step.
        timings: dict[str, list[tuple[float, float, float]]] = {kind: [] for kind in kinds}
        modules: tuple[str, ...] = ()
        for round_ in range(ROUNDS):
            for kind, setting in kinds.items():
                clocks = time.perf_counter(), time.process_time(), time.thread_time()
                if setting is None:
                    steps(count)
                else:
                    background, every = setting
                    folder = root / f"{name}-{round_}-{kind}"
                    with ActivationStats(
                        model, folder, every=every, background=background
                    ) as stats:
                        steps(count)
                    modules = stats.modules
                now = time.perf_counter(), time.process_time(), time.thread_time()
                timings[kind].append(
                    tuple((b - a) / count for a, b in zip(clocks, now, strict=True))
                )  # type: ignore[arg-type]
    best = {
        kind: [min(column) for column in zip(*rounds, strict=True)]
        for kind, rounds in timings.items()
    }
    base = best["plain"]
    shown = ", ".join(modules[:3]) + (", ..." if len(modules) > 3 else "")
    rows = []
    for kind in ("default", "every=10", "background thread"):
        wall, cpu, own = best[kind]
        extra = (
            f"; training thread's CPU +{100 * (own / base[2] - 1):.1f}%"
            if kind == "background thread"
            else ""
        )
        rows.append(
            Row(
                f"step + ActivationStats ({kind}), {name}",
                wall,
                base[0],
                goal="< 5% slower" if kind == "default" else "",
                note=f"wall +{100 * (wall / base[0] - 1):.1f}%, CPU +{100 * (cpu / base[1] - 1):.1f}%"
                f"{extra}; {len(modules)} modules ({shown}), batch {batch}, {count} steps x {ROUNDS}",
            )
        )
    return rows


def run() -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        return [row for name in TASKS for row in _task_rows(name, Path(tmp))]
