"""The metric registry: stable names, kinds, parameters, selection errors."""

from __future__ import annotations

import re

import pytest

from dyntools.metrics import PAPER_FEATURES, REGISTRY, HookKind, MetricKind, select_metrics
from dyntools.metrics.batch import Column
from dyntools.metrics.kinds import MatrixMetric
from dyntools.metrics.registry import metric, metric_names, register, registered, variant_metrics

PUBLISHED = (
    "l1",
    "l2",
    "trace",
    "spectral",
    "code_sparsity",
    "computational_sparsity",
    "mean_singular_value",
    "var_singular_value",
    "mean_w",
    "median_w",
    "var_w",
    "mean_b",
    "median_b",
    "var_b",
)


def test_names_are_snake_case_and_the_anchors_are_the_published_features() -> None:
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", name) for name in REGISTRY)
    assert PAPER_FEATURES == PUBLISHED
    assert all(entry.description for entry in REGISTRY.values())


def test_every_kind_belongs_to_one_kind_of_hook_point() -> None:
    weight = set(metric_names(*(k for k in MetricKind if k.hook_kind is HookKind.WEIGHT)))
    activation = set(metric_names(*(k for k in MetricKind if k.hook_kind is HookKind.ACTIVATION)))
    assert weight.isdisjoint(activation) and weight | activation == set(REGISTRY)
    assert {"act_mean", "dead_fraction", "histogram", "hsic_x"} <= activation
    assert metric("histogram").params_key() == '{"bins":40,"high":10.0,"low":0.0,"on":"abs"}'
    assert metric("dead_fraction").params_key({"threshold": 0.5}) == '{"threshold":0.5}'
    assert metric("l2").params_key() == ""
    assert variant_metrics("pyglow") == ("hsic_x_pyglow", "hsic_y_pyglow")


def test_selection() -> None:
    assert select_metrics(["l2", "l1", "l2"], MetricKind.MATRIX) == ("l2", "l1")
    assert select_metrics(None, MetricKind.POOLED) == PUBLISHED[8:]
    with pytest.raises(ValueError, match=r"unknown metric name\(s\) \['act_mean'\]"):
        select_metrics(["act_mean"], MetricKind.MATRIX)
    with pytest.raises(ValueError, match="unknown metric 'nope'; known: l1, l2"):
        metric("nope")


def test_registering_takes_a_new_snake_case_name() -> None:
    toy = MatrixMetric(name="toy_l2", description="toy", compute=lambda b: Column(b.l2))
    with registered(toy):
        assert metric("toy_l2") is toy
        with pytest.raises(ValueError, match="already registered"):
            register(toy)
    assert "toy_l2" not in REGISTRY
    with pytest.raises(ValueError, match="snake_case"):
        register(MatrixMetric(name="Toy", description="toy", compute=lambda b: Column(b.l2)))
