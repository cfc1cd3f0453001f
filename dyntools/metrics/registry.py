"""Every metric dyntools computes, by stable snake_case name, with its family and definition.

Callers list and select metrics by name here; an unknown name raises a ValueError that lists
the known ones. Names only: this module imports no torch, so code that never touches a tensor
(the app's pages) can read it cheaply.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Anchor metrics of a matrix, in the reference's order.
ANCHOR_MATRIX_METRICS = (
    "l1",
    "l2",
    "trace",
    "spectral",
    "code_sparsity",
    "computational_sparsity",
    "mean_singular_value",
    "var_singular_value",
)

# Spectral extras of a convolution weight reshaped to (O, I*kh*kw): "reshaped_" + matrix metric.
RESHAPED_PREFIX = "reshaped_"
RESHAPED_BASES = (
    "spectral",
    "mean_singular_value",
    "var_singular_value",
    "stable_rank",
    "log_frobenius",
    "log_spectral",
    "effective_rank",
)

# The two HSIC variants of the information plane and their (H vs X, H vs Y) metric names.
VARIANTS = ("normalized", "pyglow")
VARIANT_METRICS = {
    "normalized": ("hsic_x", "hsic_y"),
    "pyglow": ("hsic_x_pyglow", "hsic_y_pyglow"),
}


@dataclass(frozen=True)
class MetricSpec:
    """A metric's name, family, one-line definition and whether the reference code has it."""

    name: str
    family: str
    definition: str
    anchor: bool = False


# Families: "matrix" (per 2-D matrix, per head when split; l1, l2 and code_sparsity also for
# 4-D conv weights, per-kernel as in the reference), "conv" (4-D weight reshaped to
# (O, I*kh*kw)), "pooled" (over all selected weights or biases), "temporal" (against another
# checkpoint), "activation", "information" (HSIC).
_SPECS = (
    MetricSpec("l1", "matrix", "sum |w| (conv: mean over kernels of per-kernel sum |w|)", True),
    MetricSpec("l2", "matrix", "Frobenius norm (conv: mean of per-kernel Frobenius norms)", True),
    MetricSpec("trace", "matrix", "sum of the main diagonal, also for rectangular W", True),
    MetricSpec("spectral", "matrix", "largest singular value", True),
    MetricSpec("code_sparsity", "matrix", "l1 / l2 (0 when l2 = 0; conv: per-kernel mean)", True),
    MetricSpec("computational_sparsity", "matrix", "trace / spectral (0 when spectral = 0)", True),
    MetricSpec("mean_singular_value", "matrix", "mean of singular values (< 1e-5 set to 0)", True),
    MetricSpec(
        "var_singular_value", "matrix", "unbiased variance of singular values (NaN if one)", True
    ),
    MetricSpec("stable_rank", "matrix", "sum(sigma^2) / max(sigma^2)"),
    MetricSpec("log_frobenius", "matrix", "log10 sum(sigma^2) = log10 ||W||_F^2"),
    MetricSpec("log_spectral", "matrix", "log10 max(sigma^2)"),
    MetricSpec("effective_rank", "matrix", "exp(entropy of sigma / sum(sigma)) (Roy & Vetterli)"),
    *(
        MetricSpec(
            RESHAPED_PREFIX + base, "conv", f"{base} of the conv weight reshaped to (O, I*kh*kw)"
        )
        for base in RESHAPED_BASES
    ),
    MetricSpec("mean_w", "pooled", "mean of all selected weights, concatenated", True),
    MetricSpec("median_w", "pooled", "lower median of all selected weights (torch.median)", True),
    MetricSpec("var_w", "pooled", "unbiased variance of all selected weights", True),
    MetricSpec("mean_b", "pooled", "mean of all selected biases, concatenated", True),
    MetricSpec("median_b", "pooled", "lower median of all selected biases (torch.median)", True),
    MetricSpec("var_b", "pooled", "unbiased variance of all selected biases", True),
    MetricSpec("relative_update", "temporal", "||W_t - W_prev||_F / ||W_prev||_F"),
    MetricSpec("cosine_to_init", "temporal", "<W_t, W_0> / (||W_t||_F ||W_0||_F)"),
    MetricSpec("act_mean", "activation", "mean of the layer's outputs over the probe batch"),
    MetricSpec("act_std", "activation", "standard deviation (unbiased) of the layer's outputs"),
    MetricSpec("dead_fraction", "activation", "fraction of outputs with |a| < threshold"),
    MetricSpec("hsic_x", "information", "normalized HSIC(H, X), Gaussian kernels"),
    MetricSpec("hsic_y", "information", "normalized HSIC(H, one-hot Y), Gaussian kernels"),
    MetricSpec("hsic_x_pyglow", "information", "PyGlow's HSIC(H, X), sigma 5, tr(KHLH)/(m-1)"),
    MetricSpec("hsic_y_pyglow", "information", "PyGlow's HSIC(H, model output), sigma 5"),
)

REGISTRY: dict[str, MetricSpec] = {spec.name: spec for spec in _SPECS}

WEIGHT_FAMILIES = ("matrix", "conv", "pooled", "temporal")
ACTIVATION_FAMILIES = ("activation", "information")
# The name under which histograms are stored (one per activation hook point and checkpoint).
HISTOGRAM_METRIC = "histogram"

# Pooled statistics of all selected weights (_w) and biases (_b).
POOLED_METRICS = ("mean_w", "median_w", "var_w", "mean_b", "median_b", "var_b")

# The paper's HMM features per checkpoint, in the published column order.
PAPER_FEATURES = (*ANCHOR_MATRIX_METRICS, *POOLED_METRICS)


def metric_names(*families: str) -> tuple[str, ...]:
    """Names of the metrics in the given families (all metrics when none is given)."""
    unknown = sorted(set(families) - {spec.family for spec in _SPECS})
    if unknown:
        known = sorted({spec.family for spec in _SPECS})
        raise ValueError(f"unknown metric family {unknown}; known families: {known}")
    return tuple(spec.name for spec in _SPECS if not families or spec.family in families)


def select_metrics(names: Iterable[str] | None, *families: str) -> tuple[str, ...]:
    """Validate a selection of metric names (None selects every metric of ``families``).

    Raises ValueError naming the unknown or out-of-family names and listing the known ones.
    """
    allowed = metric_names(*families)
    if names is None:
        return allowed
    chosen = list(dict.fromkeys(names))
    bad = [name for name in chosen if name not in allowed]
    if bad:
        raise ValueError(
            f"unknown metric name(s) {bad} for {list(families) or 'any family'}; "
            f"known: {', '.join(allowed)}"
        )
    return tuple(chosen)
