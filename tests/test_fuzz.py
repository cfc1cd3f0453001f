"""Property-based hostile input: generated safetensors headers, JSON side files and names.

For every generated folder: discovery never raises and reads the good run beside it; a generated
file is either read or named in exactly one problem line with a hint; a readable one computes
without an exception; no human-readable output carries a raw control character.
"""

from __future__ import annotations

import json
import os
import re
import struct
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
from adversarial import good_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from dyntools.checkpoints import discover_runs
from dyntools.cli import main
from dyntools.pipeline import ComputeOptions, compute

pytestmark = pytest.mark.slow

# `make soak` runs many more, with fresh examples each time.
SOAK = int(os.environ.get("DYNTOOLS_SOAK_EXAMPLES", "0"))
SETTINGS = settings(
    max_examples=SOAK or 30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=not SOAK,  # the same examples on every test run: CI never flakes on a new one
)
OPTIONS = ComputeOptions(metrics=("l2", "mean_w"), workers=1)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
dtypes = st.sampled_from(["F32", "F16", "BF16", "I64", "BOOL", "F64"]) | json_values
shapes = st.lists(st.integers(min_value=0, max_value=6), max_size=3) | json_values
names = st.text(min_size=1, max_size=12)


@st.composite
def headers(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A safetensors header (JSON) and data: mostly well-formed, often not."""
    entries: dict[str, Any] = {}
    offset = 0
    for name in draw(st.lists(names, max_size=4, unique=True)):
        shape = draw(shapes)
        dtype = draw(dtypes)
        numel = 1
        if isinstance(shape, list) and all(isinstance(s, int) for s in shape):
            for size in shape:
                numel *= size
        width = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "BOOL": 1, "F64": 8}.get(
            dtype if isinstance(dtype, str) else "", 4
        )
        end = offset + numel * width + draw(st.sampled_from([0, 0, 0, 1, -1]))
        offsets = draw(st.sampled_from([[offset, end], [offset, end], [end, offset], "x"]))
        entries[name] = {"dtype": dtype, "shape": shape, "data_offsets": offsets}
        offset = max(offset, end)
    if draw(st.booleans()):
        entries["__metadata__"] = draw(json_values)
    data = bytes(max(0, offset + draw(st.sampled_from([0, 0, 3]))))
    return json.dumps(entries).encode(), data


def _check(root: Path, bad: Path) -> None:
    found = discover_runs(root)
    runs = {run.run_id: run for run in found.runs}
    assert len(runs["good"].checkpoints) == 3
    problems = [p for p in found.all_problems() if p.path == bad]
    read = any(bad in ref.files for run in found.runs for ref in run.checkpoints)
    assert read or len(problems) == 1, [p.message() for p in found.all_problems()]
    assert not (read and problems)
    for problem in found.all_problems():
        assert problem.what and problem.hint
        assert not CONTROL.search(problem.message())


@SETTINGS
@given(header=headers(), raw=st.booleans(), garbage=st.binary(max_size=40))
def test_generated_safetensors_files(
    header: tuple[bytes, bytes], raw: bool, garbage: bytes
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        good_run(root / "good")
        folder = root / "fuzzed"
        folder.mkdir()
        text, data = header
        bad = folder / "step_5.safetensors"
        bad.write_bytes(garbage if raw else struct.pack("<Q", len(text)) + text + data)
        _check(root, bad)
        summary = compute(root, OPTIONS, db=Path(tmp) / "db.duckdb")
        assert all("good" not in failure.file for failure in summary.failed)


@SETTINGS
@given(content=json_values, as_bytes=st.binary(max_size=40), use_bytes=st.booleans())
def test_generated_trainer_state_and_shard_index(
    content: object, as_bytes: bytes, use_bytes: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        good_run(root / "good")
        checkpoint = root / "hf" / "checkpoint-8"
        checkpoint.mkdir(parents=True)
        save_file({"w": torch.ones(2, 2)}, str(checkpoint / "model.safetensors"))
        body = as_bytes if use_bytes else json.dumps(content).encode()
        (checkpoint / "trainer_state.json").write_bytes(body)
        found = discover_runs(root)
        hf = next(run for run in found.runs if run.run_id == "hf")
        assert len(hf.checkpoints) == 1  # the weights are read whatever the side file holds
        sharded = root / "hf2" / "checkpoint-8"
        sharded.mkdir(parents=True)
        (sharded / "model.safetensors.index.json").write_bytes(body)
        _check(root, sharded / "model.safetensors.index.json")


@SETTINGS
@given(tensor_names=st.lists(names, min_size=1, max_size=3, unique=True), run_name=names)
def test_generated_names(
    tensor_names: list[str], run_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder_name = run_name.replace("/", "_").replace("\x00", "_")
    if folder_name in (".", "..") or folder_name.startswith("."):
        folder_name = "x" + folder_name
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        good_run(root / "good")
        folder = root / folder_name
        folder.mkdir(parents=True)
        for step in (0, 1):
            tensors = {name: torch.randn(2, 3) for name in tensor_names}
            save_file(tensors, str(folder / f"step_{step}.safetensors"))
        found = discover_runs(root)
        assert len({run.run_id: run for run in found.runs}["good"].checkpoints) == 3
        summary = compute(root, OPTIONS, db=Path(tmp) / "db.duckdb")
        assert all("good" not in failure.file for failure in summary.failed)
        capsys.readouterr()
        assert main(["runs", str(root)]) in (0, 1)
        for run in found.runs:
            main(["hookpoints", str(root), "--run", run.run_id])
        out = capsys.readouterr()
        assert not CONTROL.search(out.out + out.err)
