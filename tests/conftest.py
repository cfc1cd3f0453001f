from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_RUNS = REPO_ROOT / "sample_runs"


@pytest.fixture(autouse=True)
def _seed_torch() -> None:
    import torch

    torch.manual_seed(0)


# The app tests' analysed folder is computed once per session, so its fixtures live here.
from app_fixtures import _config_home, analysed_folder, fresh_folder  # noqa: E402, F401
