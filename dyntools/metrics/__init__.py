"""Pure metric functions: tensors in, numbers out. A leaf: imports nothing else of dyntools.

Every metric is one registry entry (``dyntools.metrics.registry``): its name, kind, parameters,
description and the function that computes it from its kind's input record. The tensor work
behind them: ``compute_weight_metrics`` (matrices, convolutions, pooled and temporal
statistics of one checkpoint), ``layer_output`` (activations) and ``InformationPlane`` (HSIC).
"""

from typing import TYPE_CHECKING

from dyntools.lazy import lazy_exports
from dyntools.metrics.feature import Feature
from dyntools.metrics.kinds import HookKind, Metric, MetricKind, params_key
from dyntools.metrics.records import (
    MappingSource,
    MetricValue,
    Reason,
    ReasonCode,
    Scope,
    SkippedTensor,
    TensorSource,
)
from dyntools.metrics.registry import PAPER_FEATURES, REGISTRY, metric, register, select_metrics

if TYPE_CHECKING:  # the real imports, for type checkers only
    from dyntools.metrics.distribution import layer_output, shared_spec, value_range
    from dyntools.metrics.hsic import InformationPlane, pyglow_hsic
    from dyntools.metrics.matrices import split_heads
    from dyntools.metrics.pooled import PooledAccumulator
    from dyntools.metrics.spectrum import singular_values
    from dyntools.metrics.weights import SpectrumCache, WeightMetrics, compute_weight_metrics

# Names loaded on first use: these modules need torch (about 1.3 s to import), while the
# registry and the records are read by code that never touches a tensor (the app's pages).
_TORCH_EXPORTS: dict[str, str] = {
    "layer_output": "distribution",
    "shared_spec": "distribution",
    "value_range": "distribution",
    "InformationPlane": "hsic",
    "pyglow_hsic": "hsic",
    "split_heads": "matrices",
    "PooledAccumulator": "pooled",
    "singular_values": "spectrum",
    "SpectrumCache": "weights",
    "WeightMetrics": "weights",
    "compute_weight_metrics": "weights",
}

__all__ = [
    "PAPER_FEATURES",
    "REGISTRY",
    "Feature",
    "HookKind",
    "InformationPlane",
    "MappingSource",
    "Metric",
    "MetricKind",
    "MetricValue",
    "PooledAccumulator",
    "Reason",
    "ReasonCode",
    "Scope",
    "SkippedTensor",
    "SpectrumCache",
    "TensorSource",
    "WeightMetrics",
    "compute_weight_metrics",
    "layer_output",
    "metric",
    "params_key",
    "pyglow_hsic",
    "register",
    "select_metrics",
    "shared_spec",
    "singular_values",
    "split_heads",
    "value_range",
]

__getattr__ = lazy_exports(__name__, _TORCH_EXPORTS)
