"""``dyntools runs`` and ``dyntools hookpoints``: documented JSON, tables and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from layout_builders import FIXTURES, copy_fixture, write_bare

from dyntools.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_runs_json_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy_fixture("hf_trainer", tmp_path)
    write_bare(tmp_path / "bare", [2, 1])
    (tmp_path / "bare" / "step_3.safetensors").write_bytes(b"")
    status, out, _ = run_cli(capsys, "runs", str(tmp_path), "--json")
    assert status == 0
    document = json.loads(out)
    assert document["schema"] == 1
    assert document["folder"] == str(tmp_path.resolve())
    assert document["problems"] == []
    bare, hf = document["runs"]
    assert hf == {
        "id": "hf_trainer",
        "path": str(tmp_path / "hf_trainer"),
        "layout": "hf-trainer",
        "task": "(hf-trainer)",  # a Trainer folder names no task: grouped by its layout
        "checkpoints": 3,
        "first_step": 8,
        "last_step": 24,
        "scalar_names": ["grad_norm", "learning_rate", "train_loss", "val_loss"],
        "problems": [],
    }
    assert (bare["id"], bare["checkpoints"], bare["first_step"], bare["last_step"]) == (
        "bare",
        2,
        1,
        2,
    )
    (problem,) = bare["problems"]
    assert set(problem) == {"path", "what", "hint"}
    assert problem["path"].endswith("step_3.safetensors") and "empty" in problem["what"]


def test_runs_table_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(capsys, "runs", str(FIXTURES))
    assert status == 0
    header, *rows = out.splitlines()
    assert header.split() == ["RUN", "LAYOUT", "TASK", "CKPTS", "STEPS", "SCALARS", "PROBLEMS"]
    assert rows[0].split()[:5] == ["hf_sharded", "hf-trainer", "(hf-trainer)", "3", "8..24"]
    assert "3 run(s) in" in out
    status, out, _ = run_cli(capsys, "runs", str(tmp_path))
    assert status == 1 and "no checkpoints found" in out
    status, _, err = run_cli(capsys, "runs", str(tmp_path / "missing"))
    assert status == 2 and "does not exist" in err


def test_hookpoints_json_with_selection(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(
        capsys,
        "hookpoints",
        str(FIXTURES),
        "--run",
        "lightning/lightning_logs/version_0",
        "--select",
        "fc*",
        "bn",
        "--json",
    )
    assert status == 0
    document = json.loads(out)
    assert (document["schema"], document["kind"], document["run"]) == (
        1,
        "weights",
        "lightning/lightning_logs/version_0",
    )
    assert document["checkpoint"]["step"] == 4
    assert [p["path"] for p in document["hook_points"]] == ["bn", "fc1", "fc2"]
    bn = document["hook_points"][0]
    assert bn["natural"] is True and bn["parameters"] == 32 and bn["parent"] is None
    tracked = [t for t in bn["tensors"] if t["name"] == "bn.num_batches_tracked"]
    assert tracked == [
        {"name": "bn.num_batches_tracked", "shape": [], "dtype": "int64", "metric_input": False}
    ]


def test_hookpoints_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, _, err = run_cli(capsys, "hookpoints", str(FIXTURES / "lightning"), "--select", "fc3")
    assert status == 2 and "close matches: " in err and "fc1" in err and "fc2" in err
    status, _, err = run_cli(capsys, "hookpoints", str(FIXTURES), "--run", "nope")
    assert status == 2 and "runs found: hf_sharded, hf_trainer" in err
    status, _, err = run_cli(capsys, "hookpoints", str(tmp_path))
    assert status == 2 and "no run found" in err


def test_hookpoints_table_and_activations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run_cli(capsys, "hookpoints", str(FIXTURES / "lightning"))
    assert status == 0
    assert out.splitlines()[0] == "run lightning_logs/version_0: weights hook points, step 4"
    assert "num_batches_tracked [] int64  [not a metric input]" in out
    write_bare(tmp_path / "run", [1])
    status, out, _ = run_cli(
        capsys, "hookpoints", str(tmp_path), "--activations", "--factory", "tiny_factories:tiny_mlp",
        "--select", "2.*", "--json",
    )  # fmt: skip
    assert status == 0
    document = json.loads(out)
    assert document["kind"] == "activations"
    assert document["hook_points"] == [
        {"path": "2.0", "type": "Linear", "parameters": 12, "leaf": True}
    ]
