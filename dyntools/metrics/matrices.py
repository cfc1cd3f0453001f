"""Which matrices a selected tensor contributes (its ``Cut``), and which pooled set it joins.

- A 2-D tensor is one matrix (stored layout, e.g. nn.Linear out x in), or ``heads`` row blocks
  when split per head (Hugging Face layout, (n_heads*d_head, d_model)).
- A 3-D tensor (n_heads, d_head, d_model), the reference transformer's W_Q/W_K/W_V layout, is
  ``n_heads`` matrices when split per head, else one (n_heads*d_head, d_model) matrix, unless it
  is a convolution weight (Conv1d: (O, I, k)).
- A fused Q/K/V tensor with ``fused`` set is cut into 3 * ``heads`` matrices: per head, the
  ``q``, ``k`` and ``v`` projections (``component``). GPT-NeoX's ``query_key_value`` interleaves
  rows per head ([q_h; k_h; v_h] for each head h); GPT-2's ``c_attn`` (a Conv1D, in x out) holds
  the columns [q | k | v], each with its heads side by side.
- A convolution weight (O, I, *kernel): 4-D always, 3-D and 5-D when ``conv`` is set: per-kernel
  metrics plus the spectral metrics of its (O, I*prod(kernel)) reshaping.
- ``rows``: any tensor reshaped to (rows, -1) and taken as one matrix (EleutherAI's
  training-maps selection).
- Other ranks get no per-matrix metrics (they are reported as skipped, with why) but still count
  in the pooled statistics.

Every matrix keeps its tensor, head and component, and its hook point, so nothing is averaged
away except in the hook-point and network means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from dyntools.metrics.kinds import Pool
from dyntools.metrics.records import Reason, ReasonCode

if TYPE_CHECKING:  # tensor methods only: the pipeline's plans (and the app) read Cut cheaply
    import torch

MatrixKind = Literal["matrix", "conv"]


class Fused(StrEnum):
    """How Q, K and V share one tensor."""

    INTERLEAVED = "interleaved"  # GPT-NeoX query_key_value: rows [q_h; k_h; v_h] per head
    BLOCKS = "blocks"  # nn.MultiheadAttention in_proj_weight, qkv_proj: rows [q; k; v]
    COLUMNS = "columns"  # GPT-2 c_attn (in x out): columns [q | k | v]


COMPONENTS = ("q", "k", "v")


@dataclass(frozen=True)
class Cut:
    """How one tensor is cut into matrices (the default: by its rank)."""

    heads: int | None = None  # split into this many heads
    fused: Fused | None = None  # Q, K and V fused: split into q, k, v per head (needs heads)
    conv: bool = False  # a convolution weight of any rank >= 3
    rows: bool = False  # reshaped to (rows, -1), one matrix


def default_pool(name: str, shape: tuple[int, ...]) -> Pool | None:
    """Weights are tensors of rank >= 2; biases are 1-D tensors named ``bias``, ``b`` or ``b_*``.

    Other 1-D tensors (LayerNorm scales) and scalars stay out of the pooled statistics, as in the
    reference, which pools only the weights and biases of its linear layers. The pipeline pools
    by tensor roles instead (``dyntools.roles``).
    """
    leaf = name.rpartition(".")[2]
    if len(shape) >= 2:
        return Pool.WEIGHTS
    if len(shape) == 1 and (leaf in ("bias", "b") or leaf.startswith("b_")):
        return Pool.BIASES
    return None


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
    # Shape of the matrix (m, n), or of the conv weight (O, I, *kernel).
    shape: tuple[int, ...]
    head: int | None = None
    component: str = ""  # q, k or v of a fused tensor


def plan_matrices(
    name: str, shape: tuple[int, ...], hook_point: str, cut: Cut, first_order: int
) -> tuple[list[Matrix], Reason | None]:
    """The matrices of one tensor, or ([], why not) when it has no per-matrix metrics."""
    rank = len(shape)

    def one(kind: MatrixKind, matrix_shape: tuple[int, ...]) -> tuple[list[Matrix], None]:
        return [Matrix(first_order, name, hook_point, kind, matrix_shape)], None

    if rank == 0 or 0 in shape:
        return [], Reason(ReasonCode.EMPTY, f"a tensor of shape {list(shape)} holds no matrix")
    if cut.rows:
        return one("matrix", (shape[0], math.prod(shape[1:])))
    if cut.fused is not None:
        return _fused(name, shape, hook_point, cut, first_order)
    if rank >= 3 and (cut.conv or rank == 4) and cut.heads is None:
        return one("conv", shape)
    if rank in (2, 3) and cut.heads is not None:
        rows, cols = head_blocks(shape, cut.heads, name)
        return [
            Matrix(first_order + h, name, hook_point, "matrix", (rows, cols), h)
            for h in range(cut.heads)
        ], None
    if cut.heads is not None:
        return [], Reason(
            ReasonCode.HEAD_SPLIT, f"cannot split a {rank}-D tensor {list(shape)} per head"
        )
    if rank == 2:
        return one("matrix", shape)
    if rank == 3:
        return one("matrix", (shape[0] * shape[1], shape[2]))
    if rank == 1:
        return [], Reason(ReasonCode.VECTOR, f"1-D tensor {list(shape)}: no matrix metrics")
    why = f"{rank}-D tensor {list(shape)} that is not a convolution weight: no matrix metrics"
    return [], Reason(ReasonCode.UNSUPPORTED_SHAPE, why)


def _fused(
    name: str, shape: tuple[int, ...], hook_point: str, cut: Cut, first_order: int
) -> tuple[list[Matrix], Reason | None]:
    heads = cut.heads
    if len(shape) != 2 or heads is None or heads < 1:
        why = f"a fused Q/K/V tensor {list(shape)} splits as a 2-D tensor with a head count"
        return [], Reason(ReasonCode.HEAD_SPLIT, why)
    # Rows, except GPT-2's (in x out) columns. Each projection has heads*d_head of them.
    columns = cut.fused is Fused.COLUMNS
    along, other = (shape[1], shape[0]) if columns else shape
    if along % (3 * heads):
        why = (
            f"{list(shape)}: {along} {'columns' if columns else 'rows'} do not split into q, k "
            f"and v of {heads} heads; check the head count"
        )
        return [], Reason(ReasonCode.HEAD_SPLIT, why)
    d_head = along // (3 * heads)
    return [
        Matrix(first_order + 3 * h + c, name, hook_point, "matrix", (d_head, other), h, component)
        for h in range(heads)
        for c, component in enumerate(COMPONENTS)
    ], None


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


def split_fused(tensor: torch.Tensor, heads: int, fused: Fused) -> list[torch.Tensor]:
    """The q, k, v matrices of every head of a fused tensor, head by head (views, no copy).

    Each is (d_head, d_model): GPT-2's columns are taken transposed, which changes no metric.
    """
    if fused is Fused.INTERLEAVED:
        rows = tensor.reshape(heads, 3, -1, tensor.shape[1])  # (head, q/k/v, d_head, d_model)
        return [rows[h, c] for h in range(heads) for c in range(3)]
    if fused is Fused.BLOCKS:
        rows = tensor.reshape(3, heads, -1, tensor.shape[1])  # (q/k/v, head, d_head, d_model)
        return [rows[c, h] for h in range(heads) for c in range(3)]
    d = tensor.shape[1] // 3
    d_head = d // heads
    columns = tensor.reshape(tensor.shape[0], 3, heads, d_head)  # (d_model, q/k/v, head, d_head)
    return [columns[:, c, h].T for h in range(heads) for c in range(3)]


def matrix_views(tensor: torch.Tensor, matrices: list[Matrix], cut: Cut) -> list[torch.Tensor]:
    """The matrices (or conv weights) of ``matrices``, views into ``tensor`` where possible."""
    first = matrices[0]
    if cut.fused is not None and cut.heads is not None:
        return split_fused(tensor, cut.heads, cut.fused)
    if first.head is not None:
        return split_heads(tensor, len(matrices), first.tensor)
    return [tensor.reshape(first.shape)]
