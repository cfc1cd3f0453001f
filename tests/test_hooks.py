"""Per-step activation statistics (dyntools.hooks.ActivationStats) and their files
(dyntools.checkpoints.step_stats): values against numpy on the captured outputs, the default
modules, readers of growing and crashed files, restrictions, hooks removed, and
``dyntools train --step-stats``."""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from dyntools.checkpoints import read_run
from dyntools.checkpoints.step_stats import (
    FRAME_SCHEMA,
    META_KEY,
    StepStatsHeader,
    StepStatsRow,
    StepStatsWriter,
    read_step_stats,
    read_step_stats_part,
    step_stats_parts,
)
from dyntools.cli import main
from dyntools.hooks import (
    ActivationStats,
    _Plan,
    cpu_partials,
    default_modules,
    device_partial,
    partial_from_device,
)
from dyntools.models import build_model
from dyntools.train import get_task, train

ROOT = Path(__file__).resolve().parent.parent
BELOW_THRESHOLD = float(np.nextafter(np.float32(1e-6), np.float32(0)))  # the float32 just below


class Spiky(nn.Module):
    """A side branch whose output holds NaN, inf, values on bin edges and at the threshold."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x * 3.0
        special = [0.25, 10.0, -10.0, 1e-6, BELOW_THRESHOLD, 0.0, math.nan, math.inf, -math.inf]
        out[0, : len(special)] = torch.tensor(special)
        return out


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 32)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(32, 3)
        self.side = Spiky()
        with torch.no_grad():
            self.fc1.weight.mul_(4.0)  # some outputs past the last edge (10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.act(self.fc1(x))
        self.side(hidden)  # recorded, but the loss never sees its NaN
        out: torch.Tensor = self.fc2(hidden)
        return out


def reference(
    outputs: list[np.ndarray[Any, Any]], edges: np.ndarray[Any, Any], threshold: float
) -> dict[str, Any]:
    """The statistics computed independently with numpy, in float64."""
    values = np.concatenate([o.ravel().astype(np.float64) for o in outputs])
    finite = values[np.isfinite(values)]
    bucket = np.searchsorted(edges, np.abs(finite), side="right")
    found = np.bincount(bucket, minlength=len(edges) + 1)
    return {
        "count": values.size,
        "mean": finite.mean(),
        "std": finite.std(ddof=1),
        "dead_fraction": np.count_nonzero(np.abs(values) < threshold) / values.size,
        "counts": found[1:-1].tolist(),
        "underflow": int(found[0]),
        "overflow": int(found[-1]),
        "nonfinite": values.size - finite.size,
    }


def train_steps(model: nn.Module, steps: int, *, seed: int = 0, batch: int = 16) -> None:
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    for _ in range(steps):
        x = torch.randn(batch, 8, generator=generator)
        loss = model(x).square().mean()
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()


def captured(
    model: nn.Module, paths: list[str]
) -> tuple[dict[str, list[np.ndarray[Any, Any]]], list[Any]]:
    """Copies of each module's training-mode outputs, in call order."""
    seen: dict[str, list[np.ndarray[Any, Any]]] = {path: [] for path in paths}
    handles = []
    for path in paths:

        def hook(module: nn.Module, _i: object, output: torch.Tensor, path: str = path) -> None:
            if module.training:
                seen[path].append(output.detach().numpy().copy())

        handles.append(model.get_submodule(path).register_forward_hook(hook))
    return seen, handles


def assert_row_matches(row: dict[str, Any], expected: dict[str, Any]) -> None:
    assert list(row["counts"]) == expected["counts"]
    for key in ("count", "underflow", "overflow", "nonfinite"):
        assert row[key] == expected[key], key
    assert row["dead_fraction"] == pytest.approx(expected["dead_fraction"], abs=0)
    assert row["mean"] == pytest.approx(expected["mean"], rel=1e-5, abs=1e-6)
    assert row["std"] == pytest.approx(expected["std"], rel=1e-5)


