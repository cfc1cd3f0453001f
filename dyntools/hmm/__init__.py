"""Latent training phases: Gaussian HMMs over metric time series (docs/latent-states.md, docs/design.md "Hidden Markov model").

Typical use (the store gives the tidy frames)::

    from dyntools.hmm import FitConfig, fit_latent_states, format_fit_report
    result = fit_latent_states(metrics, scalars, FitConfig(max_states=8, restarts=5))
    print(format_fit_report(result))

Only ``dyntools.hmm.hmmlearn_backend`` imports hmmlearn. The names below are loaded on first
use, so importing this package is cheap (it imports neither hmmlearn nor scikit-learn).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dyntools.lazy import lazy_exports

if TYPE_CHECKING:  # the real imports, for type checkers only
    from dyntools.hmm.analysis import (
        FIT_FORMAT_VERSION,
        FitConfig,
        FitResult,
        RestartSummary,
        config_hash,
        fit_latent_states,
    )
    from dyntools.hmm.estimator import LatentStateModel
    from dyntools.hmm.features import (
        NORMALIZATIONS,
        PAPER_FEATURES,
        FeatureTable,
        align_scalars,
        build_feature_table,
        paper_features,
    )
    from dyntools.hmm.hmmlearn_backend import COVARIANCE_TYPES
    from dyntools.hmm.normalize import Notice
    from dyntools.hmm.params import HMMParams
    from dyntools.hmm.report import format_fit_report
    from dyntools.hmm.serialize import fit_result_from_json, fit_result_to_json

_EXPORTS: dict[str, str] = {
    "FIT_FORMAT_VERSION": "analysis",
    "FitConfig": "analysis",
    "FitResult": "analysis",
    "RestartSummary": "analysis",
    "config_hash": "analysis",
    "fit_latent_states": "analysis",
    "LatentStateModel": "estimator",
    "NORMALIZATIONS": "features",
    "PAPER_FEATURES": "features",
    "FeatureTable": "features",
    "Notice": "normalize",
    "align_scalars": "features",
    "build_feature_table": "features",
    "paper_features": "features",
    "COVARIANCE_TYPES": "hmmlearn_backend",
    "HMMParams": "params",
    "format_fit_report": "report",
    "fit_result_from_json": "serialize",
    "fit_result_to_json": "serialize",
}

__all__ = [
    "COVARIANCE_TYPES",
    "FIT_FORMAT_VERSION",
    "NORMALIZATIONS",
    "PAPER_FEATURES",
    "FeatureTable",
    "FitConfig",
    "FitResult",
    "HMMParams",
    "LatentStateModel",
    "Notice",
    "RestartSummary",
    "align_scalars",
    "build_feature_table",
    "config_hash",
    "fit_latent_states",
    "fit_result_from_json",
    "fit_result_to_json",
    "format_fit_report",
    "paper_features",
]


__getattr__ = lazy_exports(__name__, _EXPORTS)
