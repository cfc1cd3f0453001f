"""A corpus of hostile and unlucky checkpoint folders: each case writes one bad thing into a
run folder beside good runs, and says what the bad file is called (the one problem line it
must get) and what a run of dyntools must still do.

Used by tests/test_adversarial.py (every case, every invariant) and the fuzz tests.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

DEEP = 200_000  # JSON nesting levels: far past Python's recursion limit


@dataclass(frozen=True)
class Case:
    """One bad thing: ``build(run_dir)`` writes it and returns the path a problem must name
    (None: no problem is expected, the folder must just work)."""

    name: str
    build: Callable[[Path], Path | None]
    hangs: bool = False  # would block a naive reader (FIFOs, devices)


def state(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "layers.0.weight": torch.randn(4, 3, generator=generator),
        "layers.0.bias": torch.randn(4, generator=generator),
        "layers.2.weight": torch.randn(2, 4, generator=generator),
    }


def good_run(folder: Path, steps: tuple[int, ...] = (0, 10, 20), seed: int = 0) -> Path:
    """A bare run of numbered safetensors files: what every case keeps beside its bad file."""
    folder.mkdir(parents=True, exist_ok=True)
    for step in steps:
        save_file(state(seed + step), str(folder / f"step_{step}.safetensors"))
    return folder


def raw_safetensors(
    path: Path, header: object, data: bytes = b"", *, raw: bytes | None = None
) -> Path:
    """A safetensors file with exactly this header (JSON-encoded unless ``raw``) and data."""
    text = raw if raw is not None else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


def _tensor_header(**overrides: object) -> dict[str, object]:
    entry: dict[str, object] = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}
    entry.update(overrides)
    return {"w": entry}


def _dtype_list(run: Path) -> Path:
    return raw_safetensors(run / "step_30.safetensors", _tensor_header(dtype=["F32"]), bytes(16))


def _deep_header(run: Path) -> Path:
    text = ("[" * DEEP + "]" * DEEP).encode()
    return raw_safetensors(run / "step_30.safetensors", None, raw=text)


def _overlapping(run: Path) -> Path:
    header = {
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
    }
    return raw_safetensors(run / "step_30.safetensors", header, bytes(12))


def _gap(run: Path) -> Path:
    header = {
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]},
    }
    return raw_safetensors(run / "step_30.safetensors", header, bytes(24))


def _duplicate_names(run: Path) -> Path:
    text = (
        b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
        b'"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}'
    )
    return raw_safetensors(run / "step_30.safetensors", None, bytes(16), raw=text)


def _metadata_not_strings(run: Path) -> Path:
    header = {**_tensor_header(), "__metadata__": {"train_loss": 0.5, "note": ["x"]}}
    return raw_safetensors(run / "step_30.safetensors", header, bytes(16))


def _huge_sparse_tensor(run: Path) -> Path:
    size = 16 * 2**30  # 16 GiB declared, a sparse file holding 12 KB
    header = {"w": {"dtype": "F32", "shape": [size // 4], "data_offsets": [0, size]}}
    path = raw_safetensors(run / "step_30.safetensors", header, b"")
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size + size)
    return path


def _weird_run(run: Path, name: str, tensor: torch.Tensor) -> None:
    """A run of its own whose every checkpoint holds the odd tensor: no problem expected."""
    folder = run.parent / "weird"
    folder.mkdir(parents=True, exist_ok=True)
    for step in (0, 10):
        save_file({**state(step), name: tensor}, str(folder / f"step_{step}.safetensors"))
    return None


def _zero_size_tensor(run: Path) -> None:
    return _weird_run(run, "empty.weight", torch.zeros(0, 3))


def _glob_name(run: Path) -> None:
    return _weird_run(run, "layers[0].weight", torch.randn(3, 3))


def _superscript_name(run: Path) -> None:
    return _weird_run(run, "blocks.².weight", torch.randn(3, 3))


def _control_name(run: Path) -> None:
    return _weird_run(run, "evil\x1b[2J\x1b]0;owned\x07\n.weight", torch.randn(3, 3))


def _huge_step_name(run: Path) -> Path:
    path = run / "step_99999999999999999999.safetensors"
    save_file(state(5), str(path))
    return path


def _huge_step_metadata(run: Path) -> Path:
    folder = run.parent / "ownhuge"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(json.dumps({"schema_version": 1, "task": "t"}))
    save_file(state(6), str(folder / "epoch_00000.safetensors"), metadata={"step": "0"})
    path = folder / "epoch_00001.safetensors"
    save_file(state(7), str(path), metadata={"step": "1e30"})
    return path


def _torch_infinite_step(run: Path) -> Path:
    folder = run.parent / "lightning"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state(7), "global_step": 3, "epoch": 0}, folder / "a.ckpt")
    path = folder / "last.ckpt"
    torch.save({"state_dict": state(8), "global_step": float("inf"), "epoch": 1}, path)
    return path


def _torch_integer_keys(run: Path) -> Path:
    path = run.parent / "torchrun" / "model_5.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({0: torch.randn(2, 2), 1: torch.randn(2)}, path)
    return path


def _gzip_pt(run: Path) -> Path:
    folder = run.parent / "gzrun"
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state(8), buffer)
    path = folder / "model_5.pt"
    path.write_bytes(gzip.compress(buffer.getvalue()))
    return path


def _zip_bomb(run: Path) -> Path:
    folder = run.parent / "bombrun"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model_5.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        with archive.open("archive/data/0", "w", force_zip64=True) as member:
            chunk = bytes(2**20)
            for _ in range(2048):  # 2 GiB of zeros, a few MB compressed
                member.write(chunk)
    return path


def _hf_run(run: Path, *, state_text: str | None = None, index: object = None) -> Path:
    folder = run.parent / "hf" / "checkpoint-8"
    folder.mkdir(parents=True, exist_ok=True)
    if index is None:
        save_file(state(9), str(folder / "model.safetensors"))
    else:
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    if state_text is not None:
        (folder / "trainer_state.json").write_text(state_text)
    return folder


def _deep_trainer_state(run: Path) -> Path:
    return _hf_run(run, state_text="[" * DEEP + "]" * DEEP) / "trainer_state.json"


def _fifo_trainer_state(run: Path) -> Path:
    folder = _hf_run(run)
    path = folder / "trainer_state.json"
    os.mkfifo(path)
    return path


def _zero_device_trainer_state(run: Path) -> Path:
    folder = _hf_run(run)
    path = folder / "trainer_state.json"
    path.symlink_to("/dev/zero")
    return path


def _fifo_checkpoint(run: Path) -> Path:
    path = run / "step_30.safetensors"
    os.mkfifo(path)
    return path


def _urandom_checkpoint(run: Path) -> Path:
    path = run / "step_30.safetensors"
    path.symlink_to("/dev/urandom")
    return path


def _shard_outside(run: Path) -> Path:
    folder = _hf_run(run, index={"weight_map": {"w": "../../../../../../etc/passwd"}})
    return folder / "model.safetensors.index.json"


def _shard_absolute(run: Path) -> Path:
    folder = _hf_run(run, index={"weight_map": {"w": "/etc/passwd"}})
    return folder / "model.safetensors.index.json"


def _deep_shard_index(run: Path) -> Path:
    folder = _hf_run(run, index={"weight_map": {}})
    path = folder / "model.safetensors.index.json"
    path.write_text("[" * DEEP + "]" * DEEP)
    return path


def _fifo_shard_index(run: Path) -> Path:
    folder = _hf_run(run, index={"weight_map": {}})
    path = folder / "model.safetensors.index.json"
    path.unlink()
    os.mkfifo(path)
    return folder


def _fifo_metrics_csv(run: Path) -> Path:
    folder = run.parent / "lightning_logs" / "version_0"
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.save(
        {"state_dict": state(13), "global_step": 4, "epoch": 0}, folder / "checkpoints" / "a.ckpt"
    )
    path = folder / "metrics.csv"
    os.mkfifo(path)
    return path


def _non_utf8_folder(run: Path) -> Path:
    folder = Path(os.fsdecode(bytes(run.parent) + b"/bad\xffname"))
    good_run(folder, steps=(0,), seed=11)
    return folder


def _run_json_schema_text(run: Path) -> Path:
    folder = run.parent / "ownrun"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(json.dumps({"schema_version": "1", "task": "t"}))
    save_file(state(12), str(folder / "epoch_00000.safetensors"))
    return folder / "run.json"


CASES: tuple[Case, ...] = (
    Case("dtype is a JSON list", _dtype_list),
    Case("header nested 200,000 levels", _deep_header),
    Case("overlapping tensor offsets", _overlapping),
    Case("a gap between tensors", _gap),
    Case("duplicate tensor names", _duplicate_names),
    Case("metadata that is not strings", _metadata_not_strings),
    Case("sparse file declaring a 16 GiB tensor", _huge_sparse_tensor),
    Case("a 0-size tensor", _zero_size_tensor),
    Case("a tensor name with glob characters", _glob_name),
    Case("a name part that is a superscript digit", _superscript_name),
    Case("control characters in a tensor name", _control_name),
    Case("a step of 2^64 or more in the name", _huge_step_name),
    Case("a step of 1e30 in the metadata", _huge_step_metadata),
    Case("a Lightning checkpoint with an infinite global_step", _torch_infinite_step),
    Case("a torch.save dict with integer keys", _torch_integer_keys),
    Case("a gzip-compressed .pt", _gzip_pt),
    Case("a zip bomb .pt", _zip_bomb),
    Case("trainer_state.json nested 200,000 levels", _deep_trainer_state),
    Case("trainer_state.json is a FIFO", _fifo_trainer_state, hangs=True),
    Case("trainer_state.json links to /dev/zero", _zero_device_trainer_state, hangs=True),
    Case("a checkpoint that is a FIFO", _fifo_checkpoint, hangs=True),
    Case("a checkpoint that links to /dev/urandom", _urandom_checkpoint, hangs=True),
    Case("a shard index naming ../../", _shard_outside),
    Case("a shard index naming an absolute path", _shard_absolute),
    Case("a shard index nested 200,000 levels", _deep_shard_index),
    Case("a shard index that is a FIFO", _fifo_shard_index, hangs=True),
    Case("Lightning's metrics.csv is a FIFO", _fifo_metrics_csv, hangs=True),
    Case("a folder name that is not UTF-8", _non_utf8_folder),
    Case("run.json schema_version as text", _run_json_schema_text),
)


def die_on_second(job: int, options: object) -> int:
    """A job function whose worker is killed on job 1 (as the OOM killer would)."""
    if job == 1:
        os.kill(os.getpid(), 9)
    return job
