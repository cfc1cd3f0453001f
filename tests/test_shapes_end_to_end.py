"""Tensor shapes end to end: real checkpoint folders computed by ``dyntools.pipeline.compute`` and
read back from the DuckDB store, against references built here with numpy.

- Conv1d and Conv3d weights (3-D and 5-D) get the convolution metrics: per-kernel ``l1``,
  ``l2``, ``code_sparsity`` and the ``reshaped_*`` spectral metrics of the (O, -1) matrix.
- GPT-2's fused ``c_attn`` (a Conv1D, in x out, columns [q | k | v]) is split into each head's
  q, k and v with the head count of the run's ``config.json`` (``n_head``).
- The checkpoints table records each checkpoint's stored dtype (bfloat16 stays bfloat16).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch
from safetensors.torch import load_file

from dyntools.checkpoints import CheckpointWriter
from dyntools.pipeline import ComputeOptions, compute
from dyntools.store import Store

# docs/metrics.md, "Every tensor shape": what a convolution weight gets, and what it does not.
KERNEL_METRICS = {"l1", "l2", "code_sparsity"}
RESHAPED_METRICS = {
    "reshaped_spectral",
    "reshaped_mean_singular_value",
    "reshaped_var_singular_value",
    "reshaped_stable_rank",
    "reshaped_log_frobenius",
    "reshaped_log_spectral",
    "reshaped_effective_rank",
}
TEMPORAL_METRICS = {"relative_update", "cosine_to_init"}


class Convolutions(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1d = torch.nn.Conv1d(2, 3, kernel_size=4)  # weight (3, 2, 4)
        self.conv3d = torch.nn.Conv3d(2, 3, kernel_size=(2, 3, 2))  # weight (3, 2, 2, 3, 2)
        self.fc = torch.nn.Linear(5, 2)


def _write_run(folder: Path, model: torch.nn.Module, epochs: int = 2) -> None:
    writer = CheckpointWriter(folder, model, {"task": "shapes", "seed": 0})
    for epoch in range(epochs):
        if epoch:
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter.add_(0.1 * torch.randn_like(parameter))
        writer.save(epoch, train_loss=1.0 / (epoch + 1))


def _rows(metrics: pl.DataFrame, tensor: str, step: int) -> pl.DataFrame:
    return metrics.filter(
        (pl.col("scope") == "tensor") & (pl.col("tensor") == tensor) & (pl.col("step") == step)
    )


def _conv_reference(weight: np.ndarray) -> dict[str, float]:
    """The convolution metrics of an (O, I, *kernel) weight, from its definition: per-kernel
    norms averaged over the O*I kernels; singular values of the (O, -1) reshaping."""
    kernels = weight.reshape(weight.shape[0] * weight.shape[1], -1)
    l1 = np.abs(kernels).sum(axis=1)
    l2 = np.sqrt((kernels**2).sum(axis=1))
    matrix = weight.reshape(weight.shape[0], -1)
    singular = np.linalg.svd(matrix, compute_uv=False)
    return {
        "l1": float(l1.mean()),
        "l2": float(l2.mean()),
        "code_sparsity": float((l1 / l2).mean()),
        "reshaped_spectral": float(singular[0]),
        "reshaped_log_frobenius": float(np.log10(np.sum(matrix**2))),
        "reshaped_stable_rank": float(np.sum(singular**2) / singular[0] ** 2),
    }


def test_conv1d_and_conv3d_weights_get_the_convolution_metrics(tmp_path: Path) -> None:
    model = Convolutions()
    _write_run(tmp_path / "seed0", model)
    db = tmp_path / "db.duckdb"
    summary = compute(tmp_path, ComputeOptions(workers=1), db=db)
    assert (summary.computed, summary.failed) == (2, ())
    metrics = Store(db).read_metrics()
    for name, rank in (("conv1d", 3), ("conv3d", 5)):
        weight = getattr(model, name).weight.detach().numpy().astype(np.float64)
        assert weight.ndim == rank
        rows = _rows(metrics, f"{name}.weight", step=1)
        # Convolution metrics only: no trace, no singular values of an unreshaped matrix.
        assert set(rows["metric"]) == KERNEL_METRICS | RESHAPED_METRICS | TEMPORAL_METRICS
        assert rows["hook_point"].unique().to_list() == [name]
        assert rows["head"].null_count() == rows.height  # one weight, not split per head
        assert set(rows["component"]) == {""}
        values = dict(rows.select("metric", "value").iter_rows())
        for metric, expected in _conv_reference(weight).items():
            assert values[metric] == pytest.approx(expected, rel=1e-5), (name, metric)
        # The Frobenius norm of the (O, -1) matrix, as reshaped_log_frobenius holds it.
        frobenius = np.linalg.norm(weight.reshape(weight.shape[0], -1))
        assert 10 ** (values["reshaped_log_frobenius"] / 2) == pytest.approx(frobenius, rel=1e-5)
        # The hook point owns one weight (its bias is 1-D): its value is the weight's.
        hook = metrics.filter(
            (pl.col("scope") == "hook_point")
            & (pl.col("hook_point") == name)
            & (pl.col("step") == 1)
        )
        assert dict(hook.select("metric", "value").iter_rows()) == values
    # The linear layer beside them keeps its matrix metrics.
    fc = _rows(metrics, "fc.weight", step=1)
    spectral = np.linalg.svd(model.fc.weight.detach().numpy().astype(np.float64))[1][0]
    assert fc.filter(pl.col("metric") == "spectral")["value"].item() == pytest.approx(
        spectral, rel=1e-5
    )


# GPT-2 ----------------------------------------------------------------------------------------

N_EMBD = 32
C_ATTN = "transformer.h.0.attn.c_attn.weight"


def _write_gpt2_run(folder: Path, n_head: int) -> Any:
    """A GPT-2 Trainer checkpoint: random weights from a config, saved as the Trainer saves."""
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(
        n_layer=1,
        n_head=n_head,
        n_embd=N_EMBD,
        vocab_size=50,
        n_positions=16,
        bos_token_id=0,
        eos_token_id=0,
    )
    torch.manual_seed(n_head)
    checkpoint = folder / "run" / "checkpoint-1"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers' notices about the config
        model = transformers.GPT2LMHeadModel(config)
        model.save_pretrained(checkpoint, safe_serialization=True)
    state = {"global_step": 1, "epoch": 1.0, "log_history": []}
    (checkpoint / "trainer_state.json").write_text(json.dumps(state))
    return model


@pytest.mark.parametrize("n_head", [4, 2])
def test_gpt2_c_attn_is_split_into_each_heads_q_k_v(tmp_path: Path, n_head: int) -> None:
    model = _write_gpt2_run(tmp_path, n_head)
    db = tmp_path / "db.duckdb"
    summary = compute(tmp_path, ComputeOptions(metrics=("l2", "spectral"), workers=1), db=db)
    assert (summary.computed, summary.failed) == (1, ())
    assert Store(db).read_checkpoints().select("run_id", "step", "epoch").rows() == [
        ("run", 1, 1.0)
    ]
    rows = _rows(Store(db).read_metrics(), C_ATTN, step=1)
    # The head count is the config's n_head: every head's q, k and v, nothing else.
    assert sorted(set(zip(rows["head"], rows["component"], strict=True))) == sorted(
        (h, c) for h in range(n_head) for c in "qkv"
    )
    assert rows.height == 2 * 3 * n_head  # l2 and spectral of each matrix, once

    # The reference, built from the saved file: Conv1D's weight is (in, 3 * n_embd), the
    # columns [q | k | v]; head h of each is its columns h*d:(h+1)*d.
    weight = load_file(tmp_path / "run" / "checkpoint-1" / "model.safetensors")[C_ATTN]
    w = weight.numpy().astype(np.float64)
    assert w.shape == (N_EMBD, 3 * N_EMBD)
    d = N_EMBD // n_head
    blocks = {c: w[:, i * N_EMBD : (i + 1) * N_EMBD] for i, c in enumerate("qkv")}

    # That reading is GPT-2's own: its layer's output, split into q, k, v and heads.
    layer = model.transformer.h[0].attn.c_attn
    x = torch.randn(3, N_EMBD, dtype=torch.float64)
    with torch.no_grad():
        out = layer.to(torch.float64)(x).numpy()
    bias = layer.bias.detach().numpy()
    for i, c in enumerate("qkv"):
        for h in range(n_head):
            columns = slice(i * N_EMBD + h * d, i * N_EMBD + (h + 1) * d)
            expected = x.numpy() @ blocks[c][:, h * d : (h + 1) * d] + bias[columns]
            np.testing.assert_allclose(out[:, columns], expected, rtol=1e-5, atol=1e-6)

    for (h, c, metric), value in zip(
        rows.select("head", "component", "metric").rows(), rows["value"], strict=True
    ):
        matrix = blocks[c][:, h * d : (h + 1) * d]
        expected = (
            np.linalg.norm(matrix) if metric == "l2" else np.linalg.svd(matrix, compute_uv=False)[0]
        )
        assert value == pytest.approx(expected, rel=1e-5), (h, c, metric)


# Stored dtypes -------------------------------------------------------------------------------


def test_the_checkpoints_table_records_the_stored_dtype(tmp_path: Path) -> None:
    _write_run(tmp_path / "bf16", Convolutions().to(torch.bfloat16))
    full = Convolutions()
    _write_run(tmp_path / "f32", full)
    db = tmp_path / "db.duckdb"
    summary = compute(tmp_path, ComputeOptions(metrics=("l2",), workers=1), db=db)
    assert (summary.computed, summary.failed) == (4, ())
    checkpoints = Store(db).read_checkpoints()
    assert checkpoints.select("run_id", "step", "dtype").rows() == [
        ("bf16", 0, "bfloat16"),
        ("bf16", 1, "bfloat16"),
        ("f32", 0, "float32"),
        ("f32", 1, "float32"),
    ]
    # The bfloat16 weights are measured as stored (upcast exactly, never rounded again).
    stored = load_file(tmp_path / "bf16" / "epoch_00001.safetensors")["fc.weight"]
    assert stored.dtype == torch.bfloat16
    l2 = _rows(Store(db).read_metrics().filter(pl.col("run_id") == "bf16"), "fc.weight", 1)
    assert l2["value"].item() == pytest.approx(
        np.linalg.norm(stored.to(torch.float64).numpy()), rel=1e-6
    )
