"""Weight hook points: the module tree read from a checkpoint's tensor names, and selection.

A hook point is a module path; it owns every tensor below it (``blocks.0.attn`` owns
``blocks.0.attn.W_Q``...; ``layers.2`` owns ``layers.2.weight`` and ``layers.2.bias``). The
parents of the tensors are the natural hook points, and any ancestor can be selected too. A tensor
with no parent (``pos_embed``) is its own hook point.

Selection patterns (one or a list; the result is their union, in tree order):

- ``blocks.0.attn``        exact name
- ``blocks.*.attn``        glob: ``*`` matches within one name part, ``**`` across parts,
                           ``?`` one character, ``[01]`` a character set
- ``re:blocks\\.[0-3]\\.mlp`` regular expression (after ``re:``), matched against the whole path

An exact name or a pattern that matches nothing is a ValueError listing close matches.
Non-float tensors (integer buffers, ``num_batches_tracked``, boolean masks) are listed but are
never metric inputs. This module is a leaf: it imports nothing else of dyntools.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

REGEX_PREFIX: Final = "re:"
_GLOB_CHARS: Final = frozenset("*?[")


class TensorLike(Protocol):
    """Anything with a tensor's name, shape, dtype name and whether it is floating point
    (``checkpoints.TensorInfo`` fits: the readers, which own the dtypes, decide that)."""

    @property
    def name(self) -> str: ...
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def dtype(self) -> str: ...
    @property
    def is_float(self) -> bool: ...


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as a hook point sees it."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    is_float: bool

    @property
    def numel(self) -> int:
        count = 1
        for size in self.shape:
            count *= size
        return count


@dataclass(frozen=True)
class HookPoint:
    """A module path and the tensors it owns.

    ``direct`` are the tensors whose parent it is; ``tensors`` every tensor below it.
    ``parameters`` counts the elements of its floating tensors (a state dict does not tell
    parameters from floating buffers such as BatchNorm's running statistics).
    """

    path: str
    parent: str | None
    depth: int
    direct: tuple[TensorEntry, ...]
    tensors: tuple[TensorEntry, ...]

    @property
    def natural(self) -> bool:
        """Whether tensors hang directly below it (the usual layer-level hook point)."""
        return bool(self.direct)

    @property
    def parameters(self) -> int:
        return sum(t.numel for t in self.tensors if t.is_float)

    @property
    def metric_inputs(self) -> tuple[TensorEntry, ...]:
        """The floating tensors: the only ones metrics are computed on."""
        return tuple(t for t in self.tensors if t.is_float)

    @property
    def non_float(self) -> tuple[TensorEntry, ...]:
        return tuple(t for t in self.tensors if not t.is_float)


@dataclass(frozen=True)
class HookPointTree:
    """Every hook point of a checkpoint, in tree order (parents before children)."""

    nodes: Mapping[str, HookPoint]
    tensors: Mapping[str, TensorEntry]

    def natural(self) -> list[HookPoint]:
        """The hook points that own tensors directly (one per layer)."""
        return [node for node in self.nodes.values() if node.natural]

    def __getitem__(self, path: str) -> HookPoint:
        """The hook point named exactly ``path`` (names are data: never a pattern)."""
        try:
            return self.nodes[path]
        except KeyError:
            raise LookupError(_unknown(list(self.nodes), path, self.tensors)) from None

    def select(self, patterns: str | Sequence[str]) -> list[HookPoint]:
        """The hook points matching any of ``patterns`` (exact, glob or ``re:`` regex)."""
        chosen = set(select_paths(list(self.nodes), patterns, tensors=self.tensors))
        return [node for path, node in self.nodes.items() if path in chosen]


def select_paths(
    paths: Sequence[str],
    patterns: str | Sequence[str],
    *,
    tensors: Mapping[str, object] | None = None,
) -> list[str]:
    """The ``paths`` matching any of ``patterns``, in the order of ``paths``.

    Used for weight and activation hook points alike. ``tensors`` (names) lets the error for a
    tensor name point at its module.
    """
    wanted = [patterns] if isinstance(patterns, str) else list(patterns)
    if not wanted:
        raise ValueError("no hook point pattern given: name at least one (e.g. 'layers.*')")
    chosen: set[str] = set()
    for pattern in wanted:
        found = _match(paths, pattern)
        if not found:
            raise ValueError(_unknown(paths, pattern, tensors or {}))
        chosen.update(found)
    return [path for path in paths if path in chosen]


def _match(paths: Sequence[str], pattern: str) -> list[str]:
    if pattern in paths:  # a name is itself, even one with glob characters (layers[0])
        return [pattern]
    if pattern.startswith(REGEX_PREFIX):
        try:
            regex = re.compile(pattern[len(REGEX_PREFIX) :])
        except re.error as error:
            raise ValueError(f"hook point regex {pattern!r} is invalid: {error}") from None
        return [p for p in paths if regex.fullmatch(p)]
    if _GLOB_CHARS & set(pattern):
        regex = re.compile(glob_to_regex(pattern))
        return [p for p in paths if regex.fullmatch(p)]
    return [pattern] if pattern in paths else []


def _unknown(paths: Sequence[str], pattern: str, tensors: Mapping[str, object]) -> str:
    if pattern in tensors:
        owner = _parent(pattern) or pattern
        return f"{pattern!r} is a tensor, not a hook point: select its module {owner!r}"
    close = difflib.get_close_matches(pattern.removeprefix(REGEX_PREFIX), list(paths), n=5)
    hint = f"close matches: {', '.join(close)}" if close else "no close match"
    return f"no hook point matches {pattern!r}; {hint}. List them with `dyntools hookpoints FOLDER`"


def glob_to_regex(pattern: str) -> str:
    """A hook point glob as a regex: ``*`` stays within one name part, ``**`` crosses parts."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
            continue
        if char == "*":
            out.append(r"[^.]*")
        elif char == "?":
            out.append(r"[^.]")
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[index + 1 : end]
                negate = body.startswith("!")
                members = body[1:] if negate else body
                out.append("[" + ("^" if negate else "") + members.replace("\\", "\\\\") + "]")
                index = end
        else:
            out.append(re.escape(char))
        index += 1
    return "".join(out)


def _parent(name: str) -> str | None:
    return name.rsplit(".", 1)[0] if "." in name else None


def build_tree(tensors: Iterable[TensorLike]) -> HookPointTree:
    """The hook-point tree of a checkpoint from its tensors' names, shapes and dtypes."""
    entries = [TensorEntry(t.name, tuple(t.shape), str(t.dtype), t.is_float) for t in tensors]
    by_name = {entry.name: entry for entry in entries}
    direct: dict[str, list[TensorEntry]] = {}
    below: dict[str, list[TensorEntry]] = {}
    for entry in entries:
        owner = _parent(entry.name) or entry.name  # a top-level tensor is its own hook point
        direct.setdefault(owner, []).append(entry)
        path: str | None = owner
        while path is not None:
            below.setdefault(path, []).append(entry)
            path = _parent(path)
    nodes = {
        path: HookPoint(
            path=path,
            parent=_parent(path),
            depth=path.count("."),
            direct=tuple(direct.get(path, ())),
            tensors=tuple(below[path]),
        )
        for path in sorted(below, key=tree_key)
    }
    return HookPointTree(nodes=nodes, tensors=by_name)


def tree_key(path: str) -> tuple[tuple[int, int | str], ...]:
    # Numeric parts sort as numbers: layers.2 before layers.10 (ASCII digits only: "²" is a
    # digit to str.isdigit but no number to int).
    return tuple(
        (0, int(part)) if part.isascii() and part.isdigit() else (1, part)
        for part in path.split(".")
    )


def select(tensors: Iterable[TensorLike], patterns: str | Sequence[str]) -> list[HookPoint]:
    """Shorthand: ``build_tree(tensors).select(patterns)``."""
    return build_tree(tensors).select(patterns)
