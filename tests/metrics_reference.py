"""Shared by the metrics tests: seeded state dicts, a lazy safetensors source, and the published
reference (visualizing-training 1.0.0) applied to the same tensors."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import safe_open

from dyntools.checkpoints import CheckpointWriter

REL_TOL = 1e-5
QKV = ("W_Q", "W_K", "W_V")


def transformer_state(
    seed: int, *, n_layers: int = 1, d_model: int = 32, n_heads: int = 4, d_mlp: int = 64
) -> dict[str, torch.Tensor]:
    """The reference transformer's layout (Nanda et al.): W_Q/W_K/W_V (heads, d_head, d_model)."""
    g = torch.Generator().manual_seed(seed)
    d_head = d_model // n_heads

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) / math.sqrt(shape[-1])

    state = {"embed.W_E": rand(23, d_model)}
    for i in range(n_layers):
        for name in QKV:
            state[f"blocks.{i}.attn.{name}"] = rand(n_heads, d_head, d_model)
        state[f"blocks.{i}.attn.W_O"] = rand(d_model, n_heads * d_head)
        state[f"blocks.{i}.mlp.W_in"] = rand(d_mlp, d_model)
        state[f"blocks.{i}.mlp.b_in"] = 0.1 * torch.randn(d_mlp, generator=g)
        state[f"blocks.{i}.mlp.W_out"] = rand(d_model, d_mlp)
        state[f"blocks.{i}.mlp.b_out"] = 0.1 * torch.randn(d_model, generator=g)
    state["unembed.W_U"] = rand(21, d_model)
    return state


def transformer_selection(state: Mapping[str, torch.Tensor]) -> tuple[list[str], dict[str, int]]:
    """The tensors the reference measures (K, Q, V per head, W_O, W_in, W_out, b_in, b_out)."""
    names = [
        n
        for n in state
        if n.startswith("blocks.") and n.rpartition(".")[2] in (*QKV, "W_O", "W_in", "W_out")
    ]
    names += [n for n in state if n.endswith((".b_in", ".b_out"))]
    heads = {n: state[n].shape[0] for n in names if n.rpartition(".")[2] in QKV}
    return names, heads


def conv_state(seed: int) -> dict[str, torch.Tensor]:
    """A small LeNet-like conv net (conv weights 4-D, linear layers 2-D, biases)."""
    g = torch.Generator().manual_seed(seed)
    shapes = {
        "conv1.weight": (6, 3, 5, 5),
        "conv1.bias": (6,),
        "conv2.weight": (16, 6, 3, 3),
        "conv2.bias": (16,),
        "fc1.weight": (32, 64),
        "fc1.bias": (32,),
        "fc2.weight": (10, 32),
        "fc2.bias": (10,),
    }
    return {name: 0.2 * torch.randn(*shape, generator=g) for name, shape in shapes.items()}


class _StateModel:
    """Enough of an nn.Module for CheckpointWriter: a fixed state dict."""

    def __init__(self, state: Mapping[str, torch.Tensor]) -> None:
        self._state = dict(state)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self._state


def write_checkpoint(run_dir: Path, state: Mapping[str, torch.Tensor], epoch: int = 0) -> Path:
    writer = CheckpointWriter(run_dir, _StateModel(state), {"task": "test"})  # type: ignore[arg-type]
    return writer.save(epoch)


class FileSource:
    """A lazy TensorSource over one safetensors file (tests' stand-in for the real readers)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with safe_open(str(path), framework="pt") as handle:
            names = list(handle.keys())
            self._shapes = {name: tuple(handle.get_slice(name).get_shape()) for name in names}

    def names(self) -> list[str]:
        return list(self._shapes)

    def shape(self, name: str) -> tuple[int, ...]:
        if name not in self._shapes:
            raise KeyError(name)
        return self._shapes[name]

    def read(self, name: str) -> torch.Tensor:
        with safe_open(str(self.path), framework="pt") as handle:
            tensor: torch.Tensor = handle.get_tensor(name)
        return tensor


def reference_values(
    state: Mapping[str, torch.Tensor], names: list[str], heads: Mapping[str, int]
) -> dict[tuple[str, str], float]:
    """(tensor label, metric) -> value from visualize_training.metrics, the published code."""
    from visualize_training import metrics as ref

    out: dict[tuple[str, str], float] = {}
    weights, biases = [], []
    with torch.no_grad():
        for name in names:
            tensor = state[name]
            if tensor.dim() == 1:
                biases.append(tensor.flatten())
                continue
            weights.append(tensor.flatten())
            if tensor.dim() == 4:
                for metric, value in ref.get_tensor_metrics(tensor).items():
                    out[(name, metric)] = value
                continue
            if name in heads:
                units = {f"{name}[head {h}]": tensor[h] for h in range(heads[name])}
            else:
                units = {name: tensor.reshape(-1, tensor.shape[-1])}
            for label, matrix in units.items():
                result = ref.get_matrix_metrics(matrix)
                if result is None:
                    continue
                for metric, value in result.items():
                    if metric != "singular_values":
                        out[(label, metric)] = value
        for suffix, pool in (("w", weights), ("b", biases)):
            if pool:
                for stat, value in ref.get_distribution_stats(torch.cat(pool)).items():
                    out[("(pooled)", f"{stat}_{suffix}")] = value
    return out


def assert_close(ours: float | None, theirs: float, what: str) -> None:
    assert ours is not None, f"{what}: ours is missing, reference has {theirs}"
    if math.isnan(theirs):
        assert math.isnan(ours), f"{what}: reference NaN, ours {ours}"
        return
    error = abs(ours - theirs) / max(abs(theirs), 1e-300)
    assert error <= REL_TOL or ours == theirs, f"{what}: ours {ours} vs reference {theirs}"
