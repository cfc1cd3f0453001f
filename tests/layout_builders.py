"""Small checkpoint folders written in tmp_path by the tests (bad input included)."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "layouts"


def state(seed: int = 0, hidden: int = 4) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "layers.0.weight": torch.randn(hidden, 3, generator=generator),
        "layers.0.bias": torch.randn(hidden, generator=generator),
        "layers.2.weight": torch.randn(2, hidden, generator=generator),
        "layers.2.bias": torch.randn(2, generator=generator),
        "mask": torch.ones(3, dtype=torch.bool),
    }


def write_bare(folder: Path, steps: list[int], *, prefix: str = "step_") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for step in steps:
        path = folder / f"{prefix}{step}.safetensors"
        save_file(state(step), str(path), metadata={"train_loss": str(1.0 / (step + 1))})
        paths.append(path)
    return paths


def copy_fixture(name: str, target: Path) -> Path:
    destination = target / name
    shutil.copytree(FIXTURES / name, destination)
    return destination


def run_without_file_permission_bypass(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh Python that file permissions apply to.

    Root ignores permissions through the CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH capabilities.
    Dropping both from the child's bounding set before exec makes the kernel answer EACCES to
    a mode-000 file, as it would for any user, without changing the user id (so the child can
    still import everything).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop = 24

    def drop() -> None:
        if os.geteuid() == 0:
            for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
                if libc.prctl(pr_capbset_drop, capability, 0, 0, 0) != 0:
                    raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")

    return subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=drop,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
