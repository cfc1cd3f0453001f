"""Shared selections: what the pages agree on (runs, hook points, metrics), reconciled with
what a folder actually has, and encoded for the URL's query parameters."""

from __future__ import annotations

from collections.abc import Sequence

# One query parameter value holds a list as names joined by this (names never contain it).
LIST_SEPARATOR = ","


def encode_list(values: Sequence[str]) -> str:
    return LIST_SEPARATOR.join(values)


def decode_list(text: str | None) -> list[str]:
    if not text:
        return []
    return [part for part in text.split(LIST_SEPARATOR) if part]


def reconcile(
    chosen: Sequence[str],
    available: Sequence[str],
    *,
    default: int = 4,
    preferred: Sequence[str] = (),
) -> list[str]:
    """The chosen names that are available, in their order. When none is (nothing chosen yet,
    another folder, another kind of hook point): the preferred ones that are available, else
    the first ``default`` available ones."""
    known = set(available)
    kept = [name for name in chosen if name in known]
    if kept:
        return kept
    liked = [name for name in preferred if name in known]
    return liked[:default] if liked else list(available[:default])
