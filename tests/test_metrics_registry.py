"""The metric registry: stable names, families, selection errors."""

from __future__ import annotations

import re

import pytest

from dyntools.metrics import PAPER_FEATURES, REGISTRY, metric_names, select_metrics
from dyntools.metrics.spectrum import MATRIX_METRICS


def test_names_are_snake_case_and_anchor_names_are_the_published_ones() -> None:
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", name) for name in REGISTRY)
    anchors = {name for name, spec in REGISTRY.items() if spec.anchor}
    assert anchors == set(PAPER_FEATURES)
    assert set(MATRIX_METRICS) == set(metric_names("matrix"))


def test_selection() -> None:
    assert select_metrics(["l2", "l1", "l2"], "matrix") == ("l2", "l1")
    assert select_metrics(None, "pooled") == (
        "mean_w",
        "median_w",
        "var_w",
        "mean_b",
        "median_b",
        "var_b",
    )
    with pytest.raises(ValueError, match=r"unknown metric name\(s\) \['act_mean'\]"):
        select_metrics(["act_mean"], "matrix")
    with pytest.raises(ValueError, match="unknown metric family"):
        metric_names("weights")
