"""Model factories the activation tests name explicitly (``tiny_factories:tiny_mlp``)."""

from __future__ import annotations

import torch

IMPORT_COUNT = 0
IMPORT_COUNT += 1  # tests check this module is imported only when a factory names it


def tiny_mlp(hidden: int = 5) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(3, hidden),
        torch.nn.ReLU(),
        torch.nn.Sequential(torch.nn.Linear(hidden, 2)),
    )
