"""Every metric dyntools ships: one function and one registry entry each (docs/metrics.md has
the exact definitions and their references).

The anchor metrics follow ``visualize_training.metrics.get_matrix_metrics`` (visualizing-training
1.0.0) and ``get_tensor_metrics`` for 4-D convolution weights; the extras reuse the same singular
values (``stable_rank`` and the log norms are WeightWatcher's definitions, eigenvalues lambda =
sigma^2; ``effective_rank`` is Roy & Vetterli's). Adding a metric: write its
function of its kind's input record (``dyntools.metrics.kinds``) and add its entry to
``BUILTIN``. This module imports no torch: the functions read records built by the code that
owns the tensors.
"""

from __future__ import annotations

import math

import numpy as np

from dyntools.metrics.batch import Column, Flags, Floats, KernelBatch, MatrixBatch, ratio
from dyntools.metrics.histogram import DEFAULT_HISTOGRAM, MAX_BINS, Histogram, HistogramSpec
from dyntools.metrics.hsic_inputs import (
    AUTO_CODING,
    CODINGS,
    NORMALIZED,
    OUTPUT_CHOICES,
    PYGLOW,
    SOFTMAX,
)
from dyntools.metrics.kinds import (
    ActivationMetric,
    Against,
    HistogramMetric,
    InformationMetric,
    MatrixMetric,
    Metric,
    Outcome,
    Param,
    Params,
    Pool,
    PooledMetric,
    ReshapedConvMetric,
    TemporalMetric,
)
from dyntools.metrics.records import (
    Comparison,
    InformationPoint,
    LayerOutput,
    PooledStats,
    Reason,
    ReasonCode,
)

# |a| below this counts as dead: what ReLU leaves at exactly zero (stored with every value).
DEFAULT_DEAD_THRESHOLD = 1e-6

# -- per matrix ------------------------------------------------------------------------------


def _var_sv(batch: MatrixBatch) -> Column:
    values = batch.svd()[1]
    count = values.shape[1]
    if count < 2:
        # torch.var of one value is NaN (and warns); the reference stores that NaN.
        return Column(
            np.full(values.shape[0], np.nan),
            np.ones(values.shape[0], dtype=np.bool_),
            Reason(
                ReasonCode.UNDEFINED,
                "one singular value: unbiased variance undefined (NaN, as in the reference)",
            ),
            keep_nan=True,
        )
    # np.var, spelled out: its generic path costs more than the arithmetic on arrays this small.
    centred = values - values.mean(axis=1, keepdims=True)
    return Column(np.square(centred).sum(axis=1) / (count - 1))


def _log10_or_nan(values: Floats) -> tuple[Floats, Flags]:
    # log10(0) is -inf; such rows are flagged undefined instead of raising numpy's warning.
    undefined = values <= 0
    safe = np.where(undefined, 1.0, values)
    return np.where(undefined, np.nan, np.log10(safe)), undefined


def _stable_rank(batch: MatrixBatch) -> Column:
    sv = batch.svd()[1]
    top = sv[:, 0] ** 2
    total = (sv**2).sum(axis=1)
    why = Reason(ReasonCode.UNDEFINED, "stable rank of a zero matrix (0/0)")
    return Column(ratio(total, top), top == 0, why)


def _log_frobenius(batch: MatrixBatch) -> Column:
    # sum(lambda) = sum(sigma^2) = ||W||_F^2 exactly, so no SVD is needed for this one.
    values, undefined = _log10_or_nan(batch.l2**2)
    why = Reason(ReasonCode.UNDEFINED, "log10 of the Frobenius norm of a zero matrix")
    return Column(values, undefined, why)


def _log_spectral(batch: MatrixBatch) -> Column:
    values, undefined = _log10_or_nan(batch.svd()[0] ** 2)
    why = Reason(ReasonCode.UNDEFINED, "log10 of the spectral norm of a zero matrix")
    return Column(values, undefined, why)


