"""Layout 6, the Hugging Face hub cache: a ``models--ORG--NAME/`` folder as huggingface_hub
writes it (under ``~/.cache/huggingface/hub``, or ``$HF_HUB_CACHE``, or ``$HF_HOME/hub``)::

    models--EleutherAI--pythia-160m/
        refs/main, refs/step1000, ...   each a file holding the commit a branch points at
        snapshots/<commit>/             the files of one revision, links into blobs/
        blobs/<sha256>

The repository is a run, its id ``ORG/NAME``; each snapshot is a checkpoint whose step comes
from the names of the branches pointing at it, read by the first rule of ``BRANCH_RULES`` that
matches. A snapshot only ``main`` (or no branch at all: downloaded by commit hash) points at has
no known step: a problem line names it; no step is ever guessed. A snapshot is read as a Trainer
checkpoint folder is (``model.safetensors``, shards with their index, or ``pytorch_model.bin``).
Links are followed only into the repository's own folder.

Seeds of one model (``pythia-160m``, ``pythia-160m-seed1``, ...) get one task, ``ORG/NAME``
without the ``-seedN``, so that a fit over the seeds is one choice of runs. A repository whose
branches name several training stages (OLMo's ``stage1-...``, ``stage2-...``, which count steps
afresh) holds one run per stage, ``ORG/NAME@stage2``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from dyntools.checkpoints.files import read_bytes, read_json
from dyntools.checkpoints.layout_hf import CONFIG_JSON, model_checkpoint, weights_path
from dyntools.checkpoints.listing import Claim, LayoutReader, Listing
from dyntools.checkpoints.records import CheckpointError, CheckpointRef, Problem, Run
from dyntools.checkpoints.run_builder import assemble_run, problem_for, with_scalars

NAME = "hf-hub-cache"
REPO_DIR_RE: Final = re.compile(r"^models--(?P<repo>.+)$")
REPO_SEPARATOR: Final = "--"  # how the cache spells the / of ORG/NAME
COMMIT_RE: Final = re.compile(r"^[0-9a-f]{40}$")
SEED_RE: Final = re.compile(r"^(?P<model>.+)-seed(?P<seed>\d+)$")
REF_LIMIT: Final = 1024  # bytes: a ref file holds one commit hash
# huggingface_hub writes a ref through ``<branch>.<8 hex>.tmp`` and a rename: one left behind by
# a killed download names no branch.
PARTIAL_REF_RE: Final = re.compile(r"\.[0-9a-f]{8}\.tmp$")
TOKEN_UNITS: Final = {"M": 1e6, "B": 1e9}


@dataclass(frozen=True)
class BranchStep:
    """What a branch name says of its checkpoint: the step, the training stage (None: the
    suite has no stages) and scalars such as the tokens seen."""

    step: int
    stage: int | None = None
    scalars: Mapping[str, float] = field(default_factory=dict)


def _numbers(match: re.Match[str]) -> BranchStep:
    groups = match.groupdict()
    scalars: dict[str, float] = {}
    if groups.get("tokens") is not None:
        scalars["tokens"] = int(groups["tokens"]) * TOKEN_UNITS[groups["unit"]]
    stage = int(groups["stage"]) if groups.get("stage") is not None else None
    if stage is not None:
        scalars["stage"] = float(stage)
    return BranchStep(int(groups["step"]), stage, scalars)


@dataclass(frozen=True)
class BranchRule:
    """How one checkpoint suite names its branches."""

    suite: str
    example: str
    pattern: re.Pattern[str]
    read: Callable[[re.Match[str]], BranchStep] = _numbers


# Tried in order; the first that matches a branch name gives its step.
BRANCH_RULES: Final = (
    BranchRule("Pythia, PolyPythias", "step143000", re.compile(r"^step(?P<step>\d+)$")),
    BranchRule(
        "OLMo",
        "step1000-tokens4B, stage1-step928646-tokens3896B, stage2-ingredient1-step11931-tokens100B",
        re.compile(
            r"^(?:stage(?P<stage>\d+)-(?:[A-Za-z]+\d*-)*)?"
            r"step(?P<step>\d+)-tokens(?P<tokens>\d+)(?P<unit>[MB])$"
        ),
    ),
    BranchRule("LLM360 Amber", "ckpt_042", re.compile(r"^ckpt_(?P<step>\d+)$")),
    BranchRule("any other", "iter-2000 (the last number)", re.compile(r"(?P<step>\d+)(?!.*\d)")),
)


def branch_step(branch: str) -> BranchStep | None:
    """The step a branch name gives (None for a name with no number, such as ``main``)."""
    for rule in BRANCH_RULES:
        match = rule.pattern.search(branch)
        if match:
            return rule.read(match)
    return None


def repo_id(folder_name: str) -> str | None:
    """``ORG/NAME`` of a cache folder ``models--ORG--NAME`` (None for another folder)."""
    match = REPO_DIR_RE.match(folder_name)
    return match.group("repo").replace(REPO_SEPARATOR, "/") if match else None


def task_and_seed(repo: str) -> tuple[str, int | None]:
    """The model a repository is a seed of, and the seed: ``pythia-160m-seed3`` ->
    (``pythia-160m``, 3); the base repository has no seed of its own (None)."""
    match = SEED_RE.match(repo)
    if match is None:
        return repo, None
    return match.group("model"), int(match.group("seed"))


def detect(listing: Listing) -> bool:
    return repo_id(listing.path.name) is not None and "snapshots" in listing.dirs


def read(listing: Listing, run_id: str) -> Claim:
    repo_folder = listing.path
    repo = repo_id(repo_folder.name) or run_id
    problems: list[Problem] = []
    branches = _branches(repo_folder, problems)
    by_stage: dict[int | None, list[CheckpointRef]] = defaultdict(list)
    config: dict[str, Any] = {}
    snapshots = repo_folder / "snapshots"
    for snapshot in sorted(p for p in snapshots.iterdir() if not p.name.startswith(".")):
        if not snapshot.is_dir():
            continue
        named = _snapshot_step(snapshot, branches.get(snapshot.name, []), problems)
        if named is None:
            continue
        try:
            _inside(snapshot, repo_folder)
            ref = model_checkpoint(snapshot, named.step, None)
        except (ValueError, OSError) as error:
            problems.append(problem_for(weights_path(snapshot), error))
            continue
        by_stage[named.stage].append(with_scalars(ref, named.scalars))
        config = _config(snapshot, problems) or config
    task, seed = task_and_seed(repo)
    stages = sorted(by_stage, key=lambda stage: -1 if stage is None else stage)
    runs: list[Run] = []
    for position, stage in enumerate(stages or [None]):
        staged = len(stages) > 1 and stage is not None
        runs.append(
            assemble_run(
                run_id=f"{repo}@stage{stage}" if staged else repo,
                path=repo_folder,
                layout=NAME,
                candidates=by_stage.get(stage, []),
                # The repository's problems once, with its first run.
                problems=problems if position == 0 else [],
                config={**config, "task": task, "seed": seed, "hub_repo": repo},
            )
        )
    return Claim(runs=tuple(runs), owned=frozenset(listing.files) | frozenset(listing.dirs))


def _branches(repo_folder: Path, problems: list[Problem]) -> dict[str, list[str]]:
    """commit -> the names of the branches (``refs/`` files) pointing at it."""
    found: dict[str, list[str]] = defaultdict(list)
    refs = repo_folder / "refs"
    if not refs.is_dir():
        return found
    for path in sorted(refs.rglob("*")):
        if path.name.startswith(".") or PARTIAL_REF_RE.search(path.name) or not path.is_file():
            continue
        try:
            commit = read_bytes(path, REF_LIMIT).decode("ascii").strip()
        except (OSError, ValueError, UnicodeDecodeError) as error:
            problems.append(problem_for(path, error))
            continue
        if not COMMIT_RE.match(commit):
            problems.append(Problem(path, "holds no commit hash", "download the revision again"))
            continue
        found[commit].append(path.relative_to(refs).as_posix())
    return found


def _snapshot_step(snapshot: Path, names: list[str], problems: list[Problem]) -> BranchStep | None:
    """The step of a snapshot from its branches; a problem when none or several disagree."""
    steps = {name: step for name in names if (step := branch_step(name)) is not None}
    if not steps:
        said = (
            f"only {', '.join(repr(n) for n in sorted(names))} points"
            if names
            else "no branch points"
        )
        problems.append(
            Problem(
                snapshot,
                f"step unknown: {said} at this snapshot and no branch name carries a step",
                "download the revision by its checkpoint branch (revision='step1000'); "
                "snapshots downloaded by commit hash have none",
            )
        )
        return None
    distinct = {(s.step, s.stage) for s in steps.values()}
    if len(distinct) > 1:
        problems.append(
            Problem(
                snapshot,
                f"branches disagree on its step ({', '.join(sorted(steps))})",
                "not read; the repository's branches name one commit twice",
            )
        )
        return None
    return next(iter(steps.values()))


def _inside(snapshot: Path, repo_folder: Path) -> None:
    """Raise unless every file of the snapshot resolves into the repository's folder (the cache
    links snapshots into its blobs; a link elsewhere is not followed)."""
    home = repo_folder.resolve()
    for entry in snapshot.iterdir():
        target = entry.resolve()
        if not target.is_relative_to(home):
            raise CheckpointError(
                entry,
                f"links outside its repository's folder (to {target}): not followed",
                "the hub cache links snapshot files into the repository's blobs/ only",
            )


def _config(snapshot: Path, problems: list[Problem]) -> dict[str, Any]:
    path = snapshot / CONFIG_JSON
    if not path.exists():
        return {}
    try:
        loaded = read_json(path)
    except (OSError, ValueError) as error:
        problems.append(problem_for(path, error))
        return {}
    return loaded if isinstance(loaded, dict) else {}


# huggingface_hub downloads into blobs/*.incomplete and links the snapshot file after.
READER = LayoutReader(name=NAME, detect=detect, read=read, atomic=True)
