"""Edge cases of the per-matrix weight metrics, batching, conv handling and head splitting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from metrics_reference import assert_close

from dyntools.metrics import (
    MappingSource,
    ReasonCode,
    compute_weight_metrics,
    singular_values,
    split_heads,
)
from dyntools.metrics.matrices import Cut
from dyntools.metrics.spectrum import matrix_batch


def _values(state: dict[str, torch.Tensor], **kwargs: object) -> dict[tuple[str, str], object]:
    """Rows by (tensor, metric); a head's matrix is ``TENSOR[head H]`` here."""
    result = compute_weight_metrics(MappingSource(state), list(state), **kwargs)  # type: ignore[arg-type]
    return {
        (row.tensor if row.head is None else f"{row.tensor}[head {row.head}]", row.metric): row
        for row in result.values
    }


def test_nan_and_inf_matrices_are_missing_with_a_reason() -> None:
    bad = torch.randn(4, 5)
    bad[0, 0] = float("nan")
    worse = torch.randn(4, 5)
    worse[1, 1] = float("inf")
    rows = _values({"a.weight": bad, "b.weight": worse, "c.weight": torch.randn(4, 5)})
    for tensor, word in (("a.weight", "1 NaN"), ("b.weight", "1 inf")):
        for metric in ("l1", "spectral", "var_singular_value", "effective_rank"):
            row = rows[(tensor, metric)]
            assert row.value is None and word in row.reason.message  # type: ignore[attr-defined]
    assert rows[("c.weight", "l1")].value is not None  # type: ignore[attr-defined]


def test_zero_matrix_gives_zero_sparsities_and_undefined_logs() -> None:
    rows = _values({"z.weight": torch.zeros(3, 4)})
    assert rows[("z.weight", "code_sparsity")].value == 0.0  # type: ignore[attr-defined]
    assert rows[("z.weight", "computational_sparsity")].value == 0.0  # type: ignore[attr-defined]
    assert rows[("z.weight", "spectral")].value == 0.0  # type: ignore[attr-defined]
    for metric in ("log_frobenius", "log_spectral", "stable_rank", "effective_rank"):
        row = rows[("z.weight", metric)]
        assert row.value is None and "zero matrix" in row.reason.message  # type: ignore[attr-defined]


def test_row_vector_has_one_singular_value_and_nan_variance() -> None:
    row_vector = torch.tensor([[3.0, 4.0]])
    rows = _values({"r.weight": row_vector})
    var = rows[("r.weight", "var_singular_value")]
    assert math.isnan(var.value) and "one singular value" in var.reason.message  # type: ignore[attr-defined]
    assert rows[("r.weight", "spectral")].value == pytest.approx(5.0)  # type: ignore[attr-defined]
    assert rows[("r.weight", "mean_singular_value")].value == pytest.approx(5.0)  # type: ignore[attr-defined]
    assert rows[("r.weight", "trace")].value == 3.0  # type: ignore[attr-defined]


def test_rectangular_trace_and_hand_worked_extras() -> None:
    w = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    rows = _values({"w.weight": w})
    got = {metric: row.value for (_, metric), row in rows.items()}  # type: ignore[attr-defined]
    assert got["trace"] == 3.0
    assert got["l1"] == 3.0 and got["l2"] == pytest.approx(math.sqrt(5))
    assert got["stable_rank"] == pytest.approx(5 / 4)
    assert got["log_frobenius"] == pytest.approx(math.log10(5))
    assert got["log_spectral"] == pytest.approx(math.log10(4))
    p = np.array([2 / 3, 1 / 3])
    assert got["effective_rank"] == pytest.approx(math.exp(-(p * np.log(p)).sum()))
    assert got["var_singular_value"] == pytest.approx(0.5)
    assert got["computational_sparsity"] == pytest.approx(1.5)


def test_tiny_singular_values_are_zeroed_but_kept() -> None:
    w = torch.diag(torch.tensor([1.0, 1e-6, 2e-5]))
    batch = matrix_batch(w[None], with_svd=True)
    assert batch.singular_values is not None
    assert batch.singular_values[0].tolist() == pytest.approx([1.0, 2e-5, 0.0], rel=1e-4)
    rows = _values({"d.weight": w})
    assert rows[("d.weight", "mean_singular_value")].value == pytest.approx((1 + 2e-5) / 3)  # type: ignore[attr-defined]


