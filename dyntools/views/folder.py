"""Tables of runs and their training scalars, as polars frames for the app and the CLI.

Works from run records read by ``dyntools.checkpoints``; knows no file format itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import polars as pl

from dyntools.checkpoints import Run

SCALARS_SCHEMA = {
    "run_id": pl.Utf8,
    "task": pl.Utf8,
    "epoch": pl.Float64,
    "step": pl.Int64,
    "name": pl.Utf8,
    "value": pl.Float64,
}


def main_task(tasks: Mapping[str, str], chosen: Sequence[str] = ()) -> str | None:
    """The task the pages start from (``tasks``: run id -> task): the task of most of the
    ``chosen`` runs, else the task with the most runs; ties go to the first name."""
    counts = Counter(tasks[run] for run in chosen if run in tasks) or Counter(tasks.values())
    if not counts:
        return None
    return min(counts, key=lambda task: (-counts[task], task))


def runs_of_task(tasks: Mapping[str, str], task: str | None) -> list[str]:
    """The runs of ``task``, sorted."""
    return sorted(run for run, of in tasks.items() if of == task)


def runs_table(runs: Sequence[Run]) -> pl.DataFrame:
    """One row per run: id, layout, task, model, seed, checkpoints, steps, final accuracies."""
    rows = []
    for run in runs:
        last = run.checkpoints[-1] if run.checkpoints else None
        model = run.config.get("model")
        seed = run.config.get("seed")
        rows.append(
            {
                "run_id": run.run_id,
                "layout": run.layout,
                "task": run.task,
                "model": str(model.get("name", "")) if isinstance(model, dict) else "",
                "seed": seed if isinstance(seed, int) else None,
                "checkpoints": len(run.checkpoints),
                "first_step": run.first_step,
                "last_step": run.last_step,
                "last_epoch": last.epoch if last else None,
                "final_train_acc": last.scalars.get("train_acc") if last else None,
                "final_val_acc": last.scalars.get("val_acc") if last else None,
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "run_id": pl.Utf8,
            "layout": pl.Utf8,
            "task": pl.Utf8,
            "model": pl.Utf8,
            "seed": pl.Int64,
            "checkpoints": pl.Int64,
            "first_step": pl.Int64,
            "last_step": pl.Int64,
            "last_epoch": pl.Float64,
            "final_train_acc": pl.Float64,
            "final_val_acc": pl.Float64,
        },
    )


def scalars_table(runs: Sequence[Run]) -> pl.DataFrame:
    """Training scalars in tidy form: one row per (run, checkpoint, scalar name)."""
    rows = [
        {
            "run_id": run.run_id,
            "task": run.task,
            "epoch": checkpoint.epoch,
            "step": checkpoint.step,
            "name": name,
            "value": value,
        }
        for run in runs
        for checkpoint in run.checkpoints
        for name, value in checkpoint.scalars.items()
    ]
    return pl.DataFrame(rows, schema=SCALARS_SCHEMA)
