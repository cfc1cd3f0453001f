"""The sample tasks: a registry name -> TaskSpec (data, model, loss, presets).

Every hyper-parameter of a task lives in its presets, so ``run.json`` records all of them and a
command-line override can only change a key the task knows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dyntools.train import datasets
from dyntools.train.datasets import DataSplit

Hyper = Mapping[str, Any]


@dataclass(frozen=True)
class TaskSpec:
    """What ``dyntools train NAME`` trains: how to build its data and model, and its presets."""

    name: str
    summary: str
    loss: str
    presets: Mapping[str, Hyper]
    default_preset: str
    build_data: Callable[[Hyper, int], DataSplit]
    model_spec: Callable[[Hyper, DataSplit], dict[str, Any]]
    notes: str = ""

    def hyperparameters(self, preset: str | None, overrides: Hyper) -> dict[str, Any]:
        """The preset's hyper-parameters with ``overrides`` applied; unknown names are errors."""
        name = preset or self.default_preset
        if name not in self.presets:
            raise ValueError(
                f"task {self.name!r} has no preset {name!r}; its presets: {', '.join(self.presets)}"
            )
        hyper = dict(self.presets[name])
        for key, value in overrides.items():
            if key not in hyper:
                option = "--" + key.replace("_", "-")
                raise ValueError(
                    f"option {option} does not apply to task {self.name!r}: see "
                    "`dyntools train --help` for which task takes it"
                )
            hyper[key] = value
        return hyper


def _modular_addition_model(hyper: Hyper, data: DataSplit) -> dict[str, Any]:
    p = int(hyper["p"])
    return {
        "name": "transformer",
        "kwargs": {
            "d_vocab": p + 1,
            "d_vocab_out": p,
            "n_ctx": 3,
            "d_model": hyper["d_model"],
            "n_heads": hyper["n_heads"],
            "d_mlp": hyper["d_mlp"],
            "n_layers": 1,
            "layernorm": hyper["layernorm"],
        },
    }


def _sparse_parity_model(hyper: Hyper, data: DataSplit) -> dict[str, Any]:
    return {
        "name": "mlp",
        "kwargs": {"in_features": hyper["n_bits"], "hidden": [hyper["hidden"]], "out_features": 1},
    }


def _lenet_model(hyper: Hyper, data: DataSplit) -> dict[str, Any]:
    return {
        "name": "lenet",
        "kwargs": {"in_channels": 1, "image_size": 8, "n_classes": 10},
    }


def _resnet_model(hyper: Hyper, data: DataSplit) -> dict[str, Any]:
    return {
        "name": "resnet",
        "kwargs": {
            "in_channels": 1,
            "n_classes": 10,
            "widths": list(hyper["widths"]),
            "blocks_per_stage": hyper["blocks_per_stage"],
            "batchnorm": hyper["batchnorm"],
            "residual": hyper["residual"],
        },
    }


_ADAMW = {"optimizer": "adamw", "betas": [0.9, 0.98]}

_MODULAR_ADDITION_PAPER = {
    # Nanda et al. (2023) / Hu et al. (2023): p = 113, 30% of pairs, AdamW lr 1e-3, wd 1.0.
    "p": 113,
    "train_fraction": 0.3,
    "d_model": 128,
    "n_heads": 4,
    "d_mlp": 512,
    "layernorm": False,
    **_ADAMW,
    "lr": 1e-3,
    "weight_decay": 1.0,
    "batch_size": 256,
    "epochs": 10000,
    "checkpoints": "every 100",
}

_MODULAR_ADDITION_SMALL = {
    # Tuned to grok on 2 CPU cores in a few minutes: full batch (one step per epoch), a smaller
    # modulus and model, 40% of the pairs for training and a higher learning rate. Measured:
    # train accuracy ~100% by epoch ~100 with validation accuracy still 0.1-0.2, validation
    # accuracy >= 0.9 only at epochs ~1650-3350. With 50% of the pairs it generalizes faster but
    # already reaches ~0.45 validation accuracy while memorizing (no clear grokking); with
    # d_model 32 and 40% it often had not generalized after 8000 epochs.
    **_MODULAR_ADDITION_PAPER,
    "p": 43,
    "train_fraction": 0.4,
    "d_model": 64,
    "n_heads": 4,
    "d_mlp": 256,
    "lr": 3e-3,
    "batch_size": None,
    "epochs": 4500,
    "checkpoints": "every 150",
}

