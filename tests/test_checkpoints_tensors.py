"""Lazy tensor reads: values against the libraries' own loaders, stored dtypes, memory."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from layout_builders import FIXTURES, state, write_bare
from safetensors.torch import load_file, save_file

from dyntools.checkpoints import discover_runs, fingerprint_files, open_checkpoint


def test_safetensors_reads_match_load_file(tmp_path: Path) -> None:
    (path,) = write_bare(tmp_path, [3])
    (run,) = discover_runs(tmp_path).runs
    expected = load_file(str(path))
    with open_checkpoint(run.checkpoints[0]) as source:
        assert source.names() == [t.name for t in run.checkpoints[0].tensors]
        for name, tensor in expected.items():
            assert torch.equal(source.read(name), tensor), name
        assert source.shape("layers.0.weight") == (4, 3)
        assert source.dtype("mask") == "bool"
        assert source.read("mask").dtype == torch.bool  # non-float tensors are not converted


def test_tensors_come_back_in_their_stored_dtype(tmp_path: Path) -> None:
    # The metrics upcast what they need and read the stored dtype's resolution from it.
    weights = torch.randn(4, 4, generator=torch.Generator().manual_seed(1))
    tensors = {
        "a.bf16": weights.to(torch.bfloat16),
        "a.fp16": weights.to(torch.float16),
        "a.fp64": weights.to(torch.float64),
        "a.ids": torch.arange(4),
    }
    save_file(tensors, str(tmp_path / "step_1.safetensors"))
    (run,) = discover_runs(tmp_path).runs
    with open_checkpoint(run.checkpoints[0]) as source:
        for name in ("a.bf16", "a.fp16", "a.fp64"):
            read = source.read(name)
            assert read.dtype == tensors[name].dtype
            assert torch.equal(read, tensors[name])
        assert source.dtype("a.bf16") == "bfloat16"
        assert source.read("a.ids").dtype == torch.int64


def test_sharded_reads_match_the_unsharded_checkpoint() -> None:
    (sharded,) = discover_runs(FIXTURES / "hf_sharded").runs
    for checkpoint in sharded.checkpoints:
        reference = load_file(
            str(FIXTURES / "hf_trainer" / f"checkpoint-{checkpoint.step}" / "model.safetensors")
        )
        with open_checkpoint(checkpoint) as source:
            assert sorted(source.names()) == sorted(reference)
            for name in source.names():
                assert torch.equal(source.read(name), reference[name]), name


def test_lightning_reads_strip_the_module_prefix() -> None:
    (run,) = discover_runs(FIXTURES / "lightning").runs
    for checkpoint in run.checkpoints:
        raw = torch.load(checkpoint.files[0], weights_only=True)["state_dict"]
        with open_checkpoint(checkpoint) as source:
            assert sorted(source.names()) == sorted(k.removeprefix("net.") for k in raw)
            for name in source.names():
                assert torch.equal(
                    source.read(name), raw["net." + name].to(source.read(name).dtype)
                )


def test_unknown_tensor_name_lists_some(tmp_path: Path) -> None:
    write_bare(tmp_path, [1])
    (run,) = discover_runs(tmp_path).runs
    with open_checkpoint(run.checkpoints[0]) as source, pytest.raises(KeyError, match=r"layers\.0"):
        source.read("layers.9.weight")


def test_fingerprint_tracks_changes(tmp_path: Path) -> None:
    (path,) = write_bare(tmp_path, [1])
    (run,) = discover_runs(tmp_path).runs
    ref = run.checkpoints[0]
    assert fingerprint_files(ref.files, ref.format) == ref.fingerprint
    assert ref.fingerprint.size == path.stat().st_size
    save_file(state(1), str(path), metadata={"train_loss": "9"})
    assert fingerprint_files(ref.files, ref.format).digest != ref.fingerprint.digest
    (torch_dir := tmp_path / "pt").mkdir()
    torch.save(state(2), torch_dir / "w_2.pt")
    torch_ref = next(r for r in discover_runs(tmp_path).runs if r.run_id == "pt").checkpoints[0]
    assert fingerprint_files(torch_ref.files, torch_ref.format) == torch_ref.fingerprint


MEMORY_PROBE = textwrap.dedent(
    """
    import sys
    import torch
    from dyntools.checkpoints import discover_runs, open_checkpoint

    def peak_mib():
        # VmHWM is this process's own peak; ru_maxrss would carry over the parent's.
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc/self/status")

    before = peak_mib()
    (run,) = discover_runs(sys.argv[1]).runs  # discovery must not read the data either
    with open_checkpoint(run.checkpoints[0]) as source:
        tensor = source.read(sys.argv[2])
        total = float(tensor.sum())  # touch every value read, so lazily mapped pages count
    print(tensor.shape[0], round(peak_mib() - before), total)
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("kind", ["safetensors", "torch"])
def test_reading_one_tensor_does_not_read_the_file(tmp_path: Path, kind: str) -> None:
    # 256 MiB of weights beside a tiny tensor: reading the tiny one must not load the rest.
    tensors = {"big.weight": torch.ones(64, 1024, 1024), "small.weight": torch.ones(10)}
    if kind == "safetensors":
        save_file(tensors, str(tmp_path / "step_1.safetensors"))
    else:
        torch.save(tensors, tmp_path / "step_1.pt")
    del tensors
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(tmp_path), "small.weight"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    shape, growth_mib, total = result.stdout.split()
    assert (shape, total) == ("10", "10.0")
    growth_mib = int(growth_mib)
    assert growth_mib < 64, f"reading 40 bytes raised the peak memory by {growth_mib} MiB"
