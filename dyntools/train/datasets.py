"""The sample tasks' data sets, built deterministically from a seed (no downloads)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class DataSplit:
    """Training and validation tensors plus a JSON-able description for ``run.json``."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    description: dict[str, Any] = field(default_factory=dict)


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be strictly between 0 and 1, got {value}")


def modular_addition(p: int, train_fraction: float, seed: int) -> DataSplit:
    """All pairs ``(a, b)`` as the tokens ``a b =`` (``=`` is token ``p``); label ``(a + b) % p``.

    A seeded permutation puts ``train_fraction`` of the ``p * p`` pairs in training.
    """
    if p < 2:
        raise ValueError(f"modulus p must be >= 2, got {p}")
    _check_fraction("train_fraction", train_fraction)
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    a, b = a.flatten(), b.flatten()
    x = torch.stack([a, b, torch.full_like(a, p)], dim=1)
    y = (a + b) % p
    order = torch.randperm(p * p, generator=torch.Generator().manual_seed(seed))
    n_train = round(train_fraction * p * p)
    train, val = order[:n_train], order[n_train:]
    return DataSplit(
        x[train],
        y[train],
        x[val],
        y[val],
        {
            "name": "modular-addition",
            "p": p,
            "train_fraction": train_fraction,
            "n_train": int(train.numel()),
            "n_val": int(val.numel()),
            "input": "tokens [a, b, p] ('=' is token p)",
            "label": "(a + b) mod p",
            "split_seed": seed,
        },
    )


def sparse_parity(n_bits: int, k: int, n_train: int, n_val: int, seed: int) -> DataSplit:
    """Uniform ``x`` in ``{-1, +1}^n``; ``y`` = product of ``k`` fixed bits (Barak et al. 2022).

    The ``k`` relevant bits are the first ``k`` (which bits does not matter to the learner, and a
    fixed choice keeps runs comparable across seeds); inputs are drawn with the seed.
    """
    if not 0 < k <= n_bits:
        raise ValueError(f"k must be in 1..n_bits ({n_bits}), got {k}")
    if n_train < 1 or n_val < 1:
        raise ValueError(f"n_train and n_val must be >= 1, got {n_train}, {n_val}")
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.choice([-1.0, 1.0], size=(n_train + n_val, n_bits))).float()
    y = x[:, :k].prod(dim=1)
    return DataSplit(
        x[:n_train],
        y[:n_train],
        x[n_train:],
        y[n_train:],
        {
            "name": "sparse-parity",
            "n_bits": n_bits,
            "k": k,
            "relevant_bits": list(range(k)),
            "n_train": n_train,
            "n_val": n_val,
            "input": "x in {-1, +1}^n",
            "label": "product of the relevant bits, in {-1, +1}",
            "data_seed": seed,
        },
    )


def digits(val_fraction: float, seed: int) -> DataSplit:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images), scaled to [0, 1].

    Split with a seeded, per-class (stratified) permutation so every class is in both parts.
    """
    from sklearn.datasets import load_digits  # the data ships inside scikit-learn

    _check_fraction("val_fraction", val_fraction)
    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    rng = np.random.default_rng(seed)
    train_idx: list[int] = []
    val_idx: list[int] = []
    for label in range(10):
        members = rng.permutation(np.flatnonzero(bunch.target == label))
        n_val = round(val_fraction * len(members))
        val_idx.extend(members[:n_val].tolist())
        train_idx.extend(members[n_val:].tolist())
    train = torch.tensor(sorted(train_idx))
    val = torch.tensor(sorted(val_idx))
    return DataSplit(
        images[train],
        labels[train],
        images[val],
        labels[val],
        {
            "name": "sklearn.datasets.load_digits",
            "val_fraction": val_fraction,
            "n_train": int(train.numel()),
            "n_val": int(val.numel()),
            "input": "1x8x8 grey images scaled to [0, 1]",
            "label": "digit 0-9",
            "split_seed": seed,
        },
    )
