"""``dyntools train``: a run end to end, progress on stderr, and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dyntools.checkpoints import read_run
from dyntools.cli import main

TINY = ["--epochs", "2", "--checkpoint-every", "1"]


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        status = main(args)
    except SystemExit as exit_:  # argparse errors exit through SystemExit
        status = int(exit_.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_train_writes_a_run_with_progress_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    status, stdout, stderr = run_cli(
        ["train", "digits-cnn", "--seed", "0", "--out", str(out), *TINY], capsys
    )
    assert status == 0, stderr
    assert stdout == ""
    assert "epoch 2/2" in stderr and "ETA" in stderr and "val_acc" in stderr
    run = read_run(out)
    assert [c.epoch for c in run.checkpoints] == [0, 1, 2]
    assert run.config["seed"] == 0


def test_quiet_and_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "run")
    args = ["train", "sparse-parity", "--seed", "1", "--out", out, "--epochs", "1", "--quiet"]
    assert run_cli(args, capsys) == (0, "", "")
    status, _, stderr = run_cli(args, capsys)
    assert status == 2 and "--overwrite" in stderr
    assert run_cli([*args, "--overwrite", "--checkpoint-log", "3"], capsys) == (0, "", "")


def test_list_shows_tasks_and_presets(capsys: pytest.CaptureFixture[str]) -> None:
    status, stdout, _ = run_cli(["train", "--list"], capsys)
    assert status == 0
    for name in ("modular-addition", "sparse-parity", "digits-cnn", "digits-resnet", "small"):
        assert name in stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", "mnist", "--seed", "0", "--out", "X"], "known tasks: modular-addition"),
        (["train", "digits-cnn", "--seed", "0", "--out", "X", "--epochs", "ten"], "--epochs"),
        (["train", "digits-cnn", "--seed", "0", "--out", "X", "--epochs", "0"], "epochs"),
        (["train", "digits-cnn", "--seed", "0", "--out", "X", "--lr", "-1"], "lr"),
        (["train", "digits-cnn", "--seed", "0", "--out", "X", "--layernorm"], "--layernorm"),
        (
            ["train", "digits-cnn", "--seed", "0", "--out", "X", "--checkpoint-every", "0"],
            "schedule",
        ),
        (["train", "digits-cnn", "--seed", "0", "--out", "X", "--preset", "huge"], "huge"),
        (["train", "digits-cnn", "--seed", "0", "--out", "X", "--bogus"], "--bogus"),
        (["train", "digits-cnn", "--out", "X"], "--seed"),
        (["train"], "name a task"),
    ],
)
def test_user_errors_are_one_line_without_traceback(
    args: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(tmp_path / a) if a == "X" else a for a in args]
    status, _, stderr = run_cli(args, capsys)
    assert status == 2
    assert stderr.count("\n") == 1 and expected in stderr, stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "X").exists()


def test_existing_output_folder_from_a_real_process(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text("{}", encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dyntools",
            "train",
            "sparse-parity",
            "--seed",
            "0",
            "--out",
            str(out),
            "--epochs",
            "1",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--overwrite" in result.stderr
    assert "Traceback" not in result.stderr
