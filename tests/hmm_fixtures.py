"""Small seeded synthetic data shared by the HMM tests."""

from __future__ import annotations

from functools import cache

from dyntools.hmm.features import FeatureTable, build_feature_table
from dyntools.hmm.synthetic import SyntheticRuns, make_regime_runs


@cache
def small_runs() -> SyntheticRuns:
    return make_regime_runs(n_runs=6, n_steps=90, n_features=6, n_regimes=3, jitter=8, seed=3)


@cache
def small_table() -> FeatureTable:
    return build_feature_table(small_runs().metrics)
