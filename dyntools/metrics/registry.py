"""The metric registry: every metric dyntools computes, by stable snake_case name.

One entry per metric (``dyntools.metrics.kinds``): the compute pipeline plans and computes from
it, the store keeps its kind, the CLI help and the app's glossary print its description. An
unknown name raises a ValueError that lists the known ones. Names and descriptions only need
numpy: this module imports no torch, so the app's pages can read it cheaply.

Register a metric of your own (before computing, in every process that computes it)::

    from dyntools.metrics.registry import register
    from dyntools.metrics.kinds import MatrixMetric
    from dyntools.metrics.batch import Column
    register(MatrixMetric(name="l2_squared", description="||W||_F^2",
                          compute=lambda b: Column(b.l2**2)))
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from dyntools.metrics.builtin import BUILTIN
from dyntools.metrics.hsic_inputs import VARIANTS
from dyntools.metrics.kinds import (
    Against,
    HookKind,
    InformationMetric,
    Metric,
    MetricKind,
    params_key,
)

REGISTRY: dict[str, Metric] = {metric.name: metric for metric in BUILTIN}

# The paper's HMM features per checkpoint, in the published column order: the eight matrix
# metrics averaged over the network, then the six pooled statistics.
PAPER_FEATURES: tuple[str, ...] = tuple(metric.name for metric in BUILTIN if metric.anchor)

WEIGHT_KINDS = tuple(kind for kind in MetricKind if kind.hook_kind is HookKind.WEIGHT)
ACTIVATION_KINDS = tuple(kind for kind in MetricKind if kind.hook_kind is HookKind.ACTIVATION)

# The two HSIC variants of the information plane and their (H vs X, H vs Y) metric names.

M = TypeVar("M", bound=Metric)

__all__ = ["PAPER_FEATURES", "REGISTRY", "metric", "params_key", "register"]


def register(entry: Metric) -> None:
    """Add a metric; a name that is taken is a ValueError (names are stored, never reused)."""
    if entry.name in REGISTRY:
        raise ValueError(f"a metric named {entry.name!r} is already registered")
    if not entry.name.isidentifier() or entry.name != entry.name.lower():
        raise ValueError(f"metric names are snake_case identifiers, got {entry.name!r}")
    REGISTRY[entry.name] = entry


@contextmanager
def registered(*entries: Metric) -> Iterator[None]:
    """Metrics registered for the duration of a block (tests, experiments)."""
    for entry in entries:
        register(entry)
    try:
        yield
    finally:
        for entry in entries:
            REGISTRY.pop(entry.name, None)


def metric(name: str) -> Metric:
    """The registry entry of ``name``; an unknown name lists the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(REGISTRY)}") from None


def metric_names(*kinds: MetricKind) -> tuple[str, ...]:
    """Names of the metrics of the given kinds (every metric when none is given)."""
    return tuple(m.name for m in REGISTRY.values() if not kinds or m.metric_kind in kinds)


def of_type(kind: type[M], names: Iterable[str]) -> list[M]:
    """The entries of ``names`` that are of ``kind`` (a ``kinds`` class), in the given order."""
    return [entry for name in names if isinstance(entry := metric(name), kind)]


def select_metrics(names: Iterable[str] | None, *kinds: MetricKind) -> tuple[str, ...]:
    """Validate a selection of metric names (None selects every metric of ``kinds``).

    Raises ValueError naming the unknown or out-of-kind names and listing the known ones.
    """
    allowed = metric_names(*kinds)
    if names is None:
        return allowed
    chosen = list(dict.fromkeys(names))
    bad = [name for name in chosen if name not in allowed]
    if bad:
        scope = ", ".join(kind.value for kind in kinds) or "any kind"
        raise ValueError(f"unknown metric name(s) {bad} for {scope}; known: {', '.join(allowed)}")
    return tuple(chosen)


def variant_metrics(variant: str) -> tuple[str, str]:
    """The (HSIC(H, X), HSIC(H, Y)) metric names of an information-plane variant."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown HSIC variant {variant!r}; choose one of {list(VARIANTS)}")
    planes = [m for m in REGISTRY.values() if isinstance(m, InformationMetric)]
    x, y = (
        next(m.name for m in planes if m.variant == variant and m.against is against)
        for against in (Against.INPUT, Against.TARGET)
    )
    return x, y
