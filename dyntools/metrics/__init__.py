"""Pure metric functions: tensors in, numbers out. A leaf: imports nothing else of dyntools.

Weight metrics (``compute_weight_metrics``), pooled statistics and the paper's 14 features,
temporal metrics, activation statistics and histograms, and HSIC for the information plane.
Every metric has a stable snake_case name in ``REGISTRY``.
"""

from typing import TYPE_CHECKING

from dyntools.lazy import lazy_exports

if TYPE_CHECKING:  # the real imports, for type checkers only
    from dyntools.metrics.distribution import (
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
    from dyntools.metrics.matrices import default_hook_point, default_role, split_heads
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
    from dyntools.metrics.weights import WeightMetrics, compute_weight_metrics

# Names are loaded on first use: most modules here need torch (about 1.3 s to import), and
# ``dyntools.metrics.registry`` (metric names, the paper's features) is read by code that never
# touches a tensor, such as the app's pages.
_EXPORTS: dict[str, str] = {
    "DEFAULT_DEAD_THRESHOLD": "distribution",
    "DEFAULT_HISTOGRAM": "distribution",
    "ActivationStats": "distribution",
    "Histogram": "distribution",
    "HistogramSpec": "distribution",
    "activation_stats": "distribution",
    "histogram": "distribution",
    "shared_spec": "distribution",
    "value_range": "distribution",
    "InformationPlane": "hsic",
    "InformationPoint": "hsic",
    "pyglow_hsic": "hsic",
    "PooledAccumulator": "pooled",
    "PooledStats": "pooled",
    "paper_features": "pooled",
    "ALL_HOOK_POINTS": "records",
    "PAPER_FEATURES_TENSOR": "records",
    "POOLED_TENSOR": "records",
    "MappingSource": "records",
    "MetricValue": "records",
    "SkippedTensor": "records",
    "TensorSource": "records",
    "PAPER_FEATURES": "registry",
    "REGISTRY": "registry",
    "MetricSpec": "registry",
    "metric_names": "registry",
    "select_metrics": "registry",
    "SV_ZERO_THRESHOLD": "spectrum",
    "singular_values": "spectrum",
    "cosine_to_init": "temporal",
    "relative_update": "temporal",
    "default_hook_point": "matrices",
    "default_role": "matrices",
    "split_heads": "matrices",
    "WeightMetrics": "weights",
    "compute_weight_metrics": "weights",
}

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


__getattr__ = lazy_exports(__name__, _EXPORTS)
