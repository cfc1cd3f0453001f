"""What each tensor of a checkpoint is: its layer (attention projection, MLP/linear, convolution,
residual shortcut, embedding, positional embedding, unembedding, normalization, other) and its
part (weight, bias, normalization scale or shift, buffer).

The type of the owning module decides when the model can be rebuilt (``module_types``: module
path -> class name, e.g. ``Linear``, ``Conv2d``, ``LayerNorm``); otherwise documented name and
shape rules do (docs/metrics.md, "Tensor roles"), covering the sample models, GPT-2,
GPT-NeoX/Pythia, BERT, Llama-style models and torchvision-style ResNets. A tensor no rule
recognises is ``other``, and is never pooled with the weights. Also which module classes are
activation functions (``is_activation_function``). A leaf: imports nothing else of dyntools.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Protocol


class Layer(StrEnum):
    """The kind of layer a tensor belongs to."""

    ATTENTION_Q = "attention_q"
    ATTENTION_K = "attention_k"
    ATTENTION_V = "attention_v"
    ATTENTION_QKV = "attention_qkv"  # Q, K and V fused in one tensor (GPT-NeoX, GPT-2)
    ATTENTION_OUT = "attention_out"
    LINEAR = "linear"  # MLP and other fully connected layers
    CONV = "conv"
    SHORTCUT = "shortcut"  # a residual connection's downsample convolution
    EMBEDDING = "embedding"
    POSITIONAL = "positional"
    UNEMBEDDING = "unembedding"
    NORM = "norm"  # LayerNorm, BatchNorm, RMSNorm, GroupNorm
    OTHER = "other"


class Part(StrEnum):
    """Which of its layer's tensors it is."""

    WEIGHT = "weight"
    BIAS = "bias"
    SCALE = "scale"  # a normalization's weight
    SHIFT = "shift"  # a normalization's bias
    BUFFER = "buffer"  # running statistics, masks, counters: not learned


@dataclass(frozen=True)
class Role:
    layer: Layer
    part: Part

    def __str__(self) -> str:
        return f"{self.layer.value} {self.part.value}"


# Q, K and V, separate or fused: the projections the reference splits per head.
QKV: Final = frozenset(
    {Layer.ATTENTION_Q, Layer.ATTENTION_K, Layer.ATTENTION_V, Layer.ATTENTION_QKV}
)
# The layers whose matrices (and biases) the paper's features take: attention projections,
# MLP/linear layers and convolutions; never embeddings, the unembedding, normalization or
# residual shortcuts.
PAPER_LAYERS: Final = QKV | {Layer.ATTENTION_OUT, Layer.LINEAR, Layer.CONV}
# Name rules give these; a module type may refine them (the others it leaves alone: an
# attention projection or the unembedding is a Linear too).
_GENERIC: Final = frozenset({Layer.LINEAR, Layer.CONV, Layer.OTHER})


class Classifiable(Protocol):
    """What ``classify`` reads of a tensor: its name, shape and whether it is floating point
    (``checkpoints.TensorInfo`` fits). Not ``hookpoints.TensorLike``, which also needs the dtype
    name: both modules are in layer 1 and may not import each other."""

    @property
    def name(self) -> str: ...
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def is_float(self) -> bool: ...


def _part_pattern(*names: str) -> re.Pattern[str]:
    """Matches a path whose last part is one of ``names``."""
    return re.compile(r"(^|\.)(" + "|".join(names) + r")$")