def _effective_rank(batch: MatrixBatch) -> Column:
    # Roy & Vetterli (2007): exp of the entropy of the normalized singular values (0 log 0 = 0).
    sv = batch.svd()[1]
    total = sv.sum(axis=1, keepdims=True)
    p = ratio(sv, total)
    logs = np.log(np.where(p > 0, p, 1.0))
    entropy = -(p * logs).sum(axis=1)
    why = Reason(ReasonCode.UNDEFINED, "effective rank of a zero matrix")
    return Column(np.exp(entropy), total[:, 0] == 0, why)


def _kernel_code_sparsity(kernels: KernelBatch) -> Column:
    # The mean of per-kernel l1/l2; 0.0 for an all-zero kernel, where the reference gives NaN.
    return Column(ratio(kernels.l1, kernels.l2).mean(axis=1))


_MATRIX = (
    MatrixMetric(
        name="l1",
        description="sum |w| (conv: mean over kernels of per-kernel sum |w|)",
        anchor=True,
        compute=lambda b: Column(b.l1),
        per_kernel=lambda k: Column(k.l1.mean(axis=1)),
    ),
    MatrixMetric(
        name="l2",
        description="Frobenius norm (conv: mean of per-kernel Frobenius norms)",
        anchor=True,
        compute=lambda b: Column(b.l2),
        per_kernel=lambda k: Column(k.l2.mean(axis=1)),
    ),
    MatrixMetric(
        name="trace",
        description="sum of the main diagonal, also for rectangular W",
        anchor=True,
        compute=lambda b: Column(b.trace),
    ),
    MatrixMetric(
        name="spectral",
        description="largest singular value",
        anchor=True,
        compute=lambda b: Column(b.svd()[0]),
        needs_svd=True,
    ),
    MatrixMetric(
        name="code_sparsity",
        description="l1 / l2 (0 when l2 = 0; conv: per-kernel mean)",
        anchor=True,
        compute=lambda b: Column(ratio(b.l1, b.l2)),
        per_kernel=_kernel_code_sparsity,
    ),
    MatrixMetric(
        name="computational_sparsity",
        description="trace / spectral (0 when spectral = 0)",
        anchor=True,
        compute=lambda b: Column(ratio(b.trace, b.svd()[0])),
        needs_svd=True,
    ),
    MatrixMetric(
        name="mean_singular_value",
        description="mean of singular values (< 1e-5 set to 0)",
        anchor=True,
        compute=lambda b: Column(b.svd()[1].mean(axis=1)),
        needs_svd=True,
    ),
    MatrixMetric(
        name="var_singular_value",
        description="unbiased variance of singular values (NaN if one)",
        anchor=True,
        compute=_var_sv,
        needs_svd=True,
    ),
    MatrixMetric(
        name="stable_rank",
        description="sum(sigma^2) / max(sigma^2)",
        compute=_stable_rank,
        needs_svd=True,
    ),
    MatrixMetric(
        name="log_frobenius",
        description="log10 sum(sigma^2) = log10 ||W||_F^2",
        compute=_log_frobenius,
    ),
    MatrixMetric(
        name="log_spectral",
        description="log10 max(sigma^2)",
        compute=_log_spectral,
        needs_svd=True,
    ),
    MatrixMetric(
        name="effective_rank",
        description="Roy & Vetterli's effective rank: exp(entropy of sigma / sum(sigma)) "
        "(not WeightWatcher's entropy, which takes sigma^2 and divides by log rank)",
        compute=_effective_rank,
        needs_svd=True,
    ),
)

# Spectral extras of a convolution weight reshaped to (O, I*kh*kw): "reshaped_" + matrix metric.
RESHAPED_PREFIX = "reshaped_"
_RESHAPED_BASES = (
    "spectral",
    "mean_singular_value",
    "var_singular_value",
    "stable_rank",
    "log_frobenius",
    "log_spectral",
    "effective_rank",
)
_RESHAPED = tuple(
    ReshapedConvMetric(
        name=RESHAPED_PREFIX + base.name,
        description=f"{base.name} of the conv weight reshaped to (O, I*kh*kw)",
        compute=base.compute,
        needs_svd=base.needs_svd,
    )
    for base in _MATRIX
    if base.name in _RESHAPED_BASES
)

