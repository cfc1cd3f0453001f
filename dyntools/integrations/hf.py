"""``DyntoolsCallback`` for Hugging Face ``transformers.Trainer``: one line makes a run folder
that dyntools reads, computes and fits.

    trainer = Trainer(model=model, args=args, ..., callbacks=[DyntoolsCallback("runs/my-run")])

The folder gets ``run.json`` (the model's configuration, the optimizer, the TrainingArguments),
``step_NNNNNNN.safetensors`` checkpoints of ``model.state_dict()`` with the logged scalars in
their header, and ``probe.safetensors`` from the evaluation data. A transformers model is
described as ``{"name": "transformers", "kwargs": model.config.to_dict()}``, which dyntools
rebuilds with transformers for activation metrics.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import transformers

from dyntools.integrations.recorder import (
    EveryNSteps,
    RunRecorder,
    class_reference,
    jsonable,
    optimizer_description,
)

# The summary the Trainer logs once training ends (train_runtime, the run's mean train_loss,
# ...): not the value of any one step, so kept out of the last checkpoint's scalars.
SUMMARY_KEY = "train_runtime"


class DyntoolsCallback(transformers.TrainerCallback):  # type: ignore[misc]
    """Write a dyntools run folder from a ``transformers.Trainer``.

    ``every_n_steps``: ``None`` saves when the Trainer saves (its ``save_strategy``), an int
    every N optimizer steps, ``"log"`` at steps 0, 1, 2, 4, 8, ...; the initialization
    (step 0) is always saved. ``config``: entries added to run.json (``task``, ``dataset``,
    ...; they win over the callback's). ``probe``: the probe batch ``(x, y)`` to save instead
    of the first ``probe_samples`` samples of the evaluation data (the training data when the
    Trainer never evaluates). ``overwrite``: replace a run already in ``run_dir``.
    ``step_stats``: also record per-step activation statistics of the training batches
    (``dyntools.hooks.ActivationStats``; True: every step, N: every N steps).
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
        self.recorder = RunRecorder(
            run_dir,
            every_n_steps,
            config=config,
            probe=probe,
            probe_samples=probe_samples,
            overwrite=overwrite,
            step_stats=step_stats,
        )
        self._logged: dict[str, object] = {}
        self._optimizer: object = None

    @property
    def run_dir(self) -> Path:
        return self.recorder.run_dir

    # --- Trainer events -------------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return  # one process writes the run
        if self.recorder.schedule.follows_trainer and args.save_strategy == "no":
            raise ValueError(
                "DyntoolsCallback(every_n_steps=None) saves when the Trainer saves, but "
                "save_strategy is 'no': set save_strategy, or pass every_n_steps=N (or 'log')"
            )
        model = kwargs.get("model")
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"the Trainer's model is a {type(model).__name__}, not a torch module")
        self._optimizer = kwargs.get("optimizer")
        self._logged = {}
        for logs in state.log_history:  # a resumed run has logged before
            self._remember(logs)
        self.recorder.start(
            model, self._run_json(args, model), state.global_step, self._scalars(state)
        )
        self.recorder.take_probe(kwargs.get("eval_dataloader"), "evaluation")

    def on_log(
        self,
        args: Any,
        state: Any,
        control: Any,
        logs: Mapping[str, object] | None = None,
        **kwargs: Any,
    ) -> None:
        self._remember(logs or {})

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.recorder.take_probe(kwargs.get("eval_dataloader"), "evaluation")

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.recorder.flush(self._scalars(state))
        self.recorder.step_begins(state.global_step)

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.recorder.flush(self._scalars(state))

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # Written at the next event, once this step's logs and evaluation are in.
        self.recorder.mark(state.global_step)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # The Trainer saves after logging and evaluating: this step's scalars are in.
        scalars = self._scalars(state)
        self.recorder.flush(scalars)
        if self.recorder.schedule.follows_trainer:
            self.recorder.save(state.global_step, scalars)
        elif state.max_steps and state.global_step >= state.max_steps:
            # The last step, before load_best_model_at_end replaces the weights.
            self.recorder.finish(state.global_step, scalars)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        # With load_best_model_at_end the model now holds the best checkpoint's weights, not
        # the last step's: nothing more is saved (on_save wrote the last step).
        if not (args.load_best_model_at_end and state.best_model_checkpoint):
            self.recorder.finish(state.global_step, self._scalars(state))
        self.recorder.take_probe(kwargs.get("train_dataloader"), "training")

    # --- what is written ------------------------------------------------------------------

    def _remember(self, logs: Mapping[str, object]) -> None:
        if SUMMARY_KEY not in logs:
            self._logged.update(logs)

    def _scalars(self, state: Any) -> dict[str, object]:
        """The latest value of every scalar logged so far, the Trainer's fractional epoch, and
        the learning rate (from the optimizer while none was logged)."""
        scalars = dict(self._logged)
        if "learning_rate" not in scalars:
            lr = _learning_rate(self._optimizer)
            if lr is not None:
                scalars["learning_rate"] = lr
        if state.epoch is not None:
            # Not "epoch": that key is the format's own, and a step never stands in for one.
            scalars["trainer_epoch"] = state.epoch
        return scalars

    def _run_json(self, args: Any, model: torch.nn.Module) -> dict[str, Any]:
        run: dict[str, Any] = {"seed": args.seed}
        model_config = _model_config(model)
        if model_config is not None:
            run["model"] = {"name": "transformers", "kwargs": model_config}
        run["model_class"] = class_reference(model)
        optimizer = optimizer_description(self._optimizer)
        if optimizer is not None:
            run["optimizer"] = optimizer
        scheduler = getattr(args, "lr_scheduler_type", None)
        if scheduler is not None:
            run["lr_scheduler"] = jsonable(scheduler)
        # TrainingArguments' own JSON: enums as values, tokens replaced by placeholders.
        run["hyperparameters"] = json.loads(args.to_json_string())
        source = (
            "the latest value of each scalar the Trainer logged by the checkpoint's step "
            "(loss, learning_rate, grad_norm, eval_*); trainer_epoch: the Trainer's fractional "
            "epoch"
        )
        return run | self.recorder.provenance(self, source, transformers)


def _model_config(model: torch.nn.Module) -> dict[str, Any] | None:
    """The configuration of a model transformers itself defines, with ``architectures`` naming
    its class (a model built from a config has none until save_pretrained sets it); None for
    other models (a PEFT wrapper, your own module): they need a --factory."""
    cls = type(model)
    config = getattr(model, "config", None)
    if getattr(transformers, cls.__name__, None) is not cls or config is None:
        return None
    settings = json.loads(config.to_json_string(use_diff=False))
    if not isinstance(settings, dict) or not isinstance(settings.get("model_type"), str):
        return None
    settings["architectures"] = [cls.__name__]
    return settings


def _learning_rate(optimizer: object) -> float | None:
    groups = getattr(optimizer, "param_groups", None)
    if not groups:
        return None
    lr = groups[0].get("lr")
    return float(lr) if isinstance(lr, int | float | torch.Tensor) else None


__all__ = ["DyntoolsCallback"]
