"""Every tensor shape: fused Q/K/V split per head (checked against what the real layers compute),
Conv1d and Conv3d weights as convolutions, and a row for anything not handled."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dyntools.metrics import MappingSource, ReasonCode, compute_weight_metrics
from dyntools.metrics.matrices import Cut, Fused, plan_matrices, split_fused

transformers = pytest.importorskip("transformers")

HEADS, D_MODEL = 4, 32
D_HEAD = D_MODEL // HEADS


def test_gpt_neox_query_key_value_splits_into_each_heads_q_k_v() -> None:
    config = transformers.GPTNeoXConfig(
        vocab_size=50,
        hidden_size=D_MODEL,
        num_hidden_layers=1,
        num_attention_heads=HEADS,
        intermediate_size=64,
    )
    layer = transformers.GPTNeoXForCausalLM(config).gpt_neox.layers[0].attention.query_key_value
    x = torch.randn(5, D_MODEL)
    with torch.no_grad():
        # GPT-NeoX's own reading of its output: per head, q, k and v of d_head each.
        qkv = (x @ layer.weight.T).view(5, HEADS, 3 * D_HEAD)
        matrices = split_fused(layer.weight.detach(), HEADS, Fused.INTERLEAVED)
    assert len(matrices) == 3 * HEADS
    for h in range(HEADS):
        for c in range(3):
            expected = qkv[:, h, c * D_HEAD : (c + 1) * D_HEAD]
            assert torch.allclose(x @ matrices[3 * h + c].T, expected, atol=1e-6)


def test_gpt2_c_attn_splits_into_each_heads_q_k_v() -> None:
    config = transformers.GPT2Config(
        vocab_size=50, n_positions=16, n_embd=D_MODEL, n_layer=1, n_head=HEADS
    )
    layer = transformers.GPT2LMHeadModel(config).transformer.h[0].attn.c_attn
    x = torch.randn(5, D_MODEL)
    with torch.no_grad():
        # GPT-2's Conv1D: x @ W; then q, k, v of d_model each, then heads of d_head.
        q, k, v = (x @ layer.weight).split(D_MODEL, dim=1)
        matrices = split_fused(layer.weight.detach(), HEADS, Fused.COLUMNS)
    for c, projection in enumerate((q, k, v)):
        per_head = projection.view(5, HEADS, D_HEAD)
        for h in range(HEADS):
            assert torch.allclose(x @ matrices[3 * h + c].T, per_head[:, h], atol=1e-6)


def test_multihead_attention_in_proj_splits_into_blocks() -> None:
    attention = torch.nn.MultiheadAttention(D_MODEL, HEADS)
    weight = attention.in_proj_weight.detach()
    matrices = split_fused(weight, HEADS, Fused.BLOCKS)
    for c in range(3):
        block = weight[c * D_MODEL : (c + 1) * D_MODEL]
        for h in range(HEADS):
            assert torch.equal(matrices[3 * h + c], block[h * D_HEAD : (h + 1) * D_HEAD])


def test_fused_rows_carry_head_and_component_and_a_bad_split_is_a_row() -> None:
    weight = torch.randn(3 * D_MODEL, D_MODEL)
    result = compute_weight_metrics(
        MappingSource({"attn.qkv.weight": weight}),
        ["attn.qkv.weight"],
        metrics=["l2"],
        cuts={"attn.qkv.weight": Cut(heads=HEADS, fused=Fused.INTERLEAVED)},
    )
    assert [(r.head, r.component) for r in result.values[:4]] == [
        (0, "q"),
        (0, "k"),
        (0, "v"),
        (1, "q"),
    ]
    blocks = weight.reshape(HEADS, 3, D_HEAD, D_MODEL)
    assert result.values[4].value == pytest.approx(float(blocks[1, 1].norm()), rel=1e-6)
    planned, why = plan_matrices(
        "attn.qkv.weight", (3 * D_MODEL, D_MODEL), "attn", Cut(heads=5, fused=Fused.BLOCKS), 0
    )
    assert planned == [] and why is not None and why.code is ReasonCode.HEAD_SPLIT
    assert "do not split into q, k and v of 5 heads" in why.message


@pytest.mark.parametrize("shape", [(6, 3, 5), (6, 3, 2, 3, 2)], ids=["conv1d", "conv3d"])
def test_conv1d_and_conv3d_weights_are_convolutions(shape: tuple[int, ...]) -> None:
    weight = torch.randn(*shape)
    result = compute_weight_metrics(
        MappingSource({"c.weight": weight}), ["c.weight"], cuts={"c.weight": Cut(conv=True)}
    )
    got = {row.metric: row.value for row in result.values}
    w = weight.double().numpy()
    kernel = tuple(range(2, w.ndim))
    l1, l2 = np.abs(w).sum(axis=kernel), np.sqrt((w**2).sum(axis=kernel))
    assert got["l1"] == pytest.approx(l1.mean()) and got["l2"] == pytest.approx(l2.mean())
    assert got["code_sparsity"] == pytest.approx((l1 / l2).mean())
    sv = np.linalg.svd(w.reshape(shape[0], -1), compute_uv=False)
    assert got["reshaped_spectral"] == pytest.approx(sv[0], rel=1e-5)
    assert "trace" not in got


def test_a_shape_not_handled_is_reported_with_why() -> None:
    state = {"odd.weight": torch.randn(2, 3, 4, 5, 6), "empty.weight": torch.zeros(0, 3)}
    result = compute_weight_metrics(MappingSource(state), list(state))
    skipped = {s.tensor: s.reason for s in result.skipped}
    assert skipped["odd.weight"].code is ReasonCode.UNSUPPORTED_SHAPE
    assert not skipped["odd.weight"].expected
    assert skipped["empty.weight"].code is ReasonCode.EMPTY
    assert result.values == ()


def test_a_selected_tensor_without_matrices_makes_the_network_value_missing() -> None:
    state = {"a.weight": torch.randn(8, 8), "attn.qkv.weight": torch.randn(3 * D_MODEL, D_MODEL)}
    cuts = {"attn.qkv.weight": Cut(heads=5, fused=Fused.BLOCKS)}  # 5 heads do not divide 32
    result = compute_weight_metrics(MappingSource(state), list(state), metrics=["l2"], cuts=cuts)
    (row,) = result.network_means(["l2"])
    assert row.value is None and row.reason is not None
    assert row.reason.code is ReasonCode.HEAD_SPLIT
    assert "1 selected tensor(s) yield no matrix (e.g. attn.qkv.weight" in row.reason.message
    # Over the tensors that all yield matrices, the mean stands.
    (alone,) = result.network_means(["l2"], {"a.weight"})
    assert alone.value == pytest.approx(float(state["a.weight"].norm()), rel=1e-6)
