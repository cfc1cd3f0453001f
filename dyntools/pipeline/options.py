"""What a compute is asked to do: hook points, metrics and their parameters, workers, device,
backend."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from dyntools.metrics.kinds import HistogramMetric, ParamValue
from dyntools.metrics.registry import (
    ACTIVATION_KINDS,
    WEIGHT_KINDS,
    metric,
    metric_names,
    select_metrics,
)
from dyntools.pipeline.backends import BACKENDS, backend_entry
from dyntools.selection import NetworkSelection

DEVICES = ("cpu", "cuda", "auto")
# The Ray cluster the app's Compute buttons use (``configured_backend``).
RAY_ADDRESS_VARIABLE = "DYNTOOLS_RAY_ADDRESS"


@dataclass(frozen=True)
class ComputeOptions:
    """Everything that decides which numbers a compute produces, and how it runs.

    ``select``: hook-point patterns (exact, glob or ``re:``; empty = every natural hook point).
    ``metrics``: metric names (empty = every weight metric, plus every activation metric when
    ``activations``). ``params``: per-metric parameters over the registry's defaults, e.g.
    ``{"dead_fraction": {"threshold": 0.01}, "histogram": {"bins": 80}}`` (stored with each
    value). ``split_heads``: split 3-D attention weights (n_heads, d_head, d_model) into one
    matrix per head, as the reference does for W_Q/W_K/W_V. ``network``: the tensors the
    network values (the paper's features) take (default: the paper's). ``activation_select``: activation
    hook-point patterns (empty = every module whose forward runs). ``factory``: model factory
    for runs that are not dyntools runs. ``workers``: parallel workers (1: in this process;
    None: decided from the amount of work, or the cluster's CPUs on Ray). ``runs``: run ids to
    compute (empty = every run found; an id the folder does not have raises, naming those it
    has). ``backend``: where the jobs run, a name of ``dyntools.pipeline.backends.BACKENDS``
    (``local``: here or in worker processes; ``ray``: on a Ray cluster). ``ray_address``: the
    Ray cluster to connect to (None: one started for the compute and shut down after it).
    """

    select: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    activations: bool = False
    activation_select: tuple[str, ...] = ()
    factory: str | None = None
    split_heads: bool = True
    network: NetworkSelection = field(default_factory=NetworkSelection)
    params: Mapping[str, Mapping[str, ParamValue]] = field(default_factory=dict, hash=False)
    workers: int | None = None
    device: str = "cpu"
    runs: tuple[str, ...] = ()
    backend: str = "local"
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be >= 1 (or None for automatic), got {self.workers}")
        if self.device not in DEVICES:
            raise ValueError(f"unknown device {self.device!r}; choose one of {list(DEVICES)}")
        backend_entry(self.backend)  # an unknown name raises, listing the known ones
        if self.ray_address is not None and not self.ray_address.strip():
            raise ValueError("empty Ray address: name a cluster (host:port, ray://, auto)")
        if self.ray_address is not None and self.backend != "ray":
            raise ValueError(
                f"a Ray address ({self.ray_address!r}) is for the ray backend, not "
                f"{self.backend!r}: add --backend ray"
            )
        # Validates every name (an unknown one raises, listing the known ones).
        select_metrics(self.metrics or None)
        for name, given in self.params.items():
            entry = metric(name)
            entry.resolve(given)  # unknown or out-of-range parameters raise, naming the metric
            if isinstance(entry, HistogramMetric):
                entry.spec(given)  # the bin range is checked here, before any work

    @property
    def weight_metrics(self) -> tuple[str, ...]:
        known = metric_names(*WEIGHT_KINDS)
        return tuple(m for m in self.metrics if m in known) if self.metrics else known

    @property
    def activation_metrics(self) -> tuple[str, ...]:
        known = metric_names(*ACTIVATION_KINDS)
        if self.metrics:
            return tuple(m for m in self.metrics if m in known)
        return known if self.activations else ()

    def params_of(self, name: str) -> dict[str, ParamValue]:
        """The parameters of metric ``name`` in this compute (defaults where not given)."""
        return metric(name).resolve(self.params.get(name))

    def params_key(self, name: str) -> str:
        """The stored ``params`` text of metric ``name`` in this compute."""
        return metric(name).params_key(self.params.get(name))


def parse_patterns(values: Sequence[str] | None) -> tuple[str, ...]:
    """Patterns from repeated and comma-separated command-line values."""
    out: list[str] = []
    for value in values or ():
        out.extend(part.strip() for part in value.split(",") if part.strip())
    return tuple(out)


@dataclass(frozen=True)
class BackendChoice:
    """The backend the app's Compute buttons use, and a line saying so on the page."""

    backend: str
    ray_address: str | None
    description: str

    def apply(self, options: ComputeOptions) -> ComputeOptions:
        """``options`` running on this backend."""
        if self.backend == "local":
            return options
        # The pages compute in one process locally; on a cluster its CPUs decide the workers.
        return replace(options, backend=self.backend, ray_address=self.ray_address, workers=None)


def configured_backend(environ: Mapping[str, str] | None = None) -> BackendChoice:
    """The app's backend: Ray when ``DYNTOOLS_RAY_ADDRESS`` names a cluster and Ray is
    installed, else this process (the app's server has no command line to ask with)."""
    address = (os.environ if environ is None else environ).get(RAY_ADDRESS_VARIABLE, "").strip()
    if not address:
        # Pointing at the variable helps only where Ray could be used.
        hint = (
            f" (set {RAY_ADDRESS_VARIABLE} before starting the app to run them on a Ray cluster)"
            if BACKENDS["ray"].available()
            else ""
        )
        return BackendChoice("local", None, f"Computes run in this process{hint}.")
    if not BACKENDS["ray"].available():
        return BackendChoice(
            "local",
            None,
            f"{RAY_ADDRESS_VARIABLE} is set, but Ray is not installed (pip install "
            "'dyntools[ray]'): computes run in this process.",
        )
    return BackendChoice(
        "ray",
        address,
        f"Computes run on the Ray cluster at `{address}` ({RAY_ADDRESS_VARIABLE}).",
    )