def test_bf16_weights_are_upcast_to_float32() -> None:
    w = torch.randn(6, 9).to(torch.bfloat16)
    ours = _values({"h.weight": w})
    upcast = _values({"h.weight": w.float()})
    assert {k: r.value for k, r in ours.items()} == {k: r.value for k, r in upcast.items()}  # type: ignore[attr-defined]
    from visualize_training.metrics import get_matrix_metrics

    ref = get_matrix_metrics(w.float())
    for metric in ("l1", "l2", "spectral", "mean_singular_value", "var_singular_value"):
        assert_close(ours[("h.weight", metric)].value, ref[metric], metric)  # type: ignore[attr-defined]


def test_batched_svd_equals_one_matrix_at_a_time() -> None:
    g = torch.Generator().manual_seed(5)
    stack = torch.randn(7, 12, 30, generator=g)
    batched = singular_values(stack)
    one_by_one = torch.stack([torch.linalg.svdvals(m) for m in stack])
    assert torch.allclose(batched, one_by_one, rtol=1e-5, atol=1e-6)
    state = {f"l{i}.weight": stack[i].clone() for i in range(7)}
    small = _values(state, max_batch_bytes=1)  # one matrix per chunk
    large = _values(state)
    for key, row in large.items():
        assert_close(small[key].value, row.value, str(key))  # type: ignore[attr-defined]


def test_conv_weight_gets_kernel_metrics_and_reshaped_spectrum() -> None:
    conv = torch.randn(4, 3, 2, 2)
    conv[0, 0] = 0.0  # an all-zero kernel counts 0 toward code_sparsity
    rows = _values({"c.weight": conv})
    metrics = {metric for (_, metric) in rows}
    assert "trace" not in metrics and "spectral" not in metrics
    l1 = conv.abs().sum((2, 3)).flatten()
    l2 = conv.pow(2).sum((2, 3)).sqrt().flatten()
    ratio = torch.where(l2 > 0, l1 / l2.clamp_min(1e-30), 0.0)
    assert rows[("c.weight", "l1")].value == pytest.approx(float(l1.mean()))  # type: ignore[attr-defined]
    assert rows[("c.weight", "code_sparsity")].value == pytest.approx(float(ratio.mean()))  # type: ignore[attr-defined]
    sv = torch.linalg.svdvals(conv.reshape(4, 12))
    assert rows[("c.weight", "reshaped_spectral")].value == pytest.approx(float(sv[0]))  # type: ignore[attr-defined]
    assert rows[("c.weight", "reshaped_mean_singular_value")].value == pytest.approx(
        float(sv.mean())
    )  # type: ignore[attr-defined]


def test_heads_split_3d_and_2d_layouts_alike() -> None:
    w3 = torch.randn(4, 8, 32)
    w2 = w3.reshape(32, 32)
    assert all(
        torch.equal(a, b) for a, b in zip(split_heads(w3, 4), split_heads(w2, 4), strict=True)
    )
    r3 = _values({"attn.W_Q": w3}, cuts={"attn.W_Q": Cut(heads=4)})
    r2 = _values({"attn.W_Q": w2}, cuts={"attn.W_Q": Cut(heads=4)})
    assert set(r3) == set(r2)
    assert ("attn.W_Q[head 3]", "spectral") in r3
    assert r3[("attn.W_Q[head 3]", "l1")].hook_point == "attn"  # type: ignore[attr-defined]
    merged = _values({"attn.W_Q": w3})
    assert ("attn.W_Q", "l1") in merged  # unsplit: one (heads*d_head, d_model) matrix
    with pytest.raises(ValueError, match="not 3"):
        _values({"attn.W_Q": w3}, cuts={"attn.W_Q": Cut(heads=3)})
    with pytest.raises(ValueError, match="not selected"):
        _values({"attn.W_Q": w3}, cuts={"attn.W_K": Cut(heads=4)})


def test_selection_skips_svd_and_unknown_names_fail() -> None:
    rows = _values({"w.weight": torch.randn(5, 3)}, metrics=["l1", "code_sparsity"])
    assert {metric for _, metric in rows} == {"l1", "code_sparsity"}
    with pytest.raises(ValueError, match="known: l1, l2"):
        _values({"w.weight": torch.randn(5, 3)}, metrics=["l3"])


