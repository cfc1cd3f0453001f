"""The CheckpointWriter example in docs/training.md runs as written and makes a run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dyntools.checkpoints import read_run
from dyntools.models import build_model

DOC = Path(__file__).resolve().parent.parent / "docs" / "training.md"
MARKER = "<!-- example: checkpoint-writer -->"


def example_code() -> str:
    text = DOC.read_text(encoding="utf-8")
    after = text.split(MARKER, 1)[1]
    match = re.search(r"```python\n(.*?)```", after, re.DOTALL)
    if match is None:
        raise AssertionError(f"no python block after {MARKER} in {DOC}")
    return match.group(1)


def test_writer_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(example_code(), str(DOC), "exec"), {"__name__": "__example__"})
    run = read_run(tmp_path / "runs" / "my-run")
    assert len(run.checkpoints) >= 2 and run.probe is not None
    assert {"train_loss", "train_acc", "val_acc"} <= set(run.checkpoints[-1].scalars)
    model = build_model(run.config["model"])
    model.load_state_dict(load_file(str(run.checkpoints[-1].path)), strict=True)
    assert isinstance(model, torch.nn.Module)
