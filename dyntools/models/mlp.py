"""Multi-layer perceptron with readable layer names: ``fc1``, ``act1``, ``fc2``, ...

Used by the sparse-parity task (Barak et al. 2022: 40 -> 1000 -> 1, ReLU). The activation
modules are real submodules so ``act1`` is an activation hook point (the hidden units after
ReLU), while ``fc1`` is the pre-activation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dyntools.models import register_model


class MLP(nn.Module):
    """``in_features -> hidden[0] -> ... -> out_features`` with ReLU between layers."""

    def __init__(self, *, in_features: int, hidden: Sequence[int], out_features: int) -> None:
        super().__init__()
        widths = [in_features, *hidden, out_features]
        self.n_layers = len(widths) - 1
        for index in range(self.n_layers):
            self.add_module(f"fc{index + 1}", nn.Linear(widths[index], widths[index + 1]))
            if index < self.n_layers - 1:
                self.add_module(f"act{index + 1}", nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index in range(1, self.n_layers + 1):
            x = getattr(self, f"fc{index}")(x)
            if index < self.n_layers:
                x = getattr(self, f"act{index}")(x)
        # A single output unit is returned as a vector (the hinge loss compares it with +-1).
        return x.squeeze(-1) if x.shape[-1] == 1 else x


@register_model("mlp")
def mlp(*, in_features: int, hidden: Sequence[int], out_features: int) -> MLP:
    """Registry entry: ``{"name": "mlp", "kwargs": {"in_features": 40, "hidden": [1000], ...}}``."""
    return MLP(in_features=in_features, hidden=list(hidden), out_features=out_features)