def test_other_ranks_and_integer_tensors_are_reported_as_skipped() -> None:
    state = {
        "ln.w": torch.ones(5),
        "pos.ids": torch.arange(6).reshape(2, 3),
        "w.weight": torch.randn(3, 3),
    }
    result = compute_weight_metrics(MappingSource(state), list(state))
    skipped = {s.tensor: s.reason for s in result.skipped}
    assert "1-D" in skipped["ln.w"].message and "int64" in skipped["pos.ids"].message
    assert skipped["ln.w"].code is ReasonCode.VECTOR and skipped["ln.w"].expected
    assert skipped["pos.ids"].code is ReasonCode.NOT_FLOAT
    assert {row.tensor for row in result.values} == {"w.weight"}


def test_rows_keep_selection_order_and_hook_points() -> None:
    state = {"b.w": torch.randn(3, 3), "a.w": torch.randn(4, 4), "b.w2": torch.randn(3, 3)}
    result = compute_weight_metrics(MappingSource(state), list(state), metrics=["l2", "l1"])
    assert [(r.tensor, r.metric) for r in result.values] == [
        ("b.w", "l2"),
        ("b.w", "l1"),
        ("a.w", "l2"),
        ("a.w", "l1"),
        ("b.w2", "l2"),
        ("b.w2", "l1"),
    ]
    assert {r.hook_point for r in result.values} == {"a", "b"}


def test_wide_and_tall_matrices_share_a_batch_with_unchanged_values() -> None:
    g = torch.Generator().manual_seed(9)
    up, down = torch.randn(6, 9, generator=g), torch.randn(9, 6, generator=g)
    broken = torch.randn(6, 9, generator=g)
    broken[2, 3] = float("nan")
    together = _values({"up.weight": up, "down.weight": down, "broken.weight": broken})
    for name, tensor in (("up.weight", up), ("down.weight", down)):
        alone = _values({name: tensor})
        for (tensor_name, metric), row in alone.items():
            assert together[(tensor_name, metric)].value == pytest.approx(row.value, rel=1e-6)  # type: ignore[attr-defined]
        # and against numpy in float64, independently of our code
        wide = tensor.double().numpy()
        sv = np.linalg.svd(wide, compute_uv=False)
        assert together[(name, "l1")].value == pytest.approx(np.abs(wide).sum(), rel=1e-6)  # type: ignore[attr-defined]
        assert together[(name, "trace")].value == pytest.approx(np.trace(wide), rel=1e-5)  # type: ignore[attr-defined]
        assert together[(name, "spectral")].value == pytest.approx(sv[0], rel=1e-5)  # type: ignore[attr-defined]
        assert together[(name, "mean_singular_value")].value == pytest.approx(sv.mean(), rel=1e-5)  # type: ignore[attr-defined]
    assert "1 NaN" in together[("broken.weight", "spectral")].reason.message  # type: ignore[attr-defined]


class _ThreadRecordingSource(MappingSource):
    """Records torch's intra-op thread count at every read."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        super().__init__(tensors)
        self.threads: list[int] = []

    def read(self, name: str) -> torch.Tensor:
        self.threads.append(torch.get_num_threads())
        return super().read(name)


@pytest.mark.parametrize("rows", [64, 1024])
def test_the_calling_process_keeps_its_thread_count(rows: int) -> None:
    # Thread counts are the pipeline's worker set-up (dyntools.pipeline.threads), not the
    # library's: a caller's setting is used as it is.
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        source = _ThreadRecordingSource(
            {"w.weight": torch.randn(rows, 256), "w.bias": torch.randn(rows)}
        )
        compute_weight_metrics(source, ["w.weight", "w.bias"], metrics=["l1", "mean_b"])
        assert source.threads == [2, 2]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_give_the_cpu_values() -> None:
    g = torch.Generator().manual_seed(10)
    state = {
        "a.W_Q": torch.randn(4, 8, 32, generator=g),
        "a.weight": torch.randn(48, 32, generator=g),
        "a.bias": torch.randn(48, generator=g),
        "c.weight": torch.randn(8, 3, 3, 3, generator=g),
    }
    cpu = compute_weight_metrics(MappingSource(state), list(state), cuts={"a.W_Q": Cut(heads=4)})
    gpu_state = {name: tensor.cuda() for name, tensor in state.items()}
    gpu = compute_weight_metrics(
        MappingSource(gpu_state), list(state), cuts={"a.W_Q": Cut(heads=4)}
    )
    expected = {(r.tensor, r.head, r.metric): r.value for r in (*cpu.values, *cpu.pooled)}
    got = {(r.tensor, r.head, r.metric): r.value for r in (*gpu.values, *gpu.pooled)}
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if value is None or math.isnan(value):
            assert got[key] is None or math.isnan(got[key]), key  # type: ignore[arg-type]
        else:
            assert got[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
