"""CheckpointWriter: round trip, tied/non-contiguous/low-precision tensors, overwrite, atomicity."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from dyntools.checkpoints import CheckpointWriter, Run, read_run, read_run_json
from dyntools.checkpoints.format import RUN_SCHEMA_VERSION


def read_own_run(path: Path) -> Run:
    """The run in ``path``, as the readers see it."""
    run = read_run(path)
    assert run.layout == "dyntools"
    return run


class TiedNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(7, 4)
        self.hidden = torch.nn.Linear(4, 4)
        self.unembed = torch.nn.Linear(4, 7, bias=False)
        self.unembed.weight = self.embed.weight  # tied weights
        self.register_buffer("transposed", torch.arange(6.0).reshape(2, 3).t())  # non-contiguous


def config() -> dict[str, object]:
    return {
        "task": "unit-test",
        "model": {"name": "tied", "kwargs": {}},
        "optimizer": {"name": "SGD", "lr": 0.1},
        "seed": 3,
    }


def test_round_trip_tensors_and_metadata(tmp_path: Path) -> None:
    model = TiedNet()
    writer = CheckpointWriter(tmp_path / "run", model, config())
    writer.save(0, train_loss=2.5, val_acc=0.25)
    with torch.no_grad():
        model.hidden.weight.add_(1.0)
    path = writer.save(1, step=40, train_loss=1.25, val_acc=float("nan"))

    loaded = load_file(str(path))
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded[name], tensor), name
    run = read_own_run(tmp_path / "run")
    assert [c.epoch for c in run.checkpoints] == [0, 1]
    assert [c.step for c in run.checkpoints] == [0, 40]
    assert run.checkpoints[0].scalars == {"train_loss": 2.5, "val_acc": 0.25}
    assert run.checkpoints[1].scalars["train_loss"] == 1.25
    assert run.checkpoints[1].scalars["val_acc"] != run.checkpoints[1].scalars["val_acc"]  # nan
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    assert all(isinstance(v, str) for v in metadata.values())
    assert json.loads(metadata["dyntools.tied"]) == [["embed.weight", "unembed.weight"]]


def test_save_step_records_a_step_and_no_epoch(tmp_path: Path) -> None:
    # Loops that save several times per epoch (the Trainer and Lightning callbacks)
    writer = CheckpointWriter(tmp_path / "run", TiedNet(), config())
    writer.save_step(0)
    path = writer.save_step(12_345_678, loss=0.5)
    assert path.name == "step_12345678.safetensors"
    with pytest.raises(FileExistsError, match="step 0 was saved before"):
        writer.save_step(0)
    with pytest.raises(ValueError, match="reserved"):
        writer.save_step(3, epoch=1.0)
    with pytest.raises(ValueError, match="non-negative"):
        writer.save_step(-1)
    run = read_own_run(tmp_path / "run")
    assert [(c.step, c.epoch) for c in run.checkpoints] == [(0, None), (12_345_678, None)]
    assert run.checkpoints[1].scalars == {"loss": 0.5}
    with pytest.raises(FileExistsError):  # a run saved by step is a run too
        CheckpointWriter(tmp_path / "run", TiedNet(), config())


def test_run_json_schema(tmp_path: Path) -> None:
    CheckpointWriter(tmp_path, TiedNet(), config())
    run = read_run_json(tmp_path)
    assert run["schema_version"] == RUN_SCHEMA_VERSION
    assert run["dyntools_version"]
    assert run["task"] == "unit-test" and run["seed"] == 3
    assert run["model"] == {"name": "tied", "kwargs": {}}


def test_low_precision_tensors_keep_their_dtype(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2).to(torch.bfloat16)
    path = CheckpointWriter(tmp_path, model, config()).save(0)
    assert load_file(str(path))["weight"].dtype == torch.bfloat16
    half = torch.nn.Linear(3, 2).half()
    path = CheckpointWriter(tmp_path / "half", half, config()).save(0)
    assert torch.equal(load_file(str(path))["weight"], half.weight.detach())


def test_refuses_to_overwrite_a_run_unless_asked(tmp_path: Path) -> None:
    writer = CheckpointWriter(tmp_path, TiedNet(), config())
    writer.save(0)
    with pytest.raises(FileExistsError, match="already holds a run"):
        CheckpointWriter(tmp_path, TiedNet(), config())
    with pytest.raises(FileExistsError, match="epoch 0 was saved before"):
        writer.save(0)
    CheckpointWriter(tmp_path, TiedNet(), config(), overwrite=True)
    assert read_own_run(tmp_path).checkpoints == ()


def test_bad_scalars_and_config_are_refused(tmp_path: Path) -> None:
    writer = CheckpointWriter(tmp_path, TiedNet(), config())
    with pytest.raises(TypeError, match="must be a number"):
        writer.save(0, note="hello")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reserved"):
        writer.save(0, format=1.0)
    with pytest.raises(ValueError, match="JSON-serializable"):
        CheckpointWriter(tmp_path / "other", TiedNet(), {"bad": object()})
    assert read_own_run(tmp_path).checkpoints == ()


def test_probe_is_limited_to_512_samples(tmp_path: Path) -> None:
    writer = CheckpointWriter(tmp_path, TiedNet(), config())
    with pytest.raises(ValueError, match=r"1\.\.512"):
        writer.save_probe(torch.zeros(513, 2), torch.zeros(513))
    writer.save_probe(torch.ones(5, 2), torch.arange(5))
    probe = load_file(str(tmp_path / "probe.safetensors"))
    assert torch.equal(probe["y"], torch.arange(5))
    assert read_own_run(tmp_path).probe == tmp_path / "probe.safetensors"


CRASHING_WRITER = textwrap.dedent(
    """
    import os, sys, torch
    import safetensors.torch as st
    import dyntools.checkpoints.writer as writer_module

    real_save_file = st.save_file

    def save_then_die(tensors, filename, metadata=None):
        real_save_file(tensors, filename, metadata=metadata)
        with open(filename, "r+b") as f:  # half-written, as a crash mid-write would leave it
            f.truncate(os.path.getsize(filename) // 2)
        os._exit(9)  # the process dies before the rename: no cleanup handlers run

    writer_module.save_file = save_then_die
    w = writer_module.CheckpointWriter(sys.argv[1], torch.nn.Linear(64, 64), {"task": "t"},
                                       overwrite=True)
    w.save(0)
    """
)


def test_a_crash_mid_write_leaves_no_valid_looking_checkpoint(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, str(tmp_path)], capture_output=True, check=False
    )
    assert result.returncode == 9, result.stderr.decode()
    names = sorted(p.name for p in tmp_path.iterdir())
    leftovers = [n for n in names if n.endswith(".tmp")]
    assert leftovers and all(n.startswith(".") for n in leftovers)
    assert not [n for n in names if n.endswith(".safetensors")]
    run = read_own_run(tmp_path)
    assert run.checkpoints == () and run.problems == ()
