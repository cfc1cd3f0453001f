"""The registry of compute backends: where a compute's jobs run.

A backend is a function ``(jobs, options, workers, run)`` that yields ``run``'s result for every
job, in job order (``dyntools.pipeline.jobs.Backend``): ``local`` runs the jobs in this process
or in worker processes of this machine (``workers.py``), ``ray`` as tasks on a Ray cluster
(``ray_backend.py``). The compute, whichever backend it uses, plans the jobs and writes their
results to the store from its own process.

Entries name their function as text, imported on first use: the local backend imports torch
and the Ray one ray (an optional extra), while ``ComputeOptions`` and the app check a backend
name here without either. This module imports nothing of dyntools, so that the options can
import it without an import cycle (the backends' modules import the options).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class BackendEntry:
    """One backend: its function (``module:function``), what it does, and the optional package
    it needs (its import name and the extra that installs it)."""

    target: str
    description: str
    needs: str | None = None
    extra: str | None = None

    def available(self) -> bool:
        """Whether the package it needs is installed (found without importing it)."""
        if self.needs is None:
            return True
        try:
            return importlib.util.find_spec(self.needs) is not None
        except (ImportError, ValueError):  # a broken install, or a module set to None
            return False

    def require(self, name: str) -> None:
        """Raise, saying how to install it, when the package it needs is missing."""
        if not self.available():
            raise ValueError(
                f"the {name} backend needs the {self.needs!r} package, which is not installed: "
                f"pip install 'dyntools[{self.extra}]'"
            )

    def load(self) -> object:
        """The backend's function (imports its module)."""
        module, function = self.target.split(":")
        return getattr(importlib.import_module(module), function)


BACKENDS: Mapping[str, BackendEntry] = MappingProxyType(
    {
        "local": BackendEntry(
            "dyntools.pipeline.workers:run_local",
            "in this process, or in worker processes of this machine",
        ),
        "ray": BackendEntry(
            "dyntools.pipeline.ray_backend:run_on_ray",
            "as tasks on a Ray cluster: a local one started for the compute, or the one at "
            "--ray-address",
            needs="ray",
            extra="ray",
        ),
    }
)


def backend_entry(name: str) -> BackendEntry:
    """The registry's entry ``name``; an unknown name raises, listing the known ones."""
    entry = BACKENDS.get(name)
    if entry is None:
        raise ValueError(f"unknown backend {name!r}; choose one of {sorted(BACKENDS)}")
    return entry
