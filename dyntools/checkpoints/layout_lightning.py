"""Layout 3, PyTorch Lightning: ``version_N/checkpoints/epoch=E-step=S.ckpt`` and
``version_N/metrics.csv`` (CSVLogger), or any folder of ``*.ckpt`` files.

The weights are the ``state_dict`` entry of each checkpoint; the LightningModule attribute that
holds the network (``net.``, ``model.``) is stripped when every tensor name starts with it.
Scalars are the last value of each ``metrics.csv`` column logged during the checkpoint's epoch.
``last.ckpt`` is read only when its step is not already among the other checkpoints. Step and
epoch come from the checkpoint's saved ``global_step`` and ``epoch`` (file names such as
``epoch=02-val_loss=0.63.ckpt`` need not carry the step).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from dyntools.checkpoints.files import read_text
from dyntools.checkpoints.listing import Claim, LayoutReader, Listing
from dyntools.checkpoints.records import CheckpointError, CheckpointRef, Problem
from dyntools.checkpoints.run_builder import (
    assemble_run,
    numbers_in_name,
    problem_for,
    torch_ref,
    with_scalars,
)

NAME = "lightning"
SUFFIX: Final = ".ckpt"
CHECKPOINTS_DIR: Final = "checkpoints"
METRICS_CSV: Final = "metrics.csv"


def common_prefix(names: Sequence[str]) -> str:
    """``net.`` when every name starts with that same first component, else empty."""
    firsts = {name.split(".", 1)[0] for name in names}
    if len(firsts) == 1 and all("." in name for name in names):
        return firsts.pop() + "."
    return ""


def _ckpt_names(folder: Path) -> list[str]:
    try:
        return sorted(p.name for p in folder.iterdir() if p.suffix == SUFFIX and p.is_file())
    except OSError:
        return []


def detect(listing: Listing) -> bool:
    if any(name.endswith(SUFFIX) for name in listing.files):
        return True
    return CHECKPOINTS_DIR in listing.dirs and bool(_ckpt_names(listing.path / CHECKPOINTS_DIR))


def read(listing: Listing, run_id: str) -> Claim:
    problems: list[Problem] = []
    own_ckpts = [name for name in listing.files if name.endswith(SUFFIX)]
    if own_ckpts:
        folder, names = listing.path, own_ckpts
        owned = frozenset(own_ckpts) | {METRICS_CSV}
        # Given the checkpoints/ folder itself: its metrics.csv is one level up.
        metrics = listing.path / METRICS_CSV
        if not metrics.is_file() and listing.path.name == CHECKPOINTS_DIR:
            metrics = listing.path.parent / METRICS_CSV
    else:
        folder, names = listing.path / CHECKPOINTS_DIR, _ckpt_names(listing.path / CHECKPOINTS_DIR)
        owned = frozenset({CHECKPOINTS_DIR, METRICS_CSV})
        metrics = listing.path / METRICS_CSV
    # Aliases (last.ckpt, last-v1.ckpt) after the named checkpoints, so their step is known.
    names = sorted(names, key=lambda n: (n.startswith("last"), n))
    candidates: list[CheckpointRef] = []
    for name in names:
        path = folder / name
        numbers = numbers_in_name(path.stem)
        try:
            ref, _ = torch_ref(
                path,
                step=numbers.step if numbers else None,
                epoch=numbers.epoch if numbers else None,
                prefix_rule=common_prefix,
            )
        except (ValueError, OSError) as error:
            problems.append(problem_for(path, error))
            continue
        if name.startswith("last") and any(c.step == ref.step for c in candidates):
            continue  # the usual alias of the newest checkpoint, not a second checkpoint
        candidates.append(ref)
    rows = _read_metrics(metrics, problems)
    candidates = [with_scalars(ref, _scalars_for(ref, rows)) for ref in candidates]
    run = assemble_run(
        run_id=run_id, path=listing.path, layout=NAME, candidates=candidates, problems=problems
    )
    return Claim(runs=(run,), owned=owned)


def _read_metrics(path: Path, problems: list[Problem]) -> list[dict[str, float]]:
    if not path.exists():
        return []
    rows = []
    try:
        text = read_text(path)
        for row in csv.DictReader(io.StringIO(text, newline="")):
            rows.append({k: float(v) for k, v in row.items() if k and v not in (None, "")})
    except CheckpointError as error:
        problems.append(Problem(path, error.what, "losses are unknown; weights are still read"))
        return []
    except (OSError, ValueError, TypeError, csv.Error) as error:
        problems.append(
            Problem(path, f"cannot be read ({error})", "losses are unknown; weights are still read")
        )
        return []
    return rows


def _scalars_for(ref: CheckpointRef, rows: list[dict[str, float]]) -> dict[str, float]:
    # Lightning logs a row per logging step and per epoch end; the epoch column ties them to
    # the checkpoint written at the end of that epoch. Without an epoch, use the step.
    if ref.epoch is not None:
        mine = [r for r in rows if r.get("epoch") == ref.epoch]
    else:
        mine = [r for r in rows if r.get("step", math.inf) <= ref.step]
    scalars: dict[str, float] = {}
    for row in mine:
        scalars.update({k: v for k, v in row.items() if k not in ("epoch", "step")})
    return scalars


READER = LayoutReader(name=NAME, detect=detect, read=read)
