"""Which matrices a selected tensor contributes, and its role in the pooled statistics.

- A 2-D tensor is one matrix (stored layout, e.g. nn.Linear out x in).
- A 3-D tensor (n_heads, d_head, d_model), the reference transformer's W_Q/W_K/W_V layout, is one
  (n_heads*d_head, d_model) matrix, or n_heads matrices when split per head.
- A 2-D tensor split per head (Hugging Face layout, (n_heads*d_head, d_model)) gives n_heads row
  blocks.
- A 4-D tensor is a convolution weight (O, I, kh, kw): per-kernel metrics plus the spectral
  metrics of its (O, I*kh*kw) reshaping.
- Other ranks get no per-matrix metrics (they are reported as skipped) but still count in the
  pooled statistics when their role is weight or bias.

A split head keeps its tensor's name and carries its head index; every matrix keeps its hook
point, so nothing is averaged away except in the hook-point and network means.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from dyntools.metrics.records import Reason, ReasonCode

TensorRole = Literal["weight", "bias", "other"]
MatrixKind = Literal["matrix", "conv"]
ROLES: tuple[TensorRole, ...] = ("weight", "bias", "other")


def default_role(name: str, shape: tuple[int, ...]) -> TensorRole:
    """Weights are tensors of rank >= 2; biases are 1-D tensors named ``bias``, ``b`` or ``b_*``.

    Other 1-D tensors (LayerNorm scales) and scalars stay out of the pooled statistics, as in the
    reference, which pools only the weights and biases of its linear layers.
    """
    leaf = name.rpartition(".")[2]
    if len(shape) >= 2:
        return "weight"
    if len(shape) == 1 and (leaf in ("bias", "b") or leaf.startswith("b_")):
        return "bias"
    return "other"


def default_hook_point(name: str) -> str:
    """The module path owning a tensor: ``blocks.0.attn.W_Q`` -> ``blocks.0.attn``."""
    return name.rpartition(".")[0] or name


@dataclass(frozen=True)
class Matrix:
    """One matrix (or conv weight) that gets its own metric rows."""

    order: int
    tensor: str
    hook_point: str
    kind: MatrixKind
    # Shape of the matrix (m, n), or of the conv weight (O, I, kh, kw).
    shape: tuple[int, ...]
    head: int | None = None


def plan_matrices(
    name: str, shape: tuple[int, ...], hook_point: str, heads: int | None, first_order: int
) -> tuple[list[Matrix], Reason | None]:
    """The matrices of one tensor, or ([], why not) when it has no per-matrix metrics."""
    rank = len(shape)
    if heads is not None and rank not in (2, 3):
        why = f"cannot split a {rank}-D tensor {list(shape)} per head"
        return [], Reason(ReasonCode.HEAD_SPLIT, why)
    if rank == 2 and heads is None:
        return [Matrix(first_order, name, hook_point, "matrix", shape)], None
    if rank in (2, 3) and heads is not None:
        blocks = head_blocks(shape, heads, name)
        return [
            Matrix(first_order + h, name, hook_point, "matrix", blocks, h) for h in range(heads)
        ], None
    if rank == 3:
        merged = (shape[0] * shape[1], shape[2])
        return [Matrix(first_order, name, hook_point, "matrix", merged)], None
    if rank == 4:
        return [Matrix(first_order, name, hook_point, "conv", shape)], None
    why = f"{rank}-D tensor {list(shape)}: per-matrix metrics need 2-D, 3-D or 4-D weights"
    return [], Reason(ReasonCode.UNSUPPORTED_SHAPE, why)


def head_blocks(shape: tuple[int, ...], heads: int, name: str) -> tuple[int, int]:
    """Shape of one head's matrix when ``name`` (of ``shape``) is split into ``heads`` heads."""
    if heads < 1:
        raise ValueError(f"number of heads for {name!r} must be >= 1, got {heads}")
    if len(shape) == 3:
        if shape[0] != heads:
            raise ValueError(
                f"{name!r} has shape {list(shape)}: a 3-D attention weight splits along its first "
                f"axis into {shape[0]} heads, not {heads}; pass heads={shape[0]}"
            )
        return (shape[1], shape[2])
    if shape[0] % heads:
        raise ValueError(
            f"{name!r} has {shape[0]} rows, not divisible into {heads} heads; check the head count"
        )
    return (shape[0] // heads, shape[1])


def split_heads(tensor: torch.Tensor, heads: int, name: str = "tensor") -> list[torch.Tensor]:
    """Per-head matrices (views, no copy) of a 3-D (n_heads, d_head, d_model) or 2-D
    (n_heads*d_head, d_model) attention weight."""
    rows, cols = head_blocks(tuple(tensor.shape), heads, name)
    return list(tensor.reshape(heads, rows, cols).unbind(0))


def matrix_views(tensor: torch.Tensor, matrices: list[Matrix]) -> list[torch.Tensor]:
    """The matrices (or conv weights) of ``matrices``, views into ``tensor`` where possible."""
    first = matrices[0]
    if first.head is not None:
        return split_heads(tensor, len(matrices), first.tensor)
    return [tensor.reshape(first.shape)]
