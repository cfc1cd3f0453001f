"""Find every run below a folder, in any supported layout.

    found = discover_runs("~/experiments")
    for run in found.runs:
        print(run.run_id, run.layout, [c.step for c in run.checkpoints])
    for problem in found.all_problems():
        print(problem.message())

The folder is walked top-down (following symbolic links, each real folder once, so a link loop
cannot trap the walk). Each folder is offered to the layout readers in LAYOUTS order; the first
that recognises it reads the run there. Hidden entries (names starting with ``.``, such as the
writer's ``.NAME.PID.tmp`` files) are skipped. A damaged file becomes a Problem of its run; it
never stops the rest of the folder from being read: whatever a layout reader raises while
reading one folder (a case no check foresaw) becomes a Problem of that folder, and the walk goes
on. Entries that are not regular files or folders (FIFOs, devices, sockets, links to them) and
names that are not valid UTF-8 (they could not be stored or shown faithfully) are reported and
skipped.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Final

from dyntools.checkpoints import (
    layout_bare,
    layout_hf,
    layout_hub,
    layout_lightning,
    layout_own,
    layout_torch,
)
from dyntools.checkpoints.listing import CHECKPOINT_SUFFIXES, LayoutReader, Listing
from dyntools.checkpoints.records import Discovery, Problem, Run

# Tried in this order: the most specific layouts first.
LAYOUTS: Final[dict[str, LayoutReader]] = {
    reader.name: reader
    for reader in (
        layout_own.READER,
        layout_hub.READER,
        layout_hf.READER,
        layout_lightning.READER,
        layout_torch.READER,
        layout_bare.READER,
    )
}

SKIPPED_DIRS: Final = frozenset({"__pycache__", "node_modules"})

SUPPORTED: Final = (
    "expected run.json + epoch_NNNNN.safetensors (dyntools), models--ORG--NAME/ (the Hugging "
    "Face hub cache), checkpoint-N/ (Hugging Face Trainer), *.ckpt (Lightning), numbered *.pt/*.pth/*.bin (torch.save) or numbered "
    "*.safetensors files; see the README, section 'Reading checkpoint folders you already have'"
)


def discover_runs(folder: str | Path) -> Discovery:
    """Every run at or below ``folder``, sorted by run id, with the problems found on the way.

    A missing path raises FileNotFoundError and a file raises NotADirectoryError; everything
    below an existing folder is reported as Problem records instead of raised.
    """
    root = Path(folder).expanduser().absolute()
    if not root.exists():
        raise FileNotFoundError(
            f"{root} does not exist: check the path (and that the disk is mounted)"
        )
    if not root.is_dir():
        raise NotADirectoryError(
            f"{root} is a file, not a folder: point at the folder that holds the checkpoints"
        )
    walker = _Walker(root)
    walker.walk(root, ())
    runs = _unique_ids(walker.runs, root)
    runs = sorted(runs, key=lambda run: run.run_id)
    problems = walker.problems
    if not runs:
        problems.append(Problem(root, "no checkpoints found", SUPPORTED))
    return Discovery(root=root, runs=tuple(runs), problems=tuple(problems))


def run_id_for(root: Path, path: Path) -> str:
    """The stable id of the run at ``path``: its path relative to ``root``, or for the folder
    given itself, that folder's name (``.`` only for a nameless root such as ``/``)."""
    if path == root:
        return root.name or "."
    return path.relative_to(root).as_posix()