@pytest.mark.parametrize(
    ("background", "bins", "value_range"),
    [(True, 40, (0.0, 10.0)), (False, 40, (0.0, 10.0)), (True, 7, (0.3, 3.1))],
    ids=["thread-default-bins", "inline-default-bins", "thread-other-range"],
)
def test_stats_equal_numpy_on_the_captured_outputs(
    tmp_path: Path, background: bool, bins: int, value_range: tuple[float, float]
) -> None:
    torch.manual_seed(0)
    model = Tiny()
    paths = ["fc1", "act", "side"]
    seen, handles = captured(model, paths)
    with ActivationStats(
        model, tmp_path, modules=paths, bins=bins, range=value_range, background=background
    ) as stats:
        train_steps(model, 3)
        model.eval()
        model(torch.randn(4, 8))  # evaluation: neither recorded nor a step
        train_steps(model, 1, seed=1)
    for handle in handles:
        handle.remove()
    frame = read_step_stats(tmp_path)
    assert frame.schema == FRAME_SCHEMA
    assert frame["step"].to_list() == [s for s in range(4) for _ in paths]
    assert frame["module"].to_list() == paths * 4
    assert frame["module_type"].to_list()[:3] == ["Linear", "ReLU", "Spiky"]
    assert frame["low"].unique().to_list() == [value_range[0]]
    edges = np.array(stats.edges)
    assert len(edges) == bins + 1 and edges[-1] == value_range[1]
    for row in frame.iter_rows(named=True):
        expected = reference([seen[row["module"]][row["step"]]], edges, 1e-6)
        assert_row_matches(row, expected)
    side = frame.filter(pl.col("module") == "side").row(0, named=True)
    assert side["nonfinite"] == 3 and side["dead_fraction"] > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("value_range", [(0.0, 10.0), (0.3, 3.1), (0.0, 300 / 1024)])
def test_the_device_path_agrees_with_the_cpu_path_and_numpy(
    dtype: torch.dtype, value_range: tuple[float, float]
) -> None:
    # The kernels an accelerator runs (no synchronisation), here on CPU tensors.
    bins = 40
    plan = _Plan.of(bins, *value_range, 1e-6)
    torch.manual_seed(1)
    values = torch.randn(5000, dtype=dtype) * 4
    edges = np.array(plan.edges)
    values[: len(edges)] = torch.tensor(edges, dtype=dtype)  # every edge itself
    values[len(edges) : len(edges) + 4] = torch.tensor([1e-6, BELOW_THRESHOLD, 0.0, -0.25])
    for with_nonfinite in (False, True):
        if with_nonfinite:
            values[-3:] = torch.tensor([math.nan, math.inf, -math.inf])
        expected = reference([values.numpy()], edges, 1e-6)
        on_cpu = cpu_partials([values], plan)[0].row(0, "m", bins)
        device = partial_from_device(*device_partial(values, plan), plan, dtype).row(0, "m", bins)
        for row in (on_cpu, device):
            assert_row_matches(row.__dict__, expected)


@pytest.mark.parametrize(("bins", "high"), [(40, 10.0), (300, 300 / 64)])
def test_several_outputs_summarised_at_once(bins: int, high: float) -> None:
    # One module's outputs over several steps share one set of torch calls; a NaN in one of them
    # sends that group down the searching path. 300 bins: the wider bin index.
    plan = _Plan.of(bins, 0.0, high, 1e-6)
    assert plan.exact_scale is not None
    torch.manual_seed(2)
    outputs = [torch.randn(3000) * 3 for _ in range(5)]
    outputs[1][:3] = torch.tensor([high, 1e-6, BELOW_THRESHOLD])
    edges = np.array(plan.edges)
    for poisoned in (False, True):
        if poisoned:
            outputs[3][7] = math.nan
        for output, partial in zip(outputs, cpu_partials(outputs, plan), strict=True):
            expected = reference([output.numpy()], edges, 1e-6)
            assert_row_matches(partial.row(0, "m", bins).__dict__, expected)


def test_partials_of_several_calls_pool_exactly() -> None:
    plan = _Plan.of(40, 0.0, 10.0, 1e-6)
    parts = [torch.randn(n) * s for n, s in ((1000, 1.0), (10, 50.0), (1, 3.0), (500, 0.01))]
    pooled = cpu_partials(parts[:1], plan)[0]
    for part in parts[1:]:
        pooled.merge(cpu_partials([part], plan)[0])
    expected = reference([p.numpy() for p in parts], np.array(plan.edges), 1e-6)
    assert_row_matches(pooled.row(0, "m", 40).__dict__, expected)


