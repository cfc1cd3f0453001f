"""How each tensor of a run is measured: its cut into matrices (from its role) and whether it
enters the network-scope values (the paper's features), by preset.

Presets of the network selection (docs/metrics.md, "Presets"):

- ``paper`` (the default): the weight matrices of attention projections (Q, K, V split per head
  where the layout has heads, a fused Q/K/V split into per-head Q, K and V, the output not
  split), MLP/linear layers and convolutions, and the biases of those layers; never embeddings,
  positional embeddings, the unembedding, normalization layers or residual shortcuts.
- ``polypythias``: EleutherAI's training-maps selection, exactly as published: every ``.weight``
  reshaped to (rows, -1) and every ``.bias``, skipping names that start with ``embed`` and
  names containing ``norm`` (buffers are not parameters, so they never count).
- ``custom``: the tensors matching ``--paper-tensors`` patterns, or of ``--paper-layers``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from dyntools.hookpoints import glob_to_regex
from dyntools.metrics.kinds import Pool, params_key
from dyntools.metrics.matrices import Cut, Fused
from dyntools.roles import PAPER_LAYERS, QKV, Layer, Part, Role


class Preset(StrEnum):
    PAPER = "paper"
    POLYPYTHIAS = "polypythias"
    CUSTOM = "custom"


@dataclass(frozen=True)
class NetworkSelection:
    """Which tensors the network-scope values are computed over (and how they are cut)."""

    preset: Preset = Preset.PAPER
    tensors: tuple[str, ...] = ()  # custom: glob patterns over tensor names (re: for regexes)
    layers: tuple[Layer, ...] = ()  # custom: these layers' weights and biases

    def __post_init__(self) -> None:
        if Layer.NORM in self.layers:
            raise ValueError(
                "normalization layers cannot enter the paper features: their scales are never "
                "pooled with the weights, nor their shifts with the biases"
            )
        custom = bool(self.tensors or self.layers)
        if custom != (self.preset is Preset.CUSTOM):
            raise ValueError(
                "a custom network selection names tensors or layers, and only a custom one "
                f"does (preset {self.preset.value!r}, tensors {list(self.tensors)}, layers "
                f"{[layer.value for layer in self.layers]})"
            )

    @classmethod
    def from_description(cls, described: Mapping[str, Any]) -> NetworkSelection:
        """The selection ``describe`` (or a stored params text, hook points aside) describes."""
        return cls(
            preset=Preset(described.get("preset", Preset.PAPER)),
            tensors=tuple(described.get("tensors", ())),
            layers=tuple(Layer(layer) for layer in described.get("layers", ())),
        )

    def describe(self) -> dict[str, Any]:
        """What the selection is, as stored in the params of its values (with hook points)."""
        described: dict[str, Any] = {"preset": self.preset.value}
        if self.tensors:
            described["tensors"] = list(self.tensors)
        if self.layers:
            described["layers"] = [layer.value for layer in self.layers]
        return described

    def params(self, hook_points: Sequence[str]) -> str:
        """The params text of the network values over ``hook_points``."""
        return params_key({**self.describe(), "hook_points": sorted(hook_points)})

    def includes(self, name: str, role: Role) -> bool:
        """Whether tensor ``name`` (of ``role``) enters the network values."""
        if role.part is Part.BUFFER:
            return False
        if self.preset is Preset.POLYPYTHIAS:
            leaf = name.rpartition(".")[2]
            return (
                leaf in ("weight", "bias") and not name.startswith("embed") and "norm" not in name
            )
        if role.part not in (Part.WEIGHT, Part.BIAS):
            return False
        if self.preset is Preset.PAPER:
            return role.layer in PAPER_LAYERS
        return role.layer in self.layers or any(p.fullmatch(name) for p in self._patterns)

    @property
    def _patterns(self) -> list[re.Pattern[str]]:
        return [
            re.compile(t[3:] if t.startswith("re:") else glob_to_regex(t)) for t in self.tensors
        ]

    def pool(self, name: str, role: Role) -> Pool | None:
        """The pooled set tensor ``name`` joins, if it enters the network values."""
        if not self.includes(name, role):
            return None
        if self.preset is Preset.POLYPYTHIAS:
            return Pool.WEIGHTS if name.endswith(".weight") else Pool.BIASES
        return Pool.WEIGHTS if role.part is Part.WEIGHT else Pool.BIASES

    @property
    def own_cuts(self) -> bool:
        """Whether its matrices differ from the per-hook-point ones (computed apart)."""
        return self.preset is Preset.POLYPYTHIAS

    def cut(self, name: str, shape: tuple[int, ...], default: Cut) -> Cut:
        """How selected tensor ``name`` is cut for the network values.

        polypythias reshapes every ``.weight`` to (rows, -1), as the published code does: a 1-D
        ``.weight`` (a scale whose name has no ``norm``, GPT-2's ``ln_1.weight``) becomes an
        (n, 1) matrix; a ``.bias`` is pooled only."""
        if self.preset is not Preset.POLYPYTHIAS or not shape:
            return default
        return Cut(rows=True) if name.endswith(".weight") else default


# Leaf of a fused Q/K/V tensor's module -> how Q, K and V share it.
_FUSED_LAYOUTS: Mapping[str, Fused] = {
    "query_key_value": Fused.INTERLEAVED,
    "c_attn": Fused.COLUMNS,
}


def head_count(config: Mapping[str, Any]) -> int | None:
    """The attention head count a run's configuration states (Hugging Face config.json, or
    run.json's model kwargs), if any."""
    kwargs = (
        config.get("model", {}).get("kwargs", {}) if isinstance(config.get("model"), dict) else {}
    )
    for source in (config, kwargs):
        # Hugging Face's names, then torch's (nn.Transformer* take nhead, MultiheadAttention
        # num_heads).
        for key in ("num_attention_heads", "n_head", "n_heads", "nhead", "num_heads"):
            value = source.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def default_cut(
    name: str, shape: tuple[int, ...], role: Role, heads: int | None, split_heads: bool
) -> Cut:
    """How a tensor is cut into matrices by default: Q, K and V per head where the layout has
    heads (3-D weights; fused Q/K/V with the configuration's head count), convolution weights
    of any rank as convolutions, everything else by its rank.

    torch's MultiheadAttention ``in_proj_weight`` holds the rows [q; k; v] of embed_dim each
    whatever the head count: with no head count in the configuration it is split into q, k
    and v unsplit per head (one matrix each, head 0 standing for all heads), as the reference
    takes BERT's separate query, key and value. Other fused layouts need the head count (an
    error row without it)."""
    if role.part is not Part.WEIGHT:
        return Cut()
    if role.layer in (Layer.CONV, Layer.SHORTCUT):
        return Cut(conv=True)
    if not split_heads or role.layer not in QKV:
        return Cut()
    if role.layer is Layer.ATTENTION_QKV and len(shape) == 2:
        owner, _, leaf = name.rpartition(".")
        if leaf.lower() == "in_proj_weight":
            return Cut(heads=heads or 1, fused=Fused.BLOCKS)
        layout = _FUSED_LAYOUTS.get(owner.rpartition(".")[2], Fused.BLOCKS)
        return Cut(heads=heads, fused=layout)
    if len(shape) == 3:
        return Cut(heads=shape[0])
    return Cut()


@dataclass(frozen=True)
class TensorPlan:
    """Every metric input tensor of a run: its role and cut, and the network selection."""

    roles: Mapping[str, Role]
    cuts: Mapping[str, Cut]
    selection: NetworkSelection = field(default_factory=NetworkSelection)

    def network_pools(self) -> dict[str, Pool | None]:
        return {name: self.selection.pool(name, role) for name, role in self.roles.items()}

    def network_tensors(self) -> list[str]:
        return [name for name, role in self.roles.items() if self.selection.includes(name, role)]