class _Walker:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.runs: list[Run] = []
        self.problems: list[Problem] = []
        self.seen: dict[tuple[int, int], Path] = {}

    def walk(self, path: Path, ancestors: tuple[tuple[int, int], ...]) -> None:
        try:
            stat = path.stat()
        except OSError as error:
            self.problems.append(
                Problem(path, f"cannot be read ({error.strerror})", "check the link or its target")
            )
            return
        identity = (stat.st_dev, stat.st_ino)
        if identity in ancestors:
            self.problems.append(
                Problem(
                    path,
                    f"symbolic link loop: it leads back to {self.seen[identity]}",
                    "not followed; remove the link if it is a mistake",
                )
            )
            return
        if identity in self.seen:
            self.problems.append(
                Problem(
                    path,
                    f"the same folder as {self.seen[identity]} (through a symbolic link)",
                    "read once, under the first path",
                )
            )
            return
        self.seen[identity] = path
        listing = self._list(path)
        if listing is None:
            return
        owned: frozenset[str] = frozenset()
        for reader in LAYOUTS.values():
            try:
                if not reader.detect(listing):
                    continue
                claim = reader.read(listing, run_id_for(self.root, path))
            except Exception as error:  # the per-folder boundary: nothing escapes a folder
                self.problems.append(
                    Problem(
                        path,
                        f"could not be read as a {reader.name} run "
                        f"({type(error).__name__}: {str(error)[:200]})",
                        "the other folders were read; report this folder's layout to dyntools",
                    )
                )
                return
            self.runs.extend(claim.runs)
            owned = claim.owned
            break
        self._report_strays(listing, owned)
        for name in listing.dirs:
            if name not in owned:
                self.walk(path / name, (*ancestors, identity))

    def _list(self, path: Path) -> Listing | None:
        files: list[str] = []
        dirs: list[str] = []
        linked_dirs: list[str] = []
        others: list[str] = []
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    if not _utf8(entry.name):
                        self.problems.append(
                            Problem(
                                Path(entry.path),
                                "its name is not valid UTF-8: not read",
                                "rename it (dyntools stores and shows names as UTF-8 text)",
                            )
                        )
                        continue
                    try:
                        is_dir = entry.is_dir()  # follows symbolic links
                        is_file = not is_dir and entry.is_file()
                    except OSError:
                        is_dir = is_file = False
                    if is_dir and entry.name not in SKIPPED_DIRS:
                        (linked_dirs if entry.is_symlink() else dirs).append(entry.name)
                    elif is_file:
                        files.append(entry.name)
                    elif entry.is_symlink() and not os.path.exists(entry.path):
                        self.problems.append(
                            Problem(
                                Path(entry.path),
                                "broken symbolic link",
                                "its target is missing: restore it or remove the link",
                            )
                        )
                    else:
                        others.append(entry.name)
        except PermissionError:
            self.problems.append(
                Problem(
                    path,
                    "permission denied: cannot list this folder",
                    f"make it readable (chmod a+rx '{path}') or run as its owner",
                )
            )
            return None
        except OSError as error:
            self.problems.append(
                Problem(path, f"cannot list this folder ({error.strerror})", "check the disk")
            )
            return None
        # Real folders first, so a folder also reachable through a link keeps its real path as
        # its run id.
        return Listing(
            path=path,
            files=tuple(sorted(files)),
            dirs=(*sorted(dirs), *sorted(linked_dirs)),
            others=tuple(sorted(others)),
        )

    def _report_strays(self, listing: Listing, owned: frozenset[str]) -> None:
        for name in listing.others:
            if name in owned:  # its layout reader reports it (a FIFO metrics.csv, say)
                continue
            self.problems.append(
                Problem(
                    listing.path / name,
                    "is not a regular file (a FIFO, device or socket, or a link to one): not read",
                    "checkpoints and their side files must be regular files",
                )
            )
        for name in listing.files:
            if name in owned or Path(name).suffix not in CHECKPOINT_SUFFIXES:
                continue
            self.problems.append(
                Problem(
                    listing.path / name,
                    "not read: looks like a checkpoint but fits no supported layout here "
                    "(no step or epoch number in its name, or another layout owns this folder)",
                    "give it a number (NAME_<step>.safetensors) or move it into its own folder",
                )
            )


def _unique_ids(runs: list[Run], root: Path) -> list[Run]:
    """The folder given, when it is a run, is named by its name; if a run below it has that
    same relative path (``runs/runs``), the folder given keeps the id ``.``."""
    ids = [run.run_id for run in runs if run.path != root]
    return [
        dataclasses.replace(run, run_id=".") if run.path == root and run.run_id in ids else run
        for run in runs
    ]


def _utf8(name: str) -> bool:
    """Whether a name read from the file system is valid UTF-8 (Python keeps undecodable
    bytes as lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_run(folder: Path | str) -> Run:
    """The run whose folder is ``folder`` itself (any layout); its problems are on the record.

    Raises LookupError when ``folder`` is not a run folder (for example a folder of runs).
    """
    found = discover_runs(Path(folder))
    root = Path(folder).expanduser().absolute()
    for run in found.runs:
        if run.path == root:
            return run
    messages = "; ".join(p.message() for p in found.all_problems()[:3])
    raise LookupError(
        f"{folder} is not a run folder ({len(found.runs)} runs below it)"
        + (f": {messages}" if messages else "")
    )
