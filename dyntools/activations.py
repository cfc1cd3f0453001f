"""Activation hook points: the named modules of a run's model, rebuilt from its description.

The model comes from ``run.json``'s ``model`` entry (``{"name": ..., "kwargs": {...}}``) through
the model registry, or from a factory the user names explicitly (``package.module:function``).
A factory is imported only when named; nothing in a run folder can make dyntools import code.
The forward-pass capture on the probe batch builds on ``rebuild_model``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from dyntools.models import build_model


@dataclass(frozen=True)
class ActivationHookPoint:
    """One named module whose forward output can be captured."""

    path: str
    module_type: str
    parameters: int
    is_leaf: bool


def rebuild_model(config: Mapping[str, Any], *, factory: str | None = None) -> torch.nn.Module:
    """The model a run was trained with, from its ``run.json`` (or an explicit factory)."""
    spec = config.get("model")
    if factory is None and not isinstance(spec, Mapping):
        raise ValueError(
            "this run does not say which model it trained (no 'model' entry in run.json): name "
            "its factory explicitly, e.g. --factory mypackage.models:make_model"
        )
    return build_model(spec if isinstance(spec, Mapping) else {}, factory=factory)


def list_modules(model: torch.nn.Module) -> list[ActivationHookPoint]:
    """Every named sub-module (the root itself is left out: its output is the model's)."""
    points = []
    for path, module in model.named_modules():
        if not path:
            continue
        points.append(
            ActivationHookPoint(
                path=path,
                module_type=type(module).__name__,
                parameters=sum(p.numel() for p in module.parameters()),
                is_leaf=not any(True for _ in module.children()),
            )
        )
    return points


def activation_hook_points(
    config: Mapping[str, Any], *, factory: str | None = None
) -> list[ActivationHookPoint]:
    """The activation hook points of a run: its rebuilt model's named modules."""
    return list_modules(rebuild_model(config, factory=factory))
