"""A small analysis folder with everything computed, for the browser test and the benchmark."""

from __future__ import annotations

import shutil
from pathlib import Path

from dyntools.hmm import FitConfig
from dyntools.pipeline import ComputeOptions, ComputeSummary, compute
from dyntools.pipeline.fits import ServedFit, fit_or_load
from dyntools.store import Store, default_db_path
from e2e.server import REPO_ROOT

SAMPLE_RUNS = REPO_ROOT / "sample_runs"

# (run folder under sample_runs/, keep every n-th checkpoint): two grokking runs and a CNN,
# thinned so computing their activations stays within a few seconds each.
SMALL_SET = (("modular-addition/seed0", 3), ("modular-addition/seed1", 3), ("digits-cnn/seed0", 1))
# One activation hook point per model (the HSIC and histograms of every layer take minutes);
# a regex, because a plain name must match in every run.
SMALL_ACTIVATIONS = r"re:^(blocks\.0\.mlp|fc1)$"


def copy_runs(target: Path, runs: tuple[tuple[str, int], ...] = SMALL_SET) -> Path:
    """Copy sample runs (every n-th checkpoint, always the first and last) into ``target``."""
    for name, every in runs:
        source = SAMPLE_RUNS / name
        if not source.is_dir():
            raise FileNotFoundError(f"{source} is missing: run `make sample-runs` to make it")
        destination = target / name
        destination.mkdir(parents=True, exist_ok=True)
        checkpoints = sorted(source.glob("epoch_*.safetensors"))
        kept = set(checkpoints[::every]) | {checkpoints[-1]}
        for path in source.iterdir():
            if path.is_file() and (path not in checkpoints or path in kept):
                shutil.copy2(path, destination / path.name)
    return target


def compute_all(folder: Path, activation_select: str | None = SMALL_ACTIVATIONS) -> ComputeSummary:
    """Weight metrics of every hook point, activations of the chosen ones, into the store."""
    options = ComputeOptions(
        activations=True,
        activation_select=(activation_select,) if activation_select else (),
        workers=1,
    )
    summary = compute(folder, options)
    if summary.failed:
        reasons = "; ".join(failure.reason for failure in summary.failed[:3])
        raise RuntimeError(f"computing {folder} failed for {len(summary.failed)} units: {reasons}")
    return summary


def fit_default(folder: Path) -> ServedFit:
    """The fit ``dyntools fit FOLDER`` makes (the paper's features), stored for the pages."""
    return fit_or_load(Store(default_db_path(folder)), FitConfig(paper_features=True))


def fit_two_states(folder: Path) -> ServedFit:
    """A second fit (two states, diag covariance), so that the Compare fits page has two."""
    return fit_or_load(
        Store(default_db_path(folder)), FitConfig(paper_features=True, n_states=2, restarts=2)
    )


def record_step_stats(run_dir: Path, steps: int = 60) -> Path:
    """Per-step activation statistics in ``run_dir`` from a short real training loop of a
    small ReLU network (the Training steps page draws them)."""
    import torch

    from dyntools.hooks import ActivationStats

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(128, 8), torch.randint(0, 4, (128,))
    with ActivationStats(model, run_dir):
        for _ in range(steps):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
    return run_dir


def analysis_folder(target: Path) -> Path:
    """Copy the small set, compute it and fit it twice: a folder every page has data for."""
    copy_runs(target)
    record_step_stats(target / SMALL_SET[0][0])
    compute_all(target)
    fit_two_states(target)
    fit_default(target)  # the newest: the fit the other pages start from
    return target
