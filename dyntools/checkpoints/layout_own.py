"""Layout 1, dyntools' own: ``run.json`` + ``epoch_NNNNN.safetensors`` (or ``step_NNNNNNN``).

Step, epoch and scalars come from each file's safetensors header metadata.
"""

from __future__ import annotations

from typing import Any

from dyntools.checkpoints.format import (
    EPOCH_FILE_RE,
    META_EPOCH,
    META_STEP,
    PROBE_FILE,
    RUN_JSON,
    STEP_FILE_RE,
)
from dyntools.checkpoints.listing import Claim, LayoutReader, Listing
from dyntools.checkpoints.records import CheckpointError, CheckpointRef, Problem
from dyntools.checkpoints.run_builder import assemble_run, problem_for, safetensors_ref
from dyntools.checkpoints.run_metadata import int_or_none, parse_scalars, read_run_json
from dyntools.checkpoints.safetensors_header import read_header

NAME = "dyntools"


def detect(listing: Listing) -> bool:
    return RUN_JSON in listing.files


def read(listing: Listing, run_id: str) -> Claim:
    problems: list[Problem] = []
    config: dict[str, Any] = {}
    try:
        config = read_run_json(listing.path)
    except CheckpointError as error:
        problems.append(
            Problem(error.path, error.what, f"{error.hint}; the checkpoints are still listed")
        )
    except OSError as error:
        problems.append(problem_for(listing.path / RUN_JSON, error))
    owned = {RUN_JSON, PROBE_FILE}
    candidates: list[CheckpointRef] = []
    for name in listing.files:
        match = EPOCH_FILE_RE.match(name) or STEP_FILE_RE.match(name)
        if not match:
            continue
        owned.add(name)
        path = listing.path / name
        try:
            header = read_header(path)
        except (ValueError, OSError) as error:
            problems.append(problem_for(path, error))
            continue
        number = int(match.group(1))
        bad = [
            f"{key} {header.metadata[key]!r}"
            for key in (META_STEP, META_EPOCH)
            if key in header.metadata and int_or_none(header.metadata[key]) is None
        ]
        if bad:
            problems.append(
                Problem(
                    path,
                    f"its metadata {' and '.join(bad)} is not a number a checkpoint can have "
                    "(0 to 2^63 - 1): not read",
                    "save that checkpoint again",
                )
            )
            continue
        epoch = int_or_none(header.metadata.get(META_EPOCH))
        if epoch is None and name.startswith("epoch_"):
            epoch = number
        step = int_or_none(header.metadata.get(META_STEP))
        step = step if step is not None else (epoch if epoch is not None else number)
        candidates.append(
            safetensors_ref(
                [path],
                step=step,
                epoch=epoch,
                scalars=parse_scalars(header.metadata),
                headers=[header],
            )
        )
    probe = listing.path / PROBE_FILE
    run = assemble_run(
        run_id=run_id,
        path=listing.path,
        layout=NAME,
        candidates=candidates,
        problems=problems,
        config=config,
        probe=probe if PROBE_FILE in listing.files else None,
    )
    return Claim(runs=(run,), owned=frozenset(owned))


# CheckpointWriter writes a temporary file and renames it.
READER = LayoutReader(name=NAME, detect=detect, read=read, atomic=True)
