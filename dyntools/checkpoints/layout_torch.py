"""Layout 4, plain ``torch.save`` state dicts: ``*.pt``, ``*.pth``, ``*.bin`` whose names carry a
step or epoch number (``model_epoch_3.pt``, ``ckpt-1200.pth``).

A file may hold the state dict itself or a dict with it under ``state_dict``,
``model_state_dict``, ``model``, ``module`` or ``net``; numbers saved beside it (``loss``,
``val_acc``...) become the checkpoint's scalars. The ``module.`` prefix of DataParallel and the
``_orig_mod.`` prefix of ``torch.compile`` are stripped. Files are loaded with
``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Final

from dyntools.checkpoints.listing import Claim, LayoutReader, Listing
from dyntools.checkpoints.records import CheckpointRef, Problem
from dyntools.checkpoints.run_builder import (
    assemble_run,
    numbers_in_name,
    problem_for,
    torch_ref,
)

NAME = "torch"
SUFFIXES: Final = (".pt", ".pth", ".bin")
WRAPPER_PREFIXES: Final = ("module.", "_orig_mod.")
NOT_SCALARS: Final = frozenset({"epoch", "step", "global_step"})


def wrapper_prefix(names: Sequence[str]) -> str:
    """``module.`` / ``_orig_mod.`` when every name starts with it (wrapped models)."""
    for prefix in WRAPPER_PREFIXES:
        if names and all(name.startswith(prefix) for name in names):
            return prefix
    return ""


def _numbered(listing: Listing) -> list[str]:
    return [
        name
        for name in listing.files
        if name.endswith(SUFFIXES) and numbers_in_name(name.rsplit(".", 1)[0]) is not None
    ]


def detect(listing: Listing) -> bool:
    return bool(_numbered(listing))


def read(listing: Listing, run_id: str) -> Claim:
    problems: list[Problem] = []
    candidates: list[CheckpointRef] = []
    names = _numbered(listing)
    for name in names:
        path = listing.path / name
        numbers = numbers_in_name(name.rsplit(".", 1)[0])
        if numbers is None:  # pragma: no cover - _numbered keeps only numbered names
            continue
        try:
            ref, saved = torch_ref(
                path,
                step=numbers.step,
                epoch=numbers.epoch,
                prefix_rule=wrapper_prefix,
            )
        except (ValueError, OSError) as error:
            problems.append(problem_for(path, error))
            continue
        scalars = {k: v for k, v in saved.items() if k not in NOT_SCALARS}
        candidates.append(replace(ref, scalars=scalars))
    run = assemble_run(
        run_id=run_id, path=listing.path, layout=NAME, candidates=candidates, problems=problems
    )
    return Claim(runs=(run,), owned=frozenset(names))


READER = LayoutReader(name=NAME, detect=detect, read=read)
