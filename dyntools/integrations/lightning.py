"""``DyntoolsCallback`` for Lightning: one line makes a run folder that dyntools reads,
computes and fits.

    trainer = L.Trainer(..., callbacks=[DyntoolsCallback("runs/my-run")])

The folder gets ``run.json`` (the LightningModule's class and hyper-parameters, the optimizer,
the Trainer's settings), ``step_NNNNNNN.safetensors`` checkpoints of the LightningModule's
``state_dict()`` with the logged metrics in their header, and ``probe.safetensors`` from the
validation data. The model is described as ``{"name": "package.module:Class", "kwargs":
hparams}``: dyntools never imports code a run folder names, so activation metrics need
``--factory package.module:Class`` (``factory=`` in ``ComputeOptions``), which rebuilds the
LightningModule from its saved hyper-parameters.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning
import lightning.pytorch as pl
import torch

from dyntools.integrations.recorder import (
    EveryNSteps,
    RunRecorder,
    class_reference,
    is_plain_json,
    jsonable,
    optimizer_description,
)

# The Trainer settings run.json keeps (the Trainer does not keep its constructor's arguments).
TRAINER_SETTINGS = (
    "max_epochs",
    "max_steps",
    "accumulate_grad_batches",
    "gradient_clip_val",
    "gradient_clip_algorithm",
    "precision",
    "val_check_interval",
    "check_val_every_n_epoch",
    "log_every_n_steps",
    "num_devices",
    "num_nodes",
)


class DyntoolsCallback(pl.Callback):  # type: ignore[misc]
    """Write a dyntools run folder from a Lightning ``Trainer``.

    ``every_n_steps``: ``None`` saves when the Trainer saves a checkpoint (its
    ``ModelCheckpoint`` schedule), an int every N optimizer steps, ``"log"`` at steps 0, 1, 2,
    4, 8, ...; the initialization (step 0) is always saved. ``config``: entries added to
    run.json (``task``, ``dataset``, ...; they win over the callback's). ``probe``: the probe
    batch ``(x, y)`` to save instead of the first ``probe_samples`` samples of the validation
    data (the training data when the Trainer never validates). ``overwrite``: replace a run
    already in ``run_dir``. ``step_stats``: also record per-step activation statistics of the
    training batches (``dyntools.hooks.ActivationStats``; True: every step, N: every N steps).
    """

    def __init__(
        self,
        run_dir: str | Path,
        every_n_steps: EveryNSteps = None,
        *,
        config: Mapping[str, Any] | None = None,
        probe: tuple[torch.Tensor, torch.Tensor] | None = None,
        probe_samples: int = 512,
        overwrite: bool = False,
        step_stats: bool | int = False,
    ) -> None:
        super().__init__()
        self.recorder = RunRecorder(
            run_dir,
            every_n_steps,
            config=config,
            probe=probe,
            probe_samples=probe_samples,
            overwrite=overwrite,
            step_stats=step_stats,
        )

    @property
    def run_dir(self) -> Path:
        return self.recorder.run_dir

    # --- Trainer hooks --------------------------------------------------------------------

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return  # one process writes the run
        if self.recorder.schedule.follows_trainer and not trainer.checkpoint_callbacks:
            raise ValueError(
                "DyntoolsCallback(every_n_steps=None) saves when the Trainer saves, but this "
                "Trainer has no checkpoint callback (enable_checkpointing=False): enable "
                "checkpointing, or pass every_n_steps=N (or 'log')"
            )
        self.recorder.start(
            pl_module, _run_json(trainer, pl_module, self), trainer.global_step, _scalars(trainer)
        )
        self.recorder.take_probe(_first_loader(trainer.val_dataloaders), "validation")

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.recorder.flush(_scalars(trainer))
        self.recorder.step_begins(trainer.global_step)

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        # Written at the next hook, once validation at this step has logged its metrics.
        self.recorder.mark(trainer.global_step)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self.recorder.take_probe(_first_loader(trainer.val_dataloaders), "validation")

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        scalars = _scalars(trainer)
        self.recorder.flush(scalars)
        if self.recorder.schedule.follows_trainer:
            self.recorder.save(trainer.global_step, scalars)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        self.recorder.finish(trainer.global_step, _scalars(trainer))
        self.recorder.take_probe(_first_loader(trainer.train_dataloader), "training")


def _scalars(trainer: pl.Trainer) -> dict[str, object]:
    """The latest value of every metric logged with ``self.log`` (``callback_metrics``), the
    learning rate of the first optimizer unless one was logged, and Lightning's epoch."""
    scalars: dict[str, object] = dict(trainer.callback_metrics)
    if "learning_rate" not in scalars and trainer.optimizers:
        groups = trainer.optimizers[0].param_groups
        if groups and isinstance(groups[0].get("lr"), int | float | torch.Tensor):
            scalars["learning_rate"] = groups[0]["lr"]
    # Not "epoch": that key is the format's own, and a step never stands in for one.
    scalars["trainer_epoch"] = trainer.current_epoch
    return scalars


def _run_json(
    trainer: pl.Trainer, pl_module: pl.LightningModule, callback: DyntoolsCallback
) -> dict[str, Any]:
    run: dict[str, Any] = {}
    seed = os.environ.get("PL_GLOBAL_SEED")  # set by lightning.seed_everything
    if seed is not None and seed.lstrip("-").isdigit():
        run["seed"] = int(seed)
    hparams = dict(getattr(pl_module, "hparams_initial", None) or {})
    if is_plain_json(hparams):
        # The LightningModule itself, rebuilt from the arguments save_hyperparameters() kept:
        # its state_dict names are the checkpoints' names.
        run["model"] = {"name": class_reference(pl_module), "kwargs": hparams}
    run["model_class"] = class_reference(pl_module)
    if trainer.optimizers:
        run["optimizer"] = optimizer_description(trainer.optimizers[0])
        if len(trainer.optimizers) > 1:
            run["optimizers"] = [optimizer_description(o) for o in trainer.optimizers]
    run["hyperparameters"] = jsonable(hparams)
    run["trainer"] = {
        name: jsonable(getattr(trainer, name))
        for name in TRAINER_SETTINGS
        if hasattr(trainer, name)
    }
    run["trainer"]["strategy"] = type(trainer.strategy).__name__
    datamodule = getattr(trainer, "datamodule", None)
    if datamodule is not None:
        run["datamodule"] = {
            "class": class_reference(datamodule),
            "hyperparameters": jsonable(dict(getattr(datamodule, "hparams_initial", None) or {})),
        }
    source = (
        "the latest value of each metric logged with self.log by the checkpoint's step "
        "(trainer.callback_metrics), learning_rate of the first optimizer, trainer_epoch: "
        "Lightning's current_epoch"
    )
    return run | callback.recorder.provenance(callback, source, lightning)


def _first_loader(loaders: object) -> object:
    """The data loader of a Trainer's ``val_dataloaders`` / ``train_dataloader``: itself, or
    the first of a list or dict of loaders."""
    if isinstance(loaders, Mapping):
        return next(iter(loaders.values()), None)
    if isinstance(loaders, list | tuple):
        return loaders[0] if loaders else None
    return loaders


__all__ = ["DyntoolsCallback"]