_BUFFERS: Final = frozenset(
    {"running_mean", "running_var", "num_batches_tracked", "inv_freq", "masked_bias"}
)
_RUNNING: Final = frozenset({"running_mean", "running_var"})
_NORM: Final = _part_pattern(r"ln\w*", r"\w*norm\w*", r"bn\d*", r"batch_?norm\d*")
_SHORTCUT: Final = re.compile(r"(^|\.)(shortcut|downsample)(\.|$)")
_POSITIONAL: Final = _part_pattern(
    "pos_embed", "wpe", "position_embeddings", "embed_positions", "w_pos"
)
# BERT's MLM head holds the vocabulary-sized bias of its (tied) decoder as predictions.bias.
_UNEMBEDDING: Final = _part_pattern(
    "unembed", "lm_head", "embed_out", "w_u", "decoder", "predictions"
)
_EMBEDDING: Final = _part_pattern(
    "embed",
    "embeddings",  # Mamba's backbone.embeddings
    "embed_in",
    "embed_tokens",
    "wte",
    "word_embeddings",
    "tok_embeddings",
    "token_type_embeddings",
    "w_e",
)
_PROJECTIONS: Final[tuple[tuple[re.Pattern[str], Layer], ...]] = (
    (_part_pattern("query_key_value", "c_attn", "qkv", "wqkv", "in_proj"), Layer.ATTENTION_QKV),
    (_part_pattern("q_proj", "query", "q", "wq", "w_q"), Layer.ATTENTION_Q),
    (_part_pattern("k_proj", "key", "k", "wk", "w_k"), Layer.ATTENTION_K),
    (_part_pattern("v_proj", "value", "v", "wv", "w_v"), Layer.ATTENTION_V),
)
# A module path part ending in attn or attention (attn, self_attn, multihead_attn, encoder_attn,
# c_attn, attention, self_attention, T5's SelfAttention): Q, K, V and the output are named
# inside one, so Mamba's mixer.in_proj is no fused Q/K/V.
_ATTENTION: Final = re.compile(r"(^|\.)\w*(attn|attention)(\.|$)")
# torch.nn.MultiheadAttention's own parameters: in_proj_weight (3*embed_dim, embed_dim) stacks
# the rows [q; k; v]; q/k/v_proj_weight replace it when kdim or vdim differ from embed_dim.
_MHA_LEAVES: Final[Mapping[str, tuple[Layer, Part]]] = {
    "in_proj_weight": (Layer.ATTENTION_QKV, Part.WEIGHT),
    "in_proj_bias": (Layer.ATTENTION_QKV, Part.BIAS),
    "q_proj_weight": (Layer.ATTENTION_Q, Part.WEIGHT),
    "k_proj_weight": (Layer.ATTENTION_K, Part.WEIGHT),
    "v_proj_weight": (Layer.ATTENTION_V, Part.WEIGHT),
}
_MHA_TYPE: Final = re.compile(r"MultiheadAttention$")
_OUT: Final = _part_pattern("out_proj", "o_proj", "c_proj", "dense", "wo", "w_o", "output")
# Leaf names of the sample transformer's raw parameters: W_Q, W_in, b_in, w (LayerNorm), ...
_RAW_WEIGHT: Final = re.compile(r"^w(_\w+)?$")
_RAW_BIAS: Final = re.compile(r"^b(_\w+)?$")
_WEIGHT_LEAVES: Final = frozenset({"weight", "kernel", "scale", "gamma"})
_BIAS_LEAVES: Final = frozenset({"bias", "beta", "shift"})

# Module class name -> layer, when the model can be rebuilt.
_TYPES: Final[tuple[tuple[re.Pattern[str], Layer], ...]] = (
    (re.compile(r"norm", re.IGNORECASE), Layer.NORM),
    (re.compile(r"^embedding", re.IGNORECASE), Layer.EMBEDDING),
    # torch's Conv1d, Conv2d, Conv3d (not Hugging Face's Conv1D, a Linear: next rule).
    (re.compile(r"^Conv[123]d$"), Layer.CONV),
    # Hugging Face's Conv1D is a Linear; so is MultiheadAttention's out_proj.
    (re.compile(r"^(Linear|Conv1D|NonDynamicallyQuantizableLinear)$"), Layer.LINEAR),
)


# Classes of activation functions in torch (ReLU, GELU, SiLU, Tanh, ...) and Hugging Face
# transformers (NewGELUActivation, ...): their outputs are where units die. One list for the
# app's views (stored module types) and dyntools.hooks (live modules). Not PixelUnshuffle.
ACTIVATION_FUNCTION: Final = re.compile(
    r"ReLU|GELU|SiLU|Swish|Mish|Tanh|Sigmoid|(?<!Pix)ELU|Softplus|Softsign|Hardswish|Activation$",
    re.IGNORECASE,
)


def is_activation_function(module_type: str) -> bool:
    """Whether a module class name (``type(module).__name__``) is an activation function."""
    return ACTIVATION_FUNCTION.search(module_type) is not None


def _is_bias(leaf: str) -> bool:
    return leaf in _BIAS_LEAVES or bool(_RAW_BIAS.match(leaf))


def _is_weight(leaf: str) -> bool:
    return leaf in _WEIGHT_LEAVES or bool(_RAW_WEIGHT.match(leaf))