# -- pooled over every selected weight or bias -----------------------------------------------


def _stat(stats: PooledStats, value: float | None) -> Outcome:
    undefined = value is None or math.isnan(value)
    return value, stats.reason if undefined else None


_POOLED = (
    PooledMetric(
        name="mean_w",
        description="mean of all selected weights, concatenated",
        anchor=True,
        pool=Pool.WEIGHTS,
        compute=lambda s: _stat(s, s.mean),
    ),
    PooledMetric(
        name="median_w",
        description="lower median of all selected weights (torch.median)",
        anchor=True,
        pool=Pool.WEIGHTS,
        compute=lambda s: _stat(s, s.median),
    ),
    PooledMetric(
        name="var_w",
        description="unbiased variance of all selected weights",
        anchor=True,
        pool=Pool.WEIGHTS,
        compute=lambda s: _stat(s, s.var),
    ),
    PooledMetric(
        name="mean_b",
        description="mean of all selected biases, concatenated",
        anchor=True,
        pool=Pool.BIASES,
        compute=lambda s: _stat(s, s.mean),
    ),
    PooledMetric(
        name="median_b",
        description="lower median of all selected biases (torch.median)",
        anchor=True,
        pool=Pool.BIASES,
        compute=lambda s: _stat(s, s.median),
    ),
    PooledMetric(
        name="var_b",
        description="unbiased variance of all selected biases",
        anchor=True,
        pool=Pool.BIASES,
        compute=lambda s: _stat(s, s.var),
    ),
)

# -- against another checkpoint --------------------------------------------------------------


def _relative_update(pair: Comparison) -> Outcome:
    if pair.problem is not None:
        return None, pair.problem
    if pair.other_norm == 0.0:
        return None, Reason(ReasonCode.UNDEFINED, "previous version is all zeros (division by 0)")
    value = pair.difference_norm / pair.other_norm
    if value < pair.resolution:
        return value, Reason(
            ReasonCode.ROUNDING,
            f"{value:.2g} is below the resolution of the stored dtype ({pair.resolution:.2g}): "
            "rounding dominates this difference",
        )
    return value, None


def _cosine_to_init(pair: Comparison) -> Outcome:
    if pair.problem is not None:
        return None, pair.problem
    norms = pair.norm * pair.other_norm
    if norms == 0.0:
        return None, Reason(ReasonCode.UNDEFINED, "a zero tensor has no direction")
    return pair.dot / norms, None


_TEMPORAL = (
    TemporalMetric(
        name="relative_update",
        description="||W_t - W_prev||_F / ||W_prev||_F; W_prev: the previous saved checkpoint "
        "(not the previous optimizer step)",
        against=Against.PREVIOUS,
        compute=_relative_update,
    ),
    TemporalMetric(
        name="cosine_to_init",
        description="<W_t, W_0> / (||W_t||_F ||W_0||_F); W_0: the run's first saved checkpoint "
        "(the initialization only where the run saved step 0)",
        against=Against.INITIAL,
        compute=_cosine_to_init,
    ),
)

# -- activations on the probe batch ----------------------------------------------------------


def _act_std(output: LayerOutput, _: Params) -> Outcome:
    if output.count < 2:
        return math.nan, Reason(ReasonCode.UNDEFINED, "one value: unbiased std undefined (NaN)")
    return float(output.values.std()), None


def _dead_fraction(output: LayerOutput, params: Params) -> Outcome:
    below = output.values.abs() < float(params["threshold"])
    return float(below.sum()) / output.count, None


def _histogram(output: LayerOutput, spec: HistogramSpec) -> Histogram:
    values = output.values.numpy()
    if spec.transform == "abs":
        values = np.abs(values)
    edges = spec.edges().numpy()
    # Index 0: below the first edge; bins + 1: at or above the last (torch.bucketize, right=True).
    index = np.searchsorted(edges, values, side="right")
    counts = np.bincount(index, minlength=spec.bins + 2).tolist()
    return Histogram(
        edges=tuple(edges.tolist()),
        counts=tuple(int(c) for c in counts[1 : spec.bins + 1]),
        underflow=int(counts[0]),
        overflow=int(counts[spec.bins + 1]),
        nonfinite=output.nonfinite,
        transform=spec.transform,
    )


