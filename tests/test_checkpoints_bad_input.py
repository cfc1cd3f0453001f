"""Bad input: each case names the file and what to do, and the rest of the folder is still read."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import torch
from layout_builders import run_without_file_permission_bypass, state, write_bare
from safetensors.torch import save, save_file

from dyntools.checkpoints import Discovery, Run, discover_runs, open_checkpoint


def only_run(found: Discovery) -> Run:
    assert len(found.runs) == 1, found.runs
    return found.runs[0]


def problem_about(found: Discovery, path: Path) -> str:
    messages = [p.message() for p in found.all_problems() if p.path == path]
    assert len(messages) == 1, [p.message() for p in found.all_problems()]
    return messages[0]


def bare_run_with(tmp_path: Path, damage: bytes | None) -> tuple[Discovery, Path]:
    """Three good checkpoints and one more (step 5) whose bytes are ``damage``."""
    write_bare(tmp_path / "run", [1, 2, 3])
    bad = tmp_path / "run" / "step_5.safetensors"
    if damage is not None:
        bad.write_bytes(damage)
    return discover_runs(tmp_path), bad


def good_bytes() -> bytes:
    return save(state(9), metadata={"train_loss": "0.1"})


def test_zero_byte_file(tmp_path: Path) -> None:
    found, bad = bare_run_with(tmp_path, b"")
    assert [c.step for c in only_run(found).checkpoints] == [1, 2, 3]
    message = problem_about(found, bad)
    assert "empty file (0 bytes)" in message and "save that checkpoint again" in message


def test_truncated_safetensors(tmp_path: Path) -> None:
    data = good_bytes()
    found, bad = bare_run_with(tmp_path, data[: len(data) - 7])
    assert [c.step for c in only_run(found).checkpoints] == [1, 2, 3]
    assert "truncated" in problem_about(found, bad)


def test_garbage_header(tmp_path: Path) -> None:
    garbage = b"{not json at all!!"
    found, bad = bare_run_with(tmp_path, struct.pack("<Q", len(garbage)) + garbage + b"\0" * 16)
    assert len(only_run(found).checkpoints) == 3
    assert "not valid JSON" in problem_about(found, bad)


def test_header_length_larger_than_the_file(tmp_path: Path) -> None:
    found, bad = bare_run_with(tmp_path, struct.pack("<Q", 10_000) + b'{"a": 1}')
    assert len(only_run(found).checkpoints) == 3
    message = problem_about(found, bad)
    assert "claims 10000 bytes but the file has 16 bytes" in message


def test_pickle_that_needs_full_unpickling_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (Path.touch, (str(marker),))  # would create the marker if ever unpickled

    folder = tmp_path / "loop"
    folder.mkdir()
    torch.save(state(1), folder / "ckpt_1.pt")
    torch.save({"model": state(2), "extra": Payload()}, folder / "ckpt_2.pt")
    found = discover_runs(tmp_path)
    assert [c.step for c in only_run(found).checkpoints] == [1]
    message = problem_about(found, folder / "ckpt_2.pt")
    assert "refused" in message and "weights_only=True" in message
    assert not marker.exists()
    # The refusal matters: a full unpickling of the same file does run the payload.
    torch.load(folder / "ckpt_2.pt", weights_only=False)
    assert marker.exists()


def test_checkpoint_with_other_shapes_than_its_run(tmp_path: Path) -> None:
    write_bare(tmp_path / "run", [1, 2, 4])
    odd = tmp_path / "run" / "step_3.safetensors"
    save_file(state(3, hidden=6), str(odd))
    found = discover_runs(tmp_path)
    assert [c.step for c in only_run(found).checkpoints] == [1, 2, 4]
    message = problem_about(found, odd)
    assert "'layers.0.bias' has shape [6], the others [4]" in message


def test_two_checkpoints_with_the_same_step(tmp_path: Path) -> None:
    write_bare(tmp_path / "run", [1, 2])
    duplicate = tmp_path / "run" / "step_02.safetensors"
    save_file(state(7), str(duplicate))
    found = discover_runs(tmp_path)
    run = only_run(found)
    assert [c.path.name for c in run.checkpoints] == ["step_1.safetensors", "step_02.safetensors"]
    message = problem_about(found, tmp_path / "run" / "step_2.safetensors")
    assert "step 2 also belongs to step_02.safetensors" in message


def test_file_deleted_between_discovery_and_reading(tmp_path: Path) -> None:
    write_bare(tmp_path / "run", [1, 2])
    run = only_run(discover_runs(tmp_path))
    run.checkpoints[1].path.unlink()
    with open_checkpoint(run.checkpoints[0]) as source:
        assert source.read("layers.0.bias").shape == (4,)
    with pytest.raises(FileNotFoundError, match="deleted after the folder was scanned"):
        open_checkpoint(run.checkpoints[1])


def test_file_deleted_between_listing_and_header_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dyntools.checkpoints.layout_bare as layout_bare

    paths = write_bare(tmp_path / "run", [1, 2])
    real = layout_bare.read_header

    def vanishing(path: Path):  # type: ignore[no-untyped-def]
        if path == paths[1]:
            path.unlink()  # another process deletes it right after the folder was listed
        return real(path)

    monkeypatch.setattr(layout_bare, "read_header", vanishing)
    found = discover_runs(tmp_path)
    assert [c.step for c in only_run(found).checkpoints] == [1]
    assert "disappeared while the folder was scanned" in problem_about(found, paths[1])


def test_file_changed_after_discovery(tmp_path: Path) -> None:
    paths = write_bare(tmp_path / "run", [1])
    run = only_run(discover_runs(tmp_path))
    save_file(state(1, hidden=9), str(paths[0]))
    with pytest.raises(ValueError, match="changed since the folder was scanned"):
        open_checkpoint(run.checkpoints[0])


def test_unreadable_file_and_folder(tmp_path: Path) -> None:
    write_bare(tmp_path / "run", [1, 2, 3])
    locked = tmp_path / "run" / "step_2.safetensors"
    locked.chmod(0)
    locked_dir = tmp_path / "private"
    write_bare(locked_dir, [1])
    locked_dir.chmod(0)
    code = (
        "from dyntools.checkpoints import discover_runs\n"
        f"found = discover_runs({str(tmp_path)!r})\n"
        "print([c.step for r in found.runs for c in r.checkpoints])\n"
        "for p in found.all_problems(): print(p.message())\n"
    )
    try:
        result = run_without_file_permission_bypass(code)
    finally:
        locked.chmod(0o644)
        locked_dir.chmod(0o755)
    if "prctl(PR_CAPBSET_DROP) failed" in result.stderr:
        pytest.skip("running as root without CAP_SETPCAP: cannot make permissions apply")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "[1, 3]"
    assert f"{locked}: permission denied; make it readable" in result.stdout
    assert f"{locked_dir}: permission denied: cannot list this folder" in result.stdout


def test_symlink_loop(tmp_path: Path) -> None:
    write_bare(tmp_path / "runs" / "a", [1, 2])
    (tmp_path / "runs" / "a" / "back").symlink_to(tmp_path / "runs")
    (tmp_path / "runs" / "self").symlink_to(tmp_path / "runs" / "self")  # points at itself
    found = discover_runs(tmp_path)
    assert [r.run_id for r in found.runs] == ["runs/a"]
    loop = problem_about(found, tmp_path / "runs" / "a" / "back")
    assert "symbolic link loop" in loop
    assert "broken symbolic link" in problem_about(found, tmp_path / "runs" / "self")


def test_empty_folder(tmp_path: Path) -> None:
    found = discover_runs(tmp_path)
    assert found.runs == ()
    (problem,) = found.problems
    assert problem.path == tmp_path
    assert "no checkpoints found" in problem.what
    assert "checkpoint-N/" in problem.hint


def test_path_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist: check the path"):
        discover_runs(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        discover_runs(tmp_path / "file.txt")


def test_damaged_hf_checkpoint_and_missing_shard(tmp_path: Path) -> None:
    from layout_builders import copy_fixture

    run_dir = copy_fixture("hf_sharded", tmp_path)
    (run_dir / "checkpoint-16" / "model-00002-of-00003.safetensors").unlink()
    (run_dir / "checkpoint-24" / "trainer_state.json").write_text("{oops")
    found = discover_runs(tmp_path)
    run = only_run(found)
    assert [c.step for c in run.checkpoints] == [8, 24]
    missing = problem_about(found, run_dir / "checkpoint-16" / "model-00002-of-00003.safetensors")
    assert "missing" in missing and "copy the missing shard back" in missing
    assert "not valid JSON" in problem_about(
        found, run_dir / "checkpoint-24" / "trainer_state.json"
    )
    # The earlier checkpoints' trainer_state.json still give checkpoint 24 nothing, 8 its losses.
    assert "train_loss" in run.checkpoints[0].scalars


def test_truncated_torch_file(tmp_path: Path) -> None:
    folder = tmp_path / "loop"
    folder.mkdir()
    torch.save(state(1), folder / "ckpt_1.pt")
    data = (folder / "ckpt_1.pt").read_bytes()
    (folder / "ckpt_2.pt").write_bytes(data[: len(data) // 2])
    (folder / "ckpt_3.pt").write_bytes(b"")
    found = discover_runs(tmp_path)
    assert [c.step for c in only_run(found).checkpoints] == [1]
    assert "not a readable torch file" in problem_about(found, folder / "ckpt_2.pt")
    assert "empty file (0 bytes)" in problem_about(found, folder / "ckpt_3.pt")
