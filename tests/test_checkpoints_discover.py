"""Discovery of every supported layout, against folders the real libraries wrote."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import torch
from layout_builders import FIXTURES, copy_fixture, state, write_bare
from safetensors import safe_open
from safetensors.torch import save_file

from dyntools.checkpoints import CheckpointWriter, discover_runs
from dyntools.checkpoints.run_builder import numbers_in_name


def test_own_layout_matches_the_written_headers(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    writer = CheckpointWriter(tmp_path / "sweep" / "seed0", model, {"task": "t", "seed": 0})
    writer.save_probe(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
    for epoch in (0, 1, 2, 10):
        writer.save(epoch, step=epoch * 8, train_loss=1.0 / (epoch + 1), val_acc=0.5)
    # A half-written file of an interrupted save is hidden and must be ignored.
    (tmp_path / "sweep" / "seed0" / ".epoch_00011.safetensors.123.tmp").write_bytes(b"junk")

    found = discover_runs(tmp_path)
    (run,) = found.runs
    # Independent reference: the metadata of each file, read with safetensors itself.
    files = sorted((tmp_path / "sweep" / "seed0").glob("epoch_*.safetensors"))
    headers = []
    for path in files:
        with safe_open(str(path), framework="pt") as handle:
            headers.append(handle.metadata())
    assert run.run_id == "sweep/seed0"
    assert run.layout == "dyntools"
    assert [c.step for c in run.checkpoints] == [int(h["step"]) for h in headers] == [0, 8, 16, 80]
    assert [c.epoch for c in run.checkpoints] == [0, 1, 2, 10]
    assert [dict(c.scalars) for c in run.checkpoints] == [
        {"train_loss": float(h["train_loss"]), "val_acc": float(h["val_acc"])} for h in headers
    ]
    assert run.scalar_names == ("train_loss", "val_acc")
    assert run.config["seed"] == 0
    assert run.probe == tmp_path / "sweep" / "seed0" / "probe.safetensors"
    assert found.all_problems() == ()


def test_hf_trainer_checkpoints_and_log_history() -> None:
    found = discover_runs(FIXTURES / "hf_trainer")
    (run,) = found.runs
    assert run.run_id == "hf_trainer"  # the folder given is a run: named by its name
    assert run.layout == "hf-trainer"
    assert [c.step for c in run.checkpoints] == [8, 16, 24]
    assert run.config["model_type"] == "bert"
    # Independent reference: the last trainer_state.json read as plain JSON.
    state = json.loads((FIXTURES / "hf_trainer/checkpoint-24/trainer_state.json").read_text())
    history = state["log_history"]
    for checkpoint, previous in zip(run.checkpoints, [0, 8, 16], strict=True):
        in_window = [e for e in history if previous < e["step"] <= checkpoint.step]
        last_train = [e for e in in_window if "loss" in e][-1]
        evals = [e for e in in_window if "eval_loss" in e]
        assert checkpoint.scalars["train_loss"] == last_train["loss"]
        assert checkpoint.scalars["grad_norm"] == last_train["grad_norm"]
        assert checkpoint.scalars["val_loss"] == evals[-1]["eval_loss"]
        assert "eval_runtime" not in checkpoint.scalars
    # 64 samples in batches of 4: 16 steps an epoch; the Trainer's fractional epochs are kept
    # (never replaced by the step).
    assert [c.epoch for c in run.checkpoints] == [0.5, 1.0, 1.5]
    assert found.all_problems() == ()


def test_hf_sharded_checkpoints_read_every_shard() -> None:
    (run,) = discover_runs(FIXTURES / "hf_sharded").runs
    (single,) = discover_runs(FIXTURES / "hf_trainer").runs
    assert [c.step for c in run.checkpoints] == [8, 16, 24]
    first = run.checkpoints[0]
    assert first.format == "safetensors-sharded"
    assert len(first.files) == 3
    index = json.loads(
        (FIXTURES / "hf_sharded/checkpoint-8/model.safetensors.index.json").read_text()
    )
    assert {t.name for t in first.tensors} == set(index["weight_map"])
    assert {t.name for t in first.tensors} == {t.name for t in single.checkpoints[0].tensors}


def test_lightning_version_folder_with_metrics_csv() -> None:
    found = discover_runs(FIXTURES / "lightning")
    (run,) = found.runs
    assert run.run_id == "lightning_logs/version_0"
    assert run.layout == "lightning"
    # last.ckpt repeats step 12 and is not a fourth checkpoint.
    assert [(c.step, c.epoch) for c in run.checkpoints] == [(4, 0), (8, 1), (12, 2)]
    first = run.checkpoints[0]
    assert first.strip_prefix == "net."
    assert first.container_key == "state_dict"
    assert [t.name for t in first.tensors][:2] == ["fc1.weight", "fc1.bias"]
    metrics = FIXTURES / "lightning/lightning_logs/version_0/metrics.csv"
    with open(metrics, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for checkpoint in run.checkpoints:
        mine = [r for r in rows if int(r["epoch"]) == checkpoint.epoch]
        assert checkpoint.scalars["val_loss"] == float(
            [r for r in mine if r["val_loss"]][-1]["val_loss"]
        )
        assert checkpoint.scalars["train_loss_epoch"] == float(
            [r for r in mine if r["train_loss_epoch"]][-1]["train_loss_epoch"]
        )
    assert set(run.scalar_names) == {"train_loss_epoch", "train_loss_step", "val_acc", "val_loss"}
    assert found.all_problems() == ()


def test_lightning_checkpoints_folder_given_directly() -> None:
    folder = FIXTURES / "lightning/lightning_logs/version_0/checkpoints"
    (run,) = discover_runs(folder).runs
    assert [c.step for c in run.checkpoints] == [4, 8, 12]
    assert "val_loss" in run.scalar_names  # metrics.csv one level up


def test_plain_torch_files_in_numeric_order(tmp_path: Path) -> None:
    folder = tmp_path / "loop"
    folder.mkdir()
    for epoch in (24, 8, 100):
        torch.save(
            {"epoch": epoch, "model_state_dict": state(epoch), "optimizer": {}, "loss": epoch / 10},
            folder / f"model_epoch_{epoch}.pt",
        )
    wrapped = tmp_path / "ddp"
    wrapped.mkdir()
    for step in (3, 1):
        torch.save({f"module.{k}": v for k, v in state(step).items()}, wrapped / f"ckpt-{step}.pth")
    torch.save(state(5), wrapped.parent / "weights_5.bin")
    saved = tmp_path / "saved_steps"
    saved.mkdir()
    for index in (1, 2):  # the file name numbers 1, 2; the saved global steps order them
        torch.save(
            {"global_step": 300 - 100 * index, "epoch": index, "model": state(index)},
            saved / f"ckpt_{index}.pt",
        )

    found = discover_runs(tmp_path)
    runs = {run.run_id: run for run in found.runs}
    loop = runs["loop"]
    assert loop.layout == "torch"
    assert [c.step for c in loop.checkpoints] == [8, 24, 100]
    assert [c.scalars["loss"] for c in loop.checkpoints] == [0.8, 2.4, 10.0]
    assert loop.checkpoints[0].container_key == "model_state_dict"
    ddp = runs["ddp"]
    assert [c.step for c in ddp.checkpoints] == [1, 3]
    assert ddp.checkpoints[0].strip_prefix == "module."
    assert {t.name for t in ddp.checkpoints[0].tensors} == set(state())
    assert [c.step for c in runs[tmp_path.name].checkpoints] == [5]
    assert [(c.step, c.epoch) for c in runs["saved_steps"].checkpoints] == [(100, 2), (200, 1)]
    assert found.all_problems() == ()


def test_bare_safetensors_folder_sorted_numerically(tmp_path: Path) -> None:
    write_bare(tmp_path / "exported", [24, 8, 100, 0], prefix="checkpoint-")
    (run,) = discover_runs(tmp_path).runs
    assert run.layout == "safetensors"
    assert [c.step for c in run.checkpoints] == [0, 8, 24, 100]
    assert run.checkpoints[1].scalars == {"train_loss": 1.0 / 9}


def test_many_runs_below_one_folder(tmp_path: Path) -> None:
    copy_fixture("hf_trainer", tmp_path / "hf")
    copy_fixture("lightning", tmp_path)
    write_bare(tmp_path / "bare", [1, 2])
    found = discover_runs(tmp_path)
    assert [(r.run_id, r.layout) for r in found.runs] == [
        ("bare", "safetensors"),
        ("hf/hf_trainer", "hf-trainer"),
        ("lightning/lightning_logs/version_0", "lightning"),
    ]


def test_numbers_in_names() -> None:
    cases = {
        "epoch=3-step=120": (120, 3),
        "model_epoch_7": (7, 7),
        "ckpt_000040": (40, None),
        "run2_step-9": (9, None),
        "checkpoint-24": (24, None),
    }
    for stem, (step, epoch) in cases.items():
        found = numbers_in_name(stem)
        assert found is not None and (found.step, found.epoch) == (step, epoch), stem
    assert numbers_in_name("final") is None


def test_unnumbered_checkpoint_files_are_reported(tmp_path: Path) -> None:
    save_file(state(), str(tmp_path / "best.safetensors"))
    found = discover_runs(tmp_path)
    assert found.runs == ()
    messages = [p.message() for p in found.problems]
    assert any("best.safetensors" in m and "no step or epoch number" in m for m in messages)
    assert any("no checkpoints found" in m for m in messages)


def test_hf_legacy_pytorch_model_bin(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    run_dir = copy_fixture("hf_trainer", tmp_path)
    weights = run_dir / "checkpoint-8" / "model.safetensors"
    torch.save(load_file(str(weights)), run_dir / "checkpoint-8" / "pytorch_model.bin")
    weights.unlink()
    (run,) = discover_runs(run_dir).runs
    assert [(c.step, c.format) for c in run.checkpoints] == [
        (8, "torch"),
        (16, "safetensors"),
        (24, "safetensors"),
    ]
    assert {t.name for t in run.checkpoints[0].tensors} == {
        t.name for t in run.checkpoints[1].tensors
    }


def test_legacy_torch_format_and_non_state_dict_pickles(tmp_path: Path) -> None:
    torch.save(state(1), tmp_path / "old_1.pt", _use_new_zipfile_serialization=False)
    torch.save([1, 2, 3], tmp_path / "old_2.pt")
    found = discover_runs(tmp_path)
    (run,) = found.runs
    assert [c.step for c in run.checkpoints] == [1]
    (problem,) = found.all_problems()
    assert problem.path == tmp_path / "old_2.pt"
    assert "holds a list, not a state dict" in problem.what


def test_strays_and_folders_reached_twice_are_reported(tmp_path: Path) -> None:
    model = torch.nn.Linear(2, 2)
    writer = CheckpointWriter(tmp_path / "run", model, {"task": "t"})
    writer.save(0)
    torch.save(model.state_dict(), tmp_path / "run" / "extra_5.pt")
    (tmp_path / "alias").symlink_to(tmp_path / "run")
    found = discover_runs(tmp_path)
    assert [r.run_id for r in found.runs] == ["run"]  # real folders before links
    messages = {p.path.name: p.message() for p in found.all_problems()}
    assert "fits no supported layout here" in messages["extra_5.pt"]
    assert f"the same folder as {tmp_path / 'run'}" in messages["alias"]


def test_records_are_hashable_for_caches() -> None:
    found = discover_runs(FIXTURES / "lightning")
    (run,) = found.runs
    assert len({run.checkpoints[0], run.checkpoints[0], run.checkpoints[1]}) == 2
    assert hash(run) == hash(discover_runs(FIXTURES / "lightning").runs[0])


def test_lightning_monitor_style_names_take_the_saved_step(tmp_path: Path) -> None:
    version = copy_fixture("lightning", tmp_path) / "lightning_logs" / "version_0"
    checkpoints = version / "checkpoints"
    (checkpoints / "epoch=2-step=12.ckpt").rename(checkpoints / "epoch=02-val_loss=0.63.ckpt")
    (run,) = discover_runs(tmp_path).runs
    assert [(c.step, c.epoch) for c in run.checkpoints] == [(4, 0), (8, 1), (12, 2)]


def test_one_hf_checkpoint_folder_given_directly() -> None:
    (run,) = discover_runs(FIXTURES / "hf_trainer" / "checkpoint-16").runs
    assert (run.run_id, run.layout) == ("checkpoint-16", "hf-trainer")
    assert [(c.step, c.epoch) for c in run.checkpoints] == [(16, 1)]
    assert {"train_loss", "val_loss"} <= set(run.checkpoints[0].scalars)
