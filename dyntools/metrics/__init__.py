"""Pure metric functions: tensors in, numbers out. A leaf: imports nothing else of dyntools.

Weight metrics (``compute_weight_metrics``), pooled statistics and the paper's 14 features,
temporal metrics, activation statistics and histograms, and HSIC for the information plane.
Every metric has a stable snake_case name in ``REGISTRY``.
"""

from dyntools.metrics.activations import (
    DEFAULT_DEAD_THRESHOLD,
    DEFAULT_HISTOGRAM,
    ActivationStats,
    Histogram,
    HistogramSpec,
    activation_stats,
    histogram,
    shared_spec,
    value_range,
)
from dyntools.metrics.hsic import InformationPlane, InformationPoint, pyglow_hsic
from dyntools.metrics.pooled import PooledAccumulator, PooledStats, paper_features
from dyntools.metrics.records import (
    ALL_HOOK_POINTS,
    PAPER_FEATURES_TENSOR,
    POOLED_TENSOR,
    MappingSource,
    MetricValue,
    SkippedTensor,
    TensorSource,
)
from dyntools.metrics.registry import (
    PAPER_FEATURES,
    REGISTRY,
    MetricSpec,
    metric_names,
    select_metrics,
)
from dyntools.metrics.spectrum import SV_ZERO_THRESHOLD, singular_values
from dyntools.metrics.temporal import cosine_to_init, relative_update
from dyntools.metrics.units import default_hook_point, default_role, split_heads
from dyntools.metrics.weights import WeightMetrics, compute_weight_metrics

__all__ = [
    "ALL_HOOK_POINTS",
    "DEFAULT_DEAD_THRESHOLD",
    "DEFAULT_HISTOGRAM",
    "PAPER_FEATURES",
    "PAPER_FEATURES_TENSOR",
    "POOLED_TENSOR",
    "REGISTRY",
    "SV_ZERO_THRESHOLD",
    "ActivationStats",
    "Histogram",
    "HistogramSpec",
    "InformationPlane",
    "InformationPoint",
    "MappingSource",
    "MetricSpec",
    "MetricValue",
    "PooledAccumulator",
    "PooledStats",
    "SkippedTensor",
    "TensorSource",
    "WeightMetrics",
    "activation_stats",
    "compute_weight_metrics",
    "cosine_to_init",
    "default_hook_point",
    "default_role",
    "histogram",
    "metric_names",
    "paper_features",
    "pyglow_hsic",
    "relative_update",
    "select_metrics",
    "shared_spec",
    "singular_values",
    "split_heads",
    "value_range",
]
