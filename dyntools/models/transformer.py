"""One-layer (or deeper) attention-only-plus-MLP transformer in the style of Nanda et al. (2023).

Parameter names follow TransformerLens so hook points read well: ``embed.W_E``,
``pos_embed.W_pos``, ``blocks.0.attn.W_Q``, ``blocks.0.mlp.W_in``, ``unembed.W_U``.

Layout (documented because per-head metrics depend on it):

- ``W_Q``, ``W_K``, ``W_V``: ``(n_heads, d_head, d_model)``; head ``h`` is the ``d_head x d_model``
  matrix ``W_Q[h]`` mapping the residual stream to that head's queries (``q = W_Q[h] @ x``).
- ``W_O``: ``(d_model, n_heads * d_head)``, not split per head (as in the reference code).
- ``W_in``: ``(d_mlp, d_model)``, ``W_out``: ``(d_model, d_mlp)``; ``W_E``: ``(d_vocab, d_model)``;
  ``W_pos``: ``(n_ctx, d_model)``; ``W_U``: ``(d_vocab_out, d_model)``.

Every part is a real submodule, so activation hook points (module outputs) exist for
``embed``, ``pos_embed``, ``blocks.0``, ``blocks.0.attn``, ``blocks.0.mlp``, ``unembed``.
The model predicts from the last position (Nanda's input is ``a b =``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dyntools.models import register_model


def _init(shape: tuple[int, ...], fan_in: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) / math.sqrt(fan_in))


class Embed(nn.Module):
    def __init__(self, d_vocab: int, d_model: int) -> None:
        super().__init__()
        self.W_E = _init((d_vocab, d_model), d_model)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.W_E[tokens]


class PosEmbed(nn.Module):
    def __init__(self, n_ctx: int, d_model: int) -> None:
        super().__init__()
        self.W_pos = _init((n_ctx, d_model), d_model)

    def forward(self, residual: torch.Tensor) -> torch.Tensor:
        return self.W_pos[: residual.shape[-2]].expand_as(residual)


class LayerNorm(nn.Module):
    def __init__(self, d_model: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(d_model))
        self.b = nn.Parameter(torch.zeros(d_model))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x - x.mean(dim=-1, keepdim=True)
        scale = (x.pow(2).mean(dim=-1, keepdim=True) + self.eps).sqrt()
        return x / scale * self.w + self.b


class Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_head: int, n_ctx: int) -> None:
        super().__init__()
        self.W_Q = _init((n_heads, d_head, d_model), d_model)
        self.W_K = _init((n_heads, d_head, d_model), d_model)
        self.W_V = _init((n_heads, d_head, d_model), d_model)
        self.W_O = _init((d_model, n_heads * d_head), n_heads * d_head)
        self.register_buffer("mask", torch.tril(torch.ones(n_ctx, n_ctx)), persistent=False)
        self.d_head = d_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, pos, d_model) -> q, k, v: (batch, head, pos, d_head)
        q = torch.einsum("ihm,bpm->biph", self.W_Q, x)
        k = torch.einsum("ihm,bpm->biph", self.W_K, x)
        v = torch.einsum("ihm,bpm->biph", self.W_V, x)
        scores = torch.einsum("biqh,bikh->biqk", q, k) / math.sqrt(self.d_head)
        n = x.shape[-2]
        mask = self.get_buffer("mask")[:n, :n]
        scores = scores.masked_fill(mask == 0, float("-inf"))
        pattern = scores.softmax(dim=-1)
        z = torch.einsum("biqk,bikh->biqh", pattern, v)
        z_flat = z.permute(0, 2, 1, 3).reshape(x.shape[0], n, -1)  # (batch, pos, head*d_head)
        return torch.einsum("df,bqf->bqd", self.W_O, z_flat)


class BlockMLP(nn.Module):
    def __init__(self, d_model: int, d_mlp: int) -> None:
        super().__init__()
        self.W_in = _init((d_mlp, d_model), d_model)
        self.b_in = nn.Parameter(torch.zeros(d_mlp))
        self.W_out = _init((d_model, d_mlp), d_mlp)
        self.b_out = nn.Parameter(torch.zeros(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(torch.einsum("md,bpd->bpm", self.W_in, x) + self.b_in)
        return torch.einsum("dm,bpm->bpd", self.W_out, hidden) + self.b_out


class TransformerBlock(nn.Module):
    def __init__(
        self, d_model: int, n_heads: int, d_head: int, d_mlp: int, n_ctx: int, layernorm: bool
    ) -> None:
        super().__init__()
        # Identity keeps the module tree the same shape with and without LayerNorm.
        self.ln1: nn.Module = LayerNorm(d_model) if layernorm else nn.Identity()
        self.attn = Attention(d_model, n_heads, d_head, n_ctx)
        self.ln2: nn.Module = LayerNorm(d_model) if layernorm else nn.Identity()
        self.mlp = BlockMLP(d_model, d_mlp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        out: torch.Tensor = x + self.mlp(self.ln2(x))
        return out


class Unembed(nn.Module):
    def __init__(self, d_model: int, d_vocab_out: int) -> None:
        super().__init__()
        self.W_U = _init((d_vocab_out, d_model), d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("vd,bd->bv", self.W_U, x)


class Transformer(nn.Module):
    """Token sequence ``(batch, n_ctx)`` -> logits ``(batch, d_vocab_out)`` at the last position."""

    def __init__(
        self,
        *,
        d_vocab: int,
        d_vocab_out: int,
        n_ctx: int = 3,
        d_model: int = 128,
        n_heads: int = 4,
        d_head: int | None = None,
        d_mlp: int = 512,
        n_layers: int = 1,
        layernorm: bool = False,
    ) -> None:
        super().__init__()
        if d_head is None:
            if d_model % n_heads:
                raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
            d_head = d_model // n_heads
        self.embed = Embed(d_vocab, d_model)
        self.pos_embed = PosEmbed(n_ctx, d_model)
        self.blocks = nn.ModuleList(
            TransformerBlock(d_model, n_heads, d_head, d_mlp, n_ctx, layernorm)
            for _ in range(n_layers)
        )
        self.ln_final: nn.Module = LayerNorm(d_model) if layernorm else nn.Identity()
        self.unembed = Unembed(d_model, d_vocab_out)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        x = x + self.pos_embed(x)
        for block in self.blocks:
            x = block(x)
        return self.unembed(self.ln_final(x)[:, -1, :])  # type: ignore[no-any-return]


@register_model("transformer")
def transformer(**kwargs: int | bool | None) -> Transformer:
    """Registry entry: ``{"name": "transformer", "kwargs": {"d_vocab": 114, ...}}``."""
    return Transformer(**kwargs)  # type: ignore[arg-type]
