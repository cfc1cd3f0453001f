"""Synthetic runs with known regimes, for tests, benchmarks and demos.

Every run walks through the same regimes in order (like training phases: memorizing, then
generalizing, ...), switching at run-specific steps; each regime has its own feature means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl


@dataclass(frozen=True)
class SyntheticRuns:
    """Tidy metrics and scalars of synthetic runs, and the true regime of every row."""

    metrics: pl.DataFrame
    scalars: pl.DataFrame
    states: dict[str, np.ndarray]  # run id -> true regime per step
    means: np.ndarray  # (n_regimes, n_features)


def make_regime_runs(
    n_runs: int = 10,
    n_steps: int = 200,
    n_features: int = 20,
    n_regimes: int = 3,
    *,
    separation: float = 1.0,
    jitter: int = 15,
    seed: int = 0,
    means: np.ndarray | None = None,
) -> SyntheticRuns:
    """Runs whose features are regime means plus unit Gaussian noise.

    Regime k starts near step ``k * n_steps / n_regimes``, moved by up to ``jitter`` steps per
    run. ``means`` (n_regimes, n_features) sets the regime means (default: drawn with standard
    deviation ``separation``). Scalars ``val_acc`` (rising with the regime) and ``train_loss``
    come along so that convergence and state summaries can be exercised.
    """
    if n_regimes < 1 or n_steps < n_regimes:
        raise ValueError(f"need 1 <= n_regimes ({n_regimes}) <= n_steps ({n_steps})")
    rng = np.random.default_rng(seed)
    drawn = rng.normal(0.0, separation, size=(n_regimes, n_features))
    if means is None:
        means = drawn
    elif means.shape != (n_regimes, n_features):
        raise ValueError(f"means must be ({n_regimes}, {n_features}), got {means.shape}")
    metric_parts: list[pl.DataFrame] = []
    scalar_parts: list[pl.DataFrame] = []
    states: dict[str, np.ndarray] = {}
    base = np.arange(1, n_regimes) * n_steps // n_regimes
    for r in range(n_runs):
        run_id = f"run-{r:02d}"
        cuts = np.clip(base + rng.integers(-jitter, jitter + 1, size=base.size), 1, n_steps - 1)
        z = np.searchsorted(np.sort(cuts), np.arange(n_steps), side="right")
        x = means[z] + rng.normal(0.0, 1.0, size=(n_steps, n_features))
        steps = np.arange(n_steps, dtype=np.int64) * 10
        states[run_id] = z
        metric_parts.append(
            pl.DataFrame(
                {
                    "run_id": [run_id] * (n_steps * n_features),
                    "step": np.repeat(steps, n_features),
                    "epoch": np.repeat(np.arange(n_steps, dtype=np.int64), n_features),
                    "hook_point": [f"layer{k // 4}" for k in range(n_features)] * n_steps,
                    "metric": [f"m{k % 4}" for k in range(n_features)] * n_steps,
                    "value": x.reshape(-1),
                }
            )
        )
        val_acc = z / max(1, n_regimes - 1) + rng.normal(0.0, 0.01, n_steps)
        train_loss = np.exp(-z.astype(float)) + rng.normal(0.0, 0.01, n_steps)
        scalar_parts.append(
            pl.DataFrame(
                {
                    "run_id": [run_id] * (2 * n_steps),
                    "step": np.tile(steps, 2),
                    "epoch": np.tile(np.arange(n_steps, dtype=np.int64), 2),
                    "name": ["val_acc"] * n_steps + ["train_loss"] * n_steps,
                    "value": np.concatenate([val_acc, train_loss]),
                }
            )
        )
    return SyntheticRuns(
        metrics=pl.concat(metric_parts),
        scalars=pl.concat(scalar_parts),
        states=states,
        means=means,
    )
