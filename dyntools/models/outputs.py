"""What a module's forward returns, as the one tensor dyntools measures."""

from __future__ import annotations

from collections.abc import Mapping

import torch


def first_tensor(output: object) -> torch.Tensor | None:
    """A module's output tensor: the output itself, or the first tensor of a tuple or list, or
    of a mapping (a transformers ``ModelOutput``: its logits or hidden states); None when it
    holds no tensor first."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        output = list(output.values())
    if isinstance(output, tuple | list) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None