def _layer_by_name(owner: str, leaf: str, rank: int) -> Layer:
    # A raw parameter (attn.W_Q) names its projection itself.
    path = f"{owner}.{leaf}" if _RAW_WEIGHT.match(leaf) and leaf != "w" else owner
    if _NORM.search(owner):
        return Layer.NORM
    if _SHORTCUT.search(owner):
        return Layer.SHORTCUT
    for pattern, layer in (
        (_POSITIONAL, Layer.POSITIONAL),
        (_UNEMBEDDING, Layer.UNEMBEDDING),
        (_EMBEDDING, Layer.EMBEDDING),
    ):
        if pattern.search(path):
            return layer
    if _ATTENTION.search(owner):
        for pattern, layer in _PROJECTIONS:
            if pattern.search(path):
                return layer
        if _OUT.search(path):
            return Layer.ATTENTION_OUT
    if not (_is_weight(leaf) or _is_bias(leaf)):
        return Layer.OTHER
    return Layer.CONV if rank >= 3 else Layer.LINEAR


def _layer_by_type(module_type: str) -> Layer | None:
    for pattern, layer in _TYPES:
        if pattern.search(module_type):
            return layer
    return None


def classify(
    tensors: Iterable[Classifiable], module_types: Mapping[str, str] | None = None
) -> dict[str, Role]:
    """The role of every tensor, by name, in the given order.

    Rules, in order: a non-float tensor, or running statistics, is a buffer; torch's
    MultiheadAttention parameters (``in_proj_weight``/``in_proj_bias``: fused Q/K/V weight and
    bias); a module with running statistics, or named like a normalization, is a normalization
    (weight: scale, bias: shift); a module type refines a generic layer (linear, conv, other),
    and the ``out_proj`` of a MultiheadAttention module is its attention output; then the name
    rules (shortcut, positional, unembedding, embedding; inside an attention module Q/K/V or
    fused QKV, attention output), and the rank (>= 3: convolution). A bias takes the layer of
    its module's weight; a bias of a module with no weight matrix is ``other`` unless a name
    rule says what it is (BERT's ``cls.predictions.bias``: the unembedding's); a bias of rank
    >= 2 is a buffer (an attention mask); a 1-D weight outside a normalization is ``other``.
    """
    entries = list(tensors)
    types = dict(module_types or {})
    split = {t.name: t.name.rpartition(".")[::2] for t in entries}
    normed = {split[t.name][0] for t in entries if split[t.name][1] in _RUNNING}
    layers: dict[str, Layer] = {}
    for tensor in entries:
        owner, leaf = split[tensor.name]
        low_owner, low_leaf = owner.lower(), leaf.lower()
        layer = (
            Layer.NORM
            if owner in normed
            else _layer_by_name(low_owner, low_leaf, len(tensor.shape))
        )
        typed = _layer_by_type(types[owner]) if owner in types else None
        if typed is not None and (layer in _GENERIC or typed is Layer.NORM):
            layer = typed
        parent, _, last = owner.rpartition(".")
        if last == "out_proj" and _MHA_TYPE.search(types.get(parent, "")):
            layer = Layer.ATTENTION_OUT  # a NonDynamicallyQuantizableLinear, whatever its path
        layers[tensor.name] = layer
    weight_layer = {
        split[t.name][0]: layers[t.name]
        for t in entries
        if _is_weight(split[t.name][1].lower()) and len(t.shape) >= 2
    }
    roles: dict[str, Role] = {}
    for tensor in entries:
        owner, leaf = split[tensor.name]
        low_leaf = leaf.lower()
        layer = layers[tensor.name]
        rank = len(tensor.shape)
        mha = _MHA_LEAVES.get(low_leaf)
        if not tensor.is_float or low_leaf in _BUFFERS:
            roles[tensor.name] = Role(Layer.NORM if owner in normed else Layer.OTHER, Part.BUFFER)
        elif mha is not None and rank == (2 if mha[1] is Part.WEIGHT else 1):
            roles[tensor.name] = Role(*mha)
        elif layer is Layer.NORM:
            roles[tensor.name] = Role(layer, Part.SHIFT if _is_bias(low_leaf) else Part.SCALE)
        elif _is_bias(low_leaf):
            bias = rank == 1
            # With no weight matrix beside it, a bias is only what a name rule says it is.
            alone = Layer.OTHER if layer in _GENERIC else layer
            roles[tensor.name] = Role(
                weight_layer.get(owner, alone) if bias else Layer.OTHER,
                Part.BIAS if bias else Part.BUFFER,
            )
        elif rank == 1:
            roles[tensor.name] = Role(Layer.OTHER, Part.WEIGHT)
        else:
            roles[tensor.name] = Role(layer, Part.WEIGHT)
    return roles
