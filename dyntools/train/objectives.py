"""Losses, accuracies and optimizers of the sample tasks, as registries keyed by name."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Objective:
    """A loss and the matching accuracy, both ``(outputs, labels) -> scalar tensor``."""

    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    accuracy: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _hinge(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.clamp(1.0 - out * y, min=0.0).mean()


def _sign_accuracy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # An output of exactly 0 counts as wrong rather than as a guess for either class.
    return (out * y > 0).float().mean()


def _argmax_accuracy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (out.argmax(dim=-1) == y).float().mean()


OBJECTIVES: dict[str, Objective] = {
    "cross_entropy": Objective(F.cross_entropy, _argmax_accuracy),
    "hinge": Objective(_hinge, _sign_accuracy),
}

Parameters = Iterable[torch.nn.Parameter]


def _adamw(params: Parameters, hyper: Mapping[str, Any]) -> torch.optim.Optimizer:
    beta1, beta2 = hyper.get("betas", (0.9, 0.999))
    return torch.optim.AdamW(
        params, lr=hyper["lr"], weight_decay=hyper["weight_decay"], betas=(beta1, beta2)
    )


def _sgd(params: Parameters, hyper: Mapping[str, Any]) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params,
        lr=hyper["lr"],
        weight_decay=hyper["weight_decay"],
        momentum=hyper.get("momentum", 0.0),
    )


OPTIMIZERS: dict[str, Callable[[Parameters, Mapping[str, Any]], torch.optim.Optimizer]] = {
    "adamw": _adamw,
    "sgd": _sgd,
}


def make_optimizer(params: Parameters, hyper: Mapping[str, Any]) -> torch.optim.Optimizer:
    """The optimizer named by ``hyper["optimizer"]`` with its hyper-parameters."""
    name = hyper["optimizer"]
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](params, hyper)