def test_default_modules_are_activation_functions_else_blocks() -> None:
    mlp = build_model(
        {"name": "mlp", "kwargs": {"in_features": 4, "hidden": [8, 8], "out_features": 2}}
    )
    assert default_modules(mlp) == ["act1", "act2"]
    lenet = get_task("digits-cnn")
    hyper = lenet.hyperparameters(lenet.default_preset, {})
    assert default_modules(build_model(lenet.model_spec(hyper, lenet.build_data(hyper, 0)))) == [
        "relu1",
        "relu2",
        "relu3",
        "relu4",
    ]
    # The modular-addition transformer applies ReLU as a function: its blocks are chosen.
    transformer = build_model(
        {
            "name": "transformer",
            "kwargs": {"d_vocab": 8, "d_vocab_out": 7, "d_model": 8, "n_heads": 2, "d_mlp": 16},
        }
    )
    assert default_modules(transformer) == ["blocks.0"]

    class NewGELUActivation(nn.Module):  # transformers' class name, without transformers
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.gelu(x)

    model = nn.Sequential(
        nn.Linear(4, 4), nn.SiLU(), nn.PixelUnshuffle(1), NewGELUActivation(), nn.Tanh()
    )
    assert default_modules(model) == ["1", "3", "4"]
    blocks = nn.Sequential(
        nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)), nn.Identity(), nn.Linear(2, 2)
    )
    assert default_modules(blocks) == ["0", "2"]  # outermost blocks, no Identity

    class Plain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = nn.Linear(2, 2)
            self.out = nn.Linear(2, 2)

    assert default_modules(Plain()) == ["inp", "out"]


