"""The training loop of the sample tasks: seeded, deterministic, checkpointed by a schedule."""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dyntools.checkpoints import MAX_PROBE_SAMPLES, CheckpointWriter
from dyntools.checkpoints.step_stats import STEP_STATS_DIR, remove_step_stats, step_stats_parts
from dyntools.hooks import ActivationStats
from dyntools.models import build_model
from dyntools.train.datasets import DataSplit
from dyntools.train.objectives import OBJECTIVES, Objective, make_optimizer
from dyntools.train.schedule import parse_schedule
from dyntools.train.tasks import TaskSpec


@dataclass(frozen=True)
class EpochRecord:
    """The scalars saved with one checkpoint."""

    epoch: int
    step: int
    train_loss: float
    val_loss: float
    train_acc: float
    val_acc: float


@dataclass(frozen=True)
class RunResult:
    path: Path
    records: tuple[EpochRecord, ...]
    seconds: float


Progress = Callable[[str], None]


def _set_deterministic(mode: bool) -> None:
    # torch.use_deterministic_algorithms also sets torch.compile's inductor flag, which imports
    # torch._inductor (5-10 s on a busy 2-core machine). We never compile, so set only the
    # eager-mode flag it sets too.
    torch._C._set_deterministic_algorithms(mode)


@contextlib.contextmanager
def deterministic(seed: int, threads: int = 1) -> Iterator[None]:
    """Seed every RNG and make torch deterministic; restore torch's global settings after.

    One thread by default: CPU reductions can split work differently with another thread
    count, which changes the last bits of results.
    """
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.get_num_threads(),
        torch.get_rng_state(),
    )
    _set_deterministic(True)
    torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        _set_deterministic(previous[0])
        torch.set_num_threads(previous[1])
        torch.set_rng_state(previous[2])


def _evaluate(
    model: torch.nn.Module, objective: Objective, x: torch.Tensor, y: torch.Tensor
) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        out = model(x)
        return float(objective.loss(out, y)), float(objective.accuracy(out, y))


