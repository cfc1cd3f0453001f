"""Regenerate ``sample_runs/`` deterministically: ``python scripts/make_sample_runs.py --out DIR``.

Three seeds each of modular-addition (small preset), sparse-parity and digits-cnn, and one
digits-resnet run, then ``SUMMARY.md`` with the grokking epochs of the modular-addition runs.
Checkpoint schedules and sizes are chosen so the folder stays well under 40 MB.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from dyntools.train import get_task, train
from dyntools.train.summary import grokking_row, grokking_table

SEEDS = (0, 1, 2)

# (task, seeds, overrides): the overrides only trim checkpoint counts and sizes for git.
PLAN: tuple[tuple[str, tuple[int, ...], dict[str, Any]], ...] = (
    ("modular-addition", SEEDS, {}),
    ("sparse-parity", SEEDS, {"checkpoints": "every 25"}),
    ("digits-cnn", SEEDS, {"checkpoints": "every 4"}),
    ("digits-resnet", (0,), {"widths": [8, 16, 32], "checkpoints": "every 2"}),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("sample_runs"))
    parser.add_argument("--only", help="regenerate one task only")
    args = parser.parse_args(argv)
    out: Path = args.out
    for task_name, seeds, overrides in PLAN:
        if args.only and task_name != args.only:
            continue
        task = get_task(task_name)
        if (out / task_name).exists():
            shutil.rmtree(out / task_name)
        for seed in seeds:
            start = time.monotonic()
            result = train(task, out / task_name / f"seed{seed}", seed=seed, overrides=overrides)
            last = result.records[-1]
            print(
                f"{task_name} seed {seed}: {len(result.records)} checkpoints, "
                f"{time.monotonic() - start:.1f}s, final train_acc {last.train_acc:.3f} "
                f"val_acc {last.val_acc:.3f}",
                file=sys.stderr,
                flush=True,
            )
    write_summary(out)
    return 0


def write_summary(out: Path) -> None:
    folder = out / "modular-addition"
    runs = sorted(folder.glob("seed*"), key=lambda p: int(p.name[4:]))
    if not runs:
        return  # only other tasks were made
    rows = [grokking_row(run, f"modular-addition/{run.name}") for run in runs]
    text = (
        "# Sample runs\n\n"
        "Made by `make sample-runs` (`scripts/make_sample_runs.py`). Grokking in the "
        "modular-addition runs (small preset), read from the checkpoints' metadata:\n\n"
        + grokking_table(rows)
        + "\n"
    )
    (out / "SUMMARY.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    sys.exit(main())
