"""Layout 5, a bare folder of ``*.safetensors`` files whose names carry a step or epoch number
(``step_200.safetensors``, ``model-epoch3.safetensors``). Scalars come from the header metadata
when a writer put numbers there. Shard names (``model-00001-of-00002``) are not checkpoints.
"""

from __future__ import annotations

from dyntools.checkpoints.listing import Claim, LayoutReader, Listing
from dyntools.checkpoints.records import CheckpointRef, Problem
from dyntools.checkpoints.run_builder import (
    SHARD_RE,
    assemble_run,
    numbers_in_name,
    problem_for,
    safetensors_ref,
)
from dyntools.checkpoints.run_metadata import parse_scalars
from dyntools.checkpoints.safetensors_header import read_header

NAME = "safetensors"
SUFFIX = ".safetensors"


def _numbered(listing: Listing) -> list[str]:
    names = []
    for name in listing.files:
        stem = name.removesuffix(SUFFIX)
        if name.endswith(SUFFIX) and not SHARD_RE.search(stem) and numbers_in_name(stem):
            names.append(name)
    return names


def detect(listing: Listing) -> bool:
    return bool(_numbered(listing))


def read(listing: Listing, run_id: str) -> Claim:
    problems: list[Problem] = []
    candidates: list[CheckpointRef] = []
    names = _numbered(listing)
    for name in names:
        path = listing.path / name
        numbers = numbers_in_name(name.removesuffix(SUFFIX))
        if numbers is None:  # pragma: no cover - _numbered keeps only numbered names
            continue
        try:
            header = read_header(path)
        except (ValueError, OSError) as error:
            problems.append(problem_for(path, error))
            continue
        candidates.append(
            safetensors_ref(
                [path],
                step=numbers.step,
                epoch=numbers.epoch,
                scalars=parse_scalars(header.metadata),
                headers=[header],
            )
        )
    run = assemble_run(
        run_id=run_id, path=listing.path, layout=NAME, candidates=candidates, problems=problems
    )
    return Claim(runs=(run,), owned=frozenset(names))


READER = LayoutReader(name=NAME, detect=detect, read=read)
