"""relative_update and cosine_to_init, alone and through compute_weight_metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dyntools.metrics import MappingSource, compute_weight_metrics, cosine_to_init, relative_update


def test_against_numpy() -> None:
    g = torch.Generator().manual_seed(7)
    a, b = torch.randn(5, 6, generator=g), torch.randn(5, 6, generator=g)
    an, bn = a.double().numpy(), b.double().numpy()
    value, reason = relative_update(a, b)
    assert reason is None and value == pytest.approx(np.linalg.norm(an - bn) / np.linalg.norm(bn))
    value, _ = cosine_to_init(a, b)
    expected = (an * bn).sum() / (np.linalg.norm(an) * np.linalg.norm(bn))
    assert value == pytest.approx(expected)
    assert cosine_to_init(a, a)[0] == pytest.approx(1.0)


def test_undefined_cases_say_why() -> None:
    a = torch.randn(3, 3)
    assert relative_update(a, torch.zeros(3, 3)) == (
        None,
        "previous version is all zeros (division by 0)",
    )
    assert relative_update(a, None)[1] == "no previous version of this tensor"
    assert "shape changed" in (relative_update(a, torch.randn(3, 4))[1] or "")
    assert cosine_to_init(a, torch.zeros(3, 3))[1] == "a zero tensor has no direction"
    nan = a.clone()
    nan[0, 0] = math.nan
    assert "NaN" in (cosine_to_init(nan, a)[1] or "")


def test_per_head_through_compute_weight_metrics() -> None:
    w0 = torch.randn(2, 3, 4)
    w1 = w0 + 0.1 * torch.randn(2, 3, 4)
    result = compute_weight_metrics(
        MappingSource({"attn.W_Q": w1, "new.w": torch.randn(2, 2)}),
        ["attn.W_Q", "new.w"],
        metrics=["relative_update", "cosine_to_init"],
        heads={"attn.W_Q": 2},
        previous=MappingSource({"attn.W_Q": w0}),
        initial=MappingSource({"attn.W_Q": w0}),
    )
    rows = {(r.tensor, r.metric): r for r in result.values}
    expected = float((w1[1] - w0[1]).norm() / w0[1].norm())
    assert rows[("attn.W_Q[head 1]", "relative_update")].value == pytest.approx(expected)
    missing = rows[("new.w", "relative_update")]
    assert missing.value is None and "not in the previous checkpoint" in (missing.reason or "")
