"""A small analysed folder for the app tests: two sparse-parity sample runs (every other
checkpoint, with their probe batch) with weight and activation metrics computed through the
real pipeline into a real DuckDB file, and a recent-folders file kept out of the home dir."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dyntools.pipeline.options import ComputeOptions
from dyntools.pipeline.runner import compute

REPO_ROOT = Path(__file__).resolve().parent.parent
APP = str(REPO_ROOT / "streamlit_app.py")
SAMPLE = REPO_ROOT / "sample_runs" / "sparse-parity"
RUNS = ("sparse-parity/seed0", "sparse-parity/seed1")


def copy_runs(target: Path, every: int = 2) -> Path:
    for run in RUNS:
        source = REPO_ROOT / "sample_runs" / run
        dest = target / run
        dest.mkdir(parents=True)
        for name in ("run.json", "probe.safetensors"):
            shutil.copy2(source / name, dest / name)
        for checkpoint in sorted(source.glob("epoch_*.safetensors"))[::every]:
            shutil.copy2(checkpoint, dest / checkpoint.name)
    return target


@pytest.fixture(scope="session")
def analysed_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Computed once per test session; tests must not write to it (use ``fresh_folder``)."""
    folder = copy_runs(tmp_path_factory.mktemp("app") / "runs")
    compute(folder, ComputeOptions(activations=True, workers=1))
    return folder


@pytest.fixture
def fresh_folder(tmp_path: Path) -> Path:
    """The same runs with nothing computed."""
    return copy_runs(tmp_path / "runs")


@pytest.fixture(autouse=True)
def _config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test keeps its settings (recently used folders) in a temporary config dir, never
    the user's: autouse, so that no test can forget it."""
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home