_SPARSE_PARITY_PAPER = {
    # Barak et al. (2022) as used by Hu et al. (2023): n = 40, k = 3, 1000 train / 100 test,
    # MLP 40-1000-1, hinge loss, SGD lr 0.1, weight decay 0.01, batch 32, 300 epochs.
    "n_bits": 40,
    "k": 3,
    "n_train": 1000,
    "n_val": 100,
    "hidden": 1000,
    "optimizer": "sgd",
    "momentum": 0.0,
    "lr": 0.1,
    "weight_decay": 0.01,
    "batch_size": 32,
    "epochs": 300,
    "checkpoints": "every 10",
}

_DIGITS = {
    "val_fraction": 0.25,
    "optimizer": "adamw",
    "betas": [0.9, 0.999],
    "lr": 1e-3,
    "weight_decay": 0.01,
    "batch_size": 64,
    "epochs": 40,
    "checkpoints": "every",
}

_RESNET = {
    **_DIGITS,
    "widths": [16, 32, 64],
    "blocks_per_stage": 1,
    "batchnorm": True,
    "residual": True,
    "epochs": 30,
}

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            name="modular-addition",
            summary="one-layer transformer on (a + b) mod p: grokking (Nanda et al. 2023)",
            loss="cross_entropy",
            presets={"small": _MODULAR_ADDITION_SMALL, "paper": _MODULAR_ADDITION_PAPER},
            default_preset="small",
            build_data=lambda h, seed: datasets.modular_addition(
                int(h["p"]), float(h["train_fraction"]), seed
            ),
            model_spec=_modular_addition_model,
            notes=(
                "W_Q, W_K, W_V: (n_heads, d_head, d_model), head h is W_Q[h] (d_head x d_model); "
                "W_O: (d_model, n_heads * d_head); W_in: (d_mlp, d_model); W_out: (d_model, "
                "d_mlp); W_E: (d_vocab, d_model); W_U: (d_vocab_out, d_model). Logits are read "
                "at the last position ('=')."
            ),
        ),
        TaskSpec(
            name="sparse-parity",
            summary="MLP on n=40, k=3 sparse parity with hinge loss (Barak et al. 2022)",
            loss="hinge",
            presets={"paper": _SPARSE_PARITY_PAPER},
            default_preset="paper",
            build_data=lambda h, seed: datasets.sparse_parity(
                int(h["n_bits"]), int(h["k"]), int(h["n_train"]), int(h["n_val"]), seed
            ),
            model_spec=_sparse_parity_model,
            notes="Labels are +-1; the single output is compared by sign (hinge loss).",
        ),
        TaskSpec(
            name="digits-cnn",
            summary="LeNet-5-style CNN on scikit-learn's bundled 8x8 digits",
            loss="cross_entropy",
            presets={"default": _DIGITS},
            default_preset="default",
            build_data=lambda h, seed: datasets.digits(float(h["val_fraction"]), seed),
            model_spec=_lenet_model,
        ),
        TaskSpec(
            name="digits-resnet",
            summary="small ResNet (CIFAR-style stem) on the 8x8 digits; BatchNorm and "
            "residuals can be turned off",
            loss="cross_entropy",
            presets={"default": _RESNET},
            default_preset="default",
            build_data=lambda h, seed: datasets.digits(float(h["val_fraction"]), seed),
            model_spec=_resnet_model,
        ),
    )
}


def get_task(name: str) -> TaskSpec:
    """The task called ``name``; an unknown name is an error listing the known ones."""
    if name not in TASKS:
        raise LookupError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[name]
