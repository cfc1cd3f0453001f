from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_RUNS = REPO_ROOT / "sample_runs"


@pytest.fixture(autouse=True)
def _seed_torch() -> None:
    import torch

    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _restore_main_module() -> Iterator[None]:
    # AppTest runs page scripts as a new __main__ module and leaves it in sys.modules; worker
    # processes started later (spawn/forkserver) would then re-run that temporary script.
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


# The app tests' analysed folder is computed once per session, so its fixtures live here.
from app_fixtures import _config_home, analysed_folder, fresh_folder  # noqa: E402, F401
