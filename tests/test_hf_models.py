"""Hugging Face GPT-NeoX and GPT-2 runs (built with transformers from a config, random weights,
saved as the Trainer saves checkpoints): fused attention split per head, and the polypythias
preset against EleutherAI's published definition."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import polars as pl
import pytest
import torch
from safetensors.torch import load_file

from dyntools.metrics.matrices import Cut
from dyntools.metrics.registry import PAPER_FEATURES
from dyntools.pipeline import ComputeOptions, compute
from dyntools.selection import NetworkSelection, Preset
from dyntools.store import Store

transformers = pytest.importorskip("transformers")

HEADS = 4


def _write_run(folder: Path) -> dict[int, dict[str, torch.Tensor]]:
    config = transformers.GPTNeoXConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=HEADS,
        intermediate_size=64,
        max_position_embeddings=16,
    )
    torch.manual_seed(0)
    model = transformers.GPTNeoXForCausalLM(config)
    states = {}
    for step in (10, 20):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(0.01 * torch.randn_like(parameter))
        model.save_pretrained(folder / "run" / f"checkpoint-{step}")
        # The names as the checkpoint holds them (embed_out, as published Pythia checkpoints).
        states[step] = load_file(folder / "run" / f"checkpoint-{step}" / "model.safetensors")
    return states


@pytest.fixture(scope="module")
def hf_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[int, dict[str, torch.Tensor]]]:
    folder = tmp_path_factory.mktemp("neox")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers' own notices about the config
        states = _write_run(folder)
    return folder, states


def test_fused_attention_is_split_into_each_heads_q_k_v(
    hf_run: tuple[Path, dict[int, dict[str, torch.Tensor]]],
) -> None:
    folder, _ = hf_run
    db = folder / "paper.duckdb"
    summary = compute(folder, ComputeOptions(metrics=("l2",), workers=1), db=db)
    assert summary.failed == () and summary.computed == 2
    rows = (
        Store(db)
        .read_metrics()
        .filter(pl.col("tensor") == "gpt_neox.layers.0.attention.query_key_value.weight")
    )
    assert set(zip(rows["head"], rows["component"], strict=True)) == {
        (h, c) for h in range(HEADS) for c in "qkv"
    }


def _published(state: dict[str, torch.Tensor]) -> dict[str, float]:
    """EleutherAI's training-maps features: every .weight reshaped to (rows, -1) and every
    .bias, skipping names that start with "embed" and names containing "norm"; per-matrix
    metrics by the reference functions, averaged; pooled statistics of weights and biases."""
    from visualize_training import metrics as ref

    matrices, weights, biases = [], [], []
    for name, tensor in state.items():
        if name.startswith("embed") or "norm" in name:
            continue
        if name.endswith(".weight"):
            matrices.append(tensor.reshape(tensor.shape[0], -1))
            weights.append(tensor.flatten())
        elif name.endswith(".bias"):
            biases.append(tensor.flatten())
    per_matrix = [ref.get_matrix_metrics(m) for m in matrices]
    features = {}
    for metric in PAPER_FEATURES[:8]:
        values = [m[metric] for m in per_matrix if not math.isnan(m[metric])]
        features[metric] = sum(values) / len(values)
    for suffix, pool in (("w", weights), ("b", biases)):
        for stat, value in ref.get_distribution_stats(torch.cat(pool)).items():
            features[f"{stat}_{suffix}"] = value
    return features


def test_polypythias_preset_matches_the_published_definition(
    hf_run: tuple[Path, dict[int, dict[str, torch.Tensor]]],
) -> None:
    folder, states = hf_run
    db = folder / "polypythias.duckdb"
    options = ComputeOptions(network=NetworkSelection(Preset.POLYPYTHIAS), workers=1)
    assert compute(folder, options, db=db).failed == ()
    network = Store(db).read_metrics().filter(pl.col("scope") == "network")
    assert network["params"].str.contains('"preset":"polypythias"').all()
    for step, state in states.items():
        ours = dict(network.filter(pl.col("step") == step).select("metric", "value").iter_rows())
        for metric, expected in _published(state).items():
            assert ours[metric] == pytest.approx(expected, rel=1e-4), (step, metric)


@pytest.fixture(scope="module")
def gpt2_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """GPT-2's layer norms are ln_1, ln_2 and ln_f: their 1-D .weight names hold no "norm"."""
    folder = tmp_path_factory.mktemp("gpt2")
    config = transformers.GPT2Config(
        vocab_size=50,
        n_positions=16,
        n_embd=32,
        n_layer=2,
        n_head=HEADS,
        bos_token_id=0,
        eos_token_id=0,
    )
    torch.manual_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = transformers.GPT2LMHeadModel(config)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(0.05 * torch.randn_like(parameter))
        model.save_pretrained(folder / "run" / "checkpoint-5")
    return folder, load_file(folder / "run" / "checkpoint-5" / "model.safetensors")


def test_polypythias_takes_a_1d_weight_as_an_n_by_1_matrix(
    gpt2_run: tuple[Path, dict[str, torch.Tensor]],
) -> None:
    folder, state = gpt2_run
    assert state["transformer.h.0.ln_1.weight"].dim() == 1
    db = folder / "polypythias.duckdb"
    options = ComputeOptions(network=NetworkSelection(Preset.POLYPYTHIAS), workers=1)
    assert compute(folder, options, db=db).failed == ()
    network = Store(db).read_metrics().filter(pl.col("scope") == "network")
    ours = dict(network.select("metric", "value").iter_rows())
    with warnings.catch_warnings():
        # The reference's torch.var of an (n, 1) matrix's one singular value warns (and gives
        # NaN, left out of the mean).
        warnings.simplefilter("ignore", UserWarning)
        published = _published(state)
    for metric, expected in published.items():
        assert ours[metric] == pytest.approx(expected, rel=1e-4), metric


def test_polypythias_cuts_every_weight_by_rows_and_pools_biases() -> None:
    selection = NetworkSelection(Preset.POLYPYTHIAS)
    assert selection.cut("h.0.ln_1.weight", (32,), Cut()) == Cut(rows=True)
    assert selection.cut("h.0.attn.c_attn.weight", (32, 96), Cut(heads=4)) == Cut(rows=True)
    assert selection.cut("h.0.attn.c_attn.bias", (96,), Cut()) == Cut()
    assert NetworkSelection().cut("h.0.ln_1.weight", (32,), Cut()) == Cut()
