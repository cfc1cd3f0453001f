"""relative_update and cosine_to_init, through their registry entries and compute_weight_metrics,
what they compare with, and where rounding of the stored dtype dominates them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from apptest_helpers import direct, texts

from dyntools.checkpoints import CheckpointWriter
from dyntools.metrics import MappingSource, ReasonCode, compute_weight_metrics
from dyntools.metrics.kinds import Against, Outcome, TemporalMetric, compared_with
from dyntools.metrics.matrices import Cut
from dyntools.metrics.registry import metric
from dyntools.metrics.temporal import compare
from dyntools.pipeline import ComputeOptions, compute
from dyntools.store import Store, locate_db
from dyntools.views.metrics import comparison_notes


def temporal(name: str, current: torch.Tensor, other: torch.Tensor) -> Outcome:
    entry = metric(name)
    assert isinstance(entry, TemporalMetric)
    return entry.compute(compare(current, other, entry.against.value))


def test_against_numpy() -> None:
    g = torch.Generator().manual_seed(7)
    a, b = torch.randn(5, 6, generator=g), torch.randn(5, 6, generator=g)
    an, bn = a.double().numpy(), b.double().numpy()
    value, reason = temporal("relative_update", a, b)
    assert reason is None and value == pytest.approx(np.linalg.norm(an - bn) / np.linalg.norm(bn))
    value, _ = temporal("cosine_to_init", a, b)
    expected = (an * bn).sum() / (np.linalg.norm(an) * np.linalg.norm(bn))
    assert value == pytest.approx(expected)
    assert temporal("cosine_to_init", a, a)[0] == pytest.approx(1.0)


def _why(outcome: Outcome) -> tuple[ReasonCode | None, str]:
    value, reason = outcome
    assert value is None and reason is not None
    return reason.code, reason.message


def test_undefined_cases_say_why() -> None:
    a = torch.randn(3, 3)
    assert _why(temporal("relative_update", a, torch.zeros(3, 3))) == (
        ReasonCode.UNDEFINED,
        "previous version is all zeros (division by 0)",
    )
    assert _why(temporal("relative_update", a, torch.randn(3, 4)))[0] is ReasonCode.OTHER_VERSION
    assert _why(temporal("cosine_to_init", a, torch.zeros(3, 3)))[1] == (
        "a zero tensor has no direction"
    )
    nan = a.clone()
    nan[0, 0] = math.nan
    assert _why(temporal("cosine_to_init", nan, a))[0] is ReasonCode.NONFINITE


def test_per_head_through_compute_weight_metrics() -> None:
    w0 = torch.randn(2, 3, 4)
    w1 = w0 + 0.1 * torch.randn(2, 3, 4)
    result = compute_weight_metrics(
        MappingSource({"attn.W_Q": w1, "new.w": torch.randn(2, 2)}),
        ["attn.W_Q", "new.w"],
        metrics=["relative_update", "cosine_to_init"],
        cuts={"attn.W_Q": Cut(heads=2)},
        previous=MappingSource({"attn.W_Q": w0}),
        initial=MappingSource({"attn.W_Q": w0}),
    )
    rows = {(r.tensor, r.head, r.metric): r for r in result.values}
    expected = float((w1[1] - w0[1]).norm() / w0[1].norm())
    assert rows[("attn.W_Q", 1, "relative_update")].value == pytest.approx(expected)
    missing = rows[("new.w", None, "relative_update")]
    assert missing.value is None and missing.reason is not None
    assert missing.reason.code is ReasonCode.OTHER_VERSION
    assert "not in the previous checkpoint" in missing.reason.message


def test_what_each_temporal_metric_compares_with() -> None:
    assert compared_with(Against.INITIAL, 0) == "step 0 (the initialization)"
    assert compared_with(Against.INITIAL, 8) == (
        "step 8 (the first saved checkpoint, not the initialization)"
    )
    assert compared_with(Against.PREVIOUS, 8) == "the previous saved checkpoint"
    notes = comparison_notes(["l2", "cosine_to_init", "relative_update"], {"a": 0, "b": 8})
    assert notes == [
        "cosine_to_init compares each checkpoint with step 0 (the initialization) in a; "
        "step 8 (the first saved checkpoint, not the initialization) in b.",
        "relative_update compares each checkpoint with the previous saved checkpoint.",
    ]
    assert comparison_notes(["cosine_to_init"], {"a": 0}) == [
        "cosine_to_init compares each checkpoint with step 0 (the initialization)."
    ]


def _bf16_pair(scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(8)
    before = torch.randn(64, 64, generator=g)
    after = before + scale * torch.randn(64, 64, generator=g)
    return before.bfloat16(), after.bfloat16()


def test_rounding_is_noted_below_the_stored_dtype_resolution() -> None:
    bf16_eps = torch.finfo(torch.bfloat16).eps  # 2^-7: what a bf16 difference can resolve
    for scale, dominated in ((1e-3, True), (1e-1, False)):
        before, after = _bf16_pair(scale)
        result = compute_weight_metrics(
            MappingSource({"w": after}),
            ["w"],
            metrics=["relative_update"],
            previous=MappingSource({"w": before}),
        )
        (row,) = result.values
        a, b = after.double().numpy(), before.double().numpy()
        expected = np.linalg.norm(a - b) / np.linalg.norm(b)
        assert row.value == pytest.approx(expected)  # the value is kept either way
        assert bool(expected < bf16_eps) == dominated
        if dominated:
            assert row.reason is not None and row.reason.code is ReasonCode.ROUNDING
            assert "below the resolution of the stored dtype (0.0078)" in row.reason.message
        else:
            assert row.reason is None
    # The same small update saved in float32 is well above float32's resolution.
    before, after = (t.float() for t in _bf16_pair(1e-3))
    (row,) = compute_weight_metrics(
        MappingSource({"w": after + 1e-3}),
        ["w"],
        metrics=["relative_update"],
        previous=MappingSource({"w": before}),
    ).values
    assert row.reason is None


def test_rounding_rows_reach_the_store_and_the_metrics_page(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.Linear(32, 4)).bfloat16()
    writer = CheckpointWriter(tmp_path / "bf16", model, {"task": "t"})
    for epoch in range(3):
        with torch.no_grad():
            for parameter in model.parameters():  # updates far below bf16's resolution
                parameter.add_(1e-4 * torch.randn_like(parameter))
        writer.save(epoch)
    assert compute(tmp_path, ComputeOptions(metrics=("relative_update",), workers=1)).failed == ()
    errors = Store(locate_db(tmp_path).path).read_errors()
    rounding = errors.filter(pl.col("code") == "rounding")
    assert rounding.height > 0 and set(rounding["step"]) == {1, 2}
    assert rounding["why"].str.contains("rounding dominates").all()
    app = direct("metrics", tmp_path, runs="bf16", weights="0", metrics="relative_update")
    assert not app.exception
    assert f"relative_update: {rounding.height} values of these runs are below" in texts(app)