def _train_epoch(
    model: torch.nn.Module,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    data: DataSplit,
    batches: tuple[torch.Tensor, ...],
) -> int:
    """One pass over the training data in the given mini-batches; returns the steps taken."""
    model.train()
    for index in batches:
        loss = objective.loss(model(data.x_train[index]), data.y_train[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    return len(batches)


def _format_seconds(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def run_config(
    task: TaskSpec,
    preset: str,
    hyper: Mapping[str, Any],
    seed: int,
    data: DataSplit,
    model_spec: Mapping[str, Any],
    n_probe: int,
    step_stats: int | None = None,
) -> dict[str, Any]:
    """The ``run.json`` content (the writer adds schema and dyntools version)."""
    optimizer = {
        "name": hyper["optimizer"],
        "lr": hyper["lr"],
        "weight_decay": hyper["weight_decay"],
    }
    for key in ("betas", "momentum"):
        if key in hyper:
            optimizer[key] = hyper[key]
    config: dict[str, Any] = {
        "task": task.name,
        "preset": preset,
        "seed": seed,
        "model": dict(model_spec),
        "model_notes": task.notes,
        "optimizer": optimizer,
        "loss": task.loss,
        "hyperparameters": dict(hyper),
        "dataset": data.description,
        "probe": {"n": n_probe, "source": f"the first {n_probe} validation samples"},
        "checkpoint_schedule": str(parse_schedule(hyper["checkpoints"])),
        "epoch_meaning": "epoch 0 is the initialization; epoch e is after e passes over the "
        "training data",
        "scalars": ["train_loss", "val_loss", "train_acc", "val_acc"],
        "torch_version": torch.__version__,
        "deterministic": True,
    }
    if step_stats is not None:
        # Where the per-step activation statistics are and how often they were recorded.
        config["step_stats"] = {"every": step_stats, "folder": STEP_STATS_DIR}
    return config


def train(
    task: TaskSpec,
    out: str | Path,
    *,
    seed: int,
    preset: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    step_stats: int | None = None,
) -> RunResult:
    """Train ``task`` with ``seed`` and write a run folder to ``out``; returns the saved scalars.

    ``step_stats=N`` also records per-step activation statistics every N optimizer steps
    (``dyntools.hooks.ActivationStats`` on the model's default modules, into
    ``out/step_stats/``); they leave the training itself unchanged.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative whole number, got {seed!r}")
    if step_stats is not None and (
        isinstance(step_stats, bool) or not isinstance(step_stats, int) or step_stats < 1
    ):
        raise ValueError(f"step statistics every N steps needs N >= 1, got {step_stats!r}")
    preset = preset or task.default_preset
    hyper = task.hyperparameters(preset, overrides or {})
    _check_hyper(hyper)
    save_at = set(parse_schedule(hyper["checkpoints"]).epochs(int(hyper["epochs"])))
    objective = OBJECTIVES[task.loss]
    start = time.monotonic()
    with deterministic(seed), contextlib.ExitStack() as recording:
        data = task.build_data(hyper, seed)
        spec = task.model_spec(hyper, data)
        model = build_model(spec)
        optimizer = make_optimizer(model.parameters(), hyper)
        n_probe = min(MAX_PROBE_SAMPLES, data.x_val.shape[0])
        config = run_config(task, preset, hyper, seed, data, spec, n_probe, step_stats)
        if step_stats_parts(out) and not overwrite:
            raise FileExistsError(
                f"{out} already holds per-step statistics of a run: choose another folder, or "
                "pass overwrite=True to replace it"
            )
        writer = CheckpointWriter(out, model, config, overwrite=overwrite)
        remove_step_stats(out)  # a replaced run's statistics go with it
        writer.save_probe(data.x_val[:n_probe], data.y_val[:n_probe])
        if step_stats is not None:
            # Each training batch is one forward pass, so the automatic step numbering is the
            # loop's optimizer-step count; evaluation (eval mode) is not recorded.
            recording.enter_context(ActivationStats(model, out, every=step_stats))
        shuffle = torch.Generator().manual_seed(seed)
        records = []
        epochs, step, last_report = int(hyper["epochs"]), 0, -math.inf
        training_start = time.monotonic()
        n_train = int(data.x_train.shape[0])
        batch = int(hyper["batch_size"] or n_train)
        for epoch in range(epochs + 1):
            if epoch > 0:
                order = torch.randperm(n_train, generator=shuffle)
                batches = tuple(torch.split(order, batch))
                step += _train_epoch(model, objective, optimizer, data, batches)
            if epoch not in save_at:
                continue
            train_loss, train_acc = _evaluate(model, objective, data.x_train, data.y_train)
            val_loss, val_acc = _evaluate(model, objective, data.x_val, data.y_val)
            record = EpochRecord(epoch, step, train_loss, val_loss, train_acc, val_acc)
            records.append(record)
            writer.save(
                epoch,
                step=step,
                train_loss=train_loss,
                val_loss=val_loss,
                train_acc=train_acc,
                val_acc=val_acc,
            )
            now = time.monotonic()
            if epoch == 0:
                training_start = now  # the ETA leaves out the set-up (imports, data, init)
            if progress is not None and (now - last_report >= 2.0 or epoch == epochs):
                last_report = now
                eta = (
                    _format_seconds((now - training_start) / epoch * (epochs - epoch))
                    if epoch
                    else "?"
                )
                progress(
                    f"{task.name} seed {seed}: epoch {epoch}/{epochs}  "
                    f"train_loss {train_loss:.4f} val_loss {val_loss:.4f}  "
                    f"train_acc {train_acc:.3f} val_acc {val_acc:.3f}  "
                    f"[{_format_seconds(now - start)}, ETA {eta}]"
                )
    return RunResult(Path(out), tuple(records), time.monotonic() - start)


def _check_hyper(hyper: Mapping[str, Any]) -> None:
    epochs = hyper["epochs"]
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a whole number >= 1, got {epochs!r}")
    batch = hyper["batch_size"]
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ValueError(f"batch size must be a whole number >= 1 (or full batch), got {batch!r}")
    lr, decay = hyper["lr"], hyper["weight_decay"]
    if not _is_finite_number(lr) or lr <= 0:
        raise ValueError(f"learning rate (--lr) must be a finite number > 0, got {lr!r}")
    if not _is_finite_number(decay) or decay < 0:
        raise ValueError(f"weight decay must be a finite number >= 0, got {decay!r}")


def _is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