_ACTIVATION = (
    ActivationMetric(
        name="act_mean",
        description="mean of the layer's outputs over the probe batch",
        compute=lambda output, _: (float(output.values.mean()), None),
    ),
    ActivationMetric(
        name="act_std",
        description="standard deviation (unbiased) of the layer's outputs",
        compute=_act_std,
    ),
    ActivationMetric(
        name="dead_fraction",
        description="fraction of outputs with |a| < threshold",
        params=(
            Param("threshold", DEFAULT_DEAD_THRESHOLD, "|a| below this counts as dead", minimum=0),
        ),
        compute=_dead_fraction,
    ),
    HistogramMetric(
        name="histogram",
        description="log1p counts of |a| in fixed bins (the colorful dimension)",
        params=(
            Param(
                "bins",
                DEFAULT_HISTOGRAM.bins,
                "number of equal bins",
                minimum=1,
                maximum=MAX_BINS,
            ),
            Param("high", DEFAULT_HISTOGRAM.high, "upper edge (exclusive)"),
            Param("low", DEFAULT_HISTOGRAM.low, "lower edge"),
            Param("on", DEFAULT_HISTOGRAM.transform, "abs: bins of |a|; identity: of a"),
        ),
        compute=_histogram,
    ),
)

# -- the information plane -------------------------------------------------------------------


def _hsic_x(point: InformationPoint) -> Outcome:
    return point.hsic_x, point.reason if point.hsic_x is None else None


def _hsic_y(point: InformationPoint) -> Outcome:
    return point.hsic_y, point.reason if point.hsic_y is None else None


_INPUTS = Param(
    "inputs",
    AUTO_CODING,
    "how the probe inputs enter the X kernel: one-hot (integer codes such as token ids, one-hot "
    "per position), values (real coordinates); auto: one-hot for integer inputs, else values",
    choices=CODINGS,
)

_INFORMATION = (
    InformationMetric(
        name="hsic_x",
        against=Against.INPUT,
        description="normalized HSIC(H, X), Gaussian kernels",
        variant=NORMALIZED,
        params=(_INPUTS,),
        compute=_hsic_x,
    ),
    InformationMetric(
        name="hsic_y",
        against=Against.TARGET,
        description="normalized HSIC(H, Y), Y the probe labels, Gaussian kernels",
        variant=NORMALIZED,
        params=(
            Param(
                "labels",
                AUTO_CODING,
                "how the probe labels enter the Y kernel: one-hot (class indices, token ids), "
                "values (real targets); auto: one-hot for integer labels, else values",
                choices=CODINGS,
            ),
        ),
        compute=_hsic_y,
    ),
    InformationMetric(
        name="hsic_x_pyglow",
        against=Against.INPUT,
        description="PyGlow's HSIC(H, X), sigma 5, tr(KHLH)/(m-1)",
        variant=PYGLOW,
        params=(_INPUTS,),
        compute=_hsic_x,
    ),
    InformationMetric(
        name="hsic_y_pyglow",
        against=Against.TARGET,
        description="PyGlow's HSIC(H, Y), Y the model's output, sigma 5",
        variant=PYGLOW,
        params=(
            Param(
                "output",
                SOFTMAX,
                "what of the model's output Y is: softmax (the probabilities PyGlow's networks "
                "output; sigmoid for one column) or logits",
                choices=OUTPUT_CHOICES,
            ),
        ),
        compute=_hsic_y,
    ),
)

# In this order in the registry, the CLI help and the app's glossary.
BUILTIN: tuple[Metric, ...] = (
    *_MATRIX,
    *_RESHAPED,
    *_POOLED,
    *_TEMPORAL,
    *_ACTIVATION,
    *_INFORMATION,
)