def test_every_modules_and_explicit_steps(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Tiny()
    with ActivationStats(model, tmp_path / "every", modules="fc*", every=3) as stats:
        assert stats.modules == ("fc1", "fc2")
        train_steps(model, 7)
    frame = read_step_stats(tmp_path / "every")
    assert frame["step"].unique(maintain_order=True).to_list() == [0, 3, 6]
    assert set(frame["module"]) == {"fc1", "fc2"}

    # Gradient accumulation: two micro-batches per optimizer step, numbered by set_step.
    seen, handles = captured(model, ["act"])
    with ActivationStats(model, tmp_path / "explicit", modules=["re:a.t"], start_step=100) as stats:
        for step in (10, 11):
            stats.set_step(step)
            for _ in range(2):
                model(torch.randn(4, 8)).sum().backward()
        assert stats.step == 11
    for handle in handles:
        handle.remove()
    frame = read_step_stats(tmp_path / "explicit")
    assert frame["step"].to_list() == [10, 11]
    edges = np.array(stats.edges)
    for row, first in zip(frame.iter_rows(named=True), (0, 2), strict=True):
        assert row["count"] == 2 * 4 * 32
        assert_row_matches(row, reference(seen["act"][first : first + 2], edges, 1e-6))

    with pytest.raises(ValueError, match=r"no hook point matches 'fc3'.*fc1"):
        ActivationStats(model, tmp_path / "bad", modules="fc3")
    for bad in ({"every": 0}, {"bins": 0}, {"range": (1.0, 1.0)}, {"dead_threshold": -1.0}):
        with pytest.raises(ValueError):
            ActivationStats(model, tmp_path / "bad", **bad)
    assert not step_stats_parts(tmp_path / "bad")


def test_closing_leaves_the_model_untouched(tmp_path: Path) -> None:
    torch.manual_seed(0)
    plain, recorded = Tiny(), Tiny()
    recorded.load_state_dict(plain.state_dict())
    hooks_before = {
        name: (len(m._forward_hooks), len(m._forward_pre_hooks))
        for name, m in recorded.named_modules()
    }
    with ActivationStats(recorded, tmp_path, modules=["fc1", "act", "side", "fc2"]) as stats:
        assert len(recorded.act._forward_hooks) == 1
        train_steps(recorded, 3)
    train_steps(plain, 3)
    # Recording changes nothing the model computes, and closing removes every hook.
    for key, value in plain.state_dict().items():
        assert torch.equal(value, recorded.state_dict()[key])
    assert {
        name: (len(m._forward_hooks), len(m._forward_pre_hooks))
        for name, m in recorded.named_modules()
    } == hooks_before
    stats.close()  # twice is fine
    with pytest.raises(ValueError, match="closed"):
        stats.flush()
    train_steps(recorded, 1)
    assert read_step_stats(tmp_path).height == 3 * 4


def test_reader_sees_every_flushed_chunk_while_the_file_grows(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Tiny()
    assert read_step_stats(tmp_path).equals(FRAME_SCHEMA.to_frame())  # nothing recorded yet
    with ActivationStats(model, tmp_path, modules=["act"], flush_seconds=1e9) as stats:
        assert stats.background is False  # the default on the CPU
        for done in range(1, 4):
            train_steps(model, 2, seed=done)
            stats.flush()
            # Finished steps are on disk; the current one stays open (more passes may come).
            assert read_step_stats(tmp_path)["step"].to_list() == list(range(2 * done - 1))
    assert read_step_stats(tmp_path)["step"].to_list() == list(range(6))


def _header() -> StepStatsHeader:
    return StepStatsHeader(
        bins=2,
        low=0.0,
        high=1.0,
        edges=(0.0, 0.5, 1.0),
        dead_threshold=1e-6,
        every=1,
        modules={"a": "ReLU"},
    )


def _rows(step: int) -> list[StepStatsRow]:
    return [StepStatsRow(step, "a", 4, 0.5, 0.1, 0.25, (1, 2), 0, 1, 0)]


def test_a_reader_in_another_thread_never_fails_and_sees_whole_chunks(tmp_path: Path) -> None:
    chunks = 200
    seen: list[int] = []
    errors: list[BaseException] = []
    writing = threading.Event()

    def read() -> None:
        while True:  # one read at least, then until the writer is done
            done = not writing.is_set()
            try:
                steps = read_step_stats(tmp_path)["step"].to_list()
                assert steps == list(range(len(steps))), steps  # whole chunks, in order
            except BaseException as error:  # reported below, in the test's thread
                errors.append(error)
                return
            seen.append(len(steps))
            if done:
                return

    writing.set()
    reader = threading.Thread(target=read)
    reader.start()
    with StepStatsWriter(tmp_path, _header()) as writer:
        for step in range(chunks):
            writer.write(_rows(step))
    writing.clear()
    reader.join()
    assert not errors
    assert seen == sorted(seen) and seen[-1] == chunks


def test_a_truncated_last_chunk_is_skipped(tmp_path: Path) -> None:
    sizes = []
    with StepStatsWriter(tmp_path, _header()) as writer:
        for step in range(3):
            writer.write(_rows(step))
            sizes.append(writer.path.stat().st_size)
        path = writer.path
    whole = path.read_bytes()
    # Cut anywhere inside the third chunk (or its end-of-stream marker): two chunks remain.
    for cut in range(sizes[1], len(whole), 7):
        path.write_bytes(whole[:cut])
        expected = 3 if cut >= sizes[2] else 2
        assert read_step_stats_part(path)["step"].to_list() == list(range(expected))
    for cut in (0, 5, 100):  # not even the schema yet
        path.write_bytes(whole[:cut])
        assert read_step_stats_part(path).height == 0
    path.write_bytes(b"not arrow at all" * 10)
    assert read_step_stats_part(path).height == 0


def test_files_are_plain_arrow_streams_with_the_settings_in_their_metadata(tmp_path: Path) -> None:
    model = Tiny()
    with ActivationStats(model, tmp_path, bins=20, range=(0.0, 5.0), every=2) as stats:
        train_steps(model, 3)
    with pa.ipc.open_stream(pa.OSFile(str(stats.path))) as reader:
        import json

        header = json.loads(reader.schema.metadata[META_KEY.encode()])
        table = reader.read_all()
    assert header["bins"] == 20 and header["edges"] == list(stats.edges)
    assert header["modules"] == {"act": "ReLU"} and header["every"] == 2
    assert table.num_rows == 2 and table.column_names[:2] == ["step", "module"]
    assert pl.read_ipc_stream(stats.path).height == 2  # polars reads a closed file as it is


def test_a_killed_process_loses_only_its_unwritten_steps(tmp_path: Path) -> None:
    script = f"""
import os, torch
from dyntools.hooks import ActivationStats
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU())
stats = ActivationStats(model, {str(tmp_path)!r}, flush_steps=2)
for step in range(7):
    model(torch.randn(3, 4))
stats.flush()
os._exit(1)  # no close(), no end-of-stream marker, no atexit
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stderr
    assert read_step_stats(tmp_path)["step"].to_list() == list(range(6))


def test_a_second_session_adds_a_file_and_newer_rows_win(tmp_path: Path) -> None:
    model = Tiny()
    with ActivationStats(model, tmp_path, modules="act"):
        train_steps(model, 4)
    with ActivationStats(model, tmp_path, modules="act", start_step=2):  # resumed at step 2
        train_steps(model, 3)
    assert [p.name for p in step_stats_parts(tmp_path)] == [
        "part-000001.arrows",
        "part-000002.arrows",
    ]
    frame = read_step_stats(tmp_path)
    assert frame["step"].to_list() == [0, 1, 2, 3, 4]
    assert frame.height == 5
    with pytest.raises(FileNotFoundError, match="not a folder"):
        read_step_stats(tmp_path / "missing")


@pytest.mark.parametrize("background", [False, True])
def test_a_failing_write_is_reported_with_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, background: bool
) -> None:
    model = Tiny()
    stats = ActivationStats(model, tmp_path, modules="act", flush_seconds=0, background=background)

    def full(_rows: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(stats._writer, "write", full)
    # Inline, the next step reports it; from the thread, a later step or at the latest close().
    with pytest.raises(RuntimeError, match=r"part-000001\.arrows failed: .*No space left"):
        train_steps(model, 5)
        stats.close()
    with contextlib.suppress(RuntimeError):  # when a step raised, close() raises it again
        stats.close()
    assert not model.act._forward_hooks


def test_train_records_step_stats_without_changing_the_run(tmp_path: Path) -> None:
    tiny = {
        "n_bits": 8,
        "n_train": 64,
        "n_val": 16,
        "hidden": 16,
        "epochs": 2,
        "checkpoints": "every",
        "batch_size": 16,
    }
    task = get_task("sparse-parity")
    plain = train(task, tmp_path / "plain", seed=0, overrides=tiny)
    recorded = train(task, tmp_path / "recorded", seed=0, overrides=tiny, step_stats=1)
    assert plain.records == recorded.records
    for epoch in range(3):
        name = f"epoch_{epoch:05d}.safetensors"
        a, b = load_file(tmp_path / "plain" / name), load_file(tmp_path / "recorded" / name)
        assert all(torch.equal(a[k], b[k]) for k in a)
    frame = read_step_stats(tmp_path / "recorded")
    last_step = read_run(tmp_path / "recorded").checkpoints[-1].step
    assert frame["step"].to_list() == list(range(last_step))  # 4 batches x 2 epochs
    assert set(frame["module"]) == {"act1"}
    assert read_run(tmp_path / "recorded").config["step_stats"] == {
        "every": 1,
        "folder": "step_stats",
    }
    assert "step_stats" not in read_run(tmp_path / "plain").config


def test_dyntools_train_step_stats_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["train", "digits-cnn", "--seed", "0", "--out", str(out), "--epochs", "1"]
    assert main([*args, "--step-stats-every", "5", "--quiet"]) == 0
    frame = read_step_stats(out)
    steps = read_run(out).checkpoints[-1].step
    assert frame["step"].unique(maintain_order=True).to_list() == list(range(0, steps, 5))
    assert frame["module"].unique(maintain_order=True).to_list() == [
        "relu1",
        "relu2",
        "relu3",
        "relu4",
    ]
    # Replacing the run replaces its statistics too.
    assert main([*args, "--overwrite", "--step-stats"]) == 0
    assert "and per-step activation statistics" in capsys.readouterr().err
    assert read_step_stats(out)["step"].unique().len() == steps
    assert len(step_stats_parts(out)) == 1
    assert main([*args, "--overwrite", "--quiet"]) == 0
    assert not step_stats_parts(out)
    assert main([*args, "--overwrite", "--step-stats-every", "0"]) == 2
    assert "--step-stats-every must be >= 1, got 0" in capsys.readouterr().err


def test_no_file_no_rows(tmp_path: Path) -> None:
    assert read_step_stats(tmp_path).is_empty()
    (tmp_path / "step_stats").mkdir()
    (tmp_path / "step_stats" / "part-000001.arrows").touch()  # created, nothing written yet
    assert read_step_stats(tmp_path).is_empty()
    assert os.listdir(tmp_path / "step_stats") == ["part-000001.arrows"]
