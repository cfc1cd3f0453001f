"""dyntools compute: values against independent references, incremental work, bad input."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from safetensors.torch import save_file

from dyntools.checkpoints import CheckpointWriter, read_probe, write_probe
from dyntools.pipeline import ComputeOptions, compute
from dyntools.store import Store


class Attention(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.W_Q = torch.nn.Parameter(torch.randn(2, 3, 6))  # (n_heads, d_head, d_model)
        self.W_O = torch.nn.Parameter(torch.randn(6, 6))


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = Attention()
        self.fc = torch.nn.Linear(6, 4)


def write_run(folder: Path, seed: int, epochs: int = 3) -> tuple[CheckpointWriter, Tiny]:
    torch.manual_seed(seed)
    model = Tiny()
    writer = CheckpointWriter(folder / f"seed{seed}", model, {"task": "t", "seed": seed})
    for epoch in range(epochs):
        with torch.no_grad():
            model.fc.weight.mul_(1.1)
        writer.save(epoch, train_loss=1.0 / (epoch + 1), val_acc=epoch / 10)
    return writer, model


def metric(frame: pl.DataFrame, **where: object) -> list[float]:
    for column, value in where.items():
        frame = frame.filter(pl.col(column) == value)
    return frame.sort("step")["value"].to_list()


def test_values_match_numpy_and_hook_points_average_their_matrices(tmp_path: Path) -> None:
    _, model = write_run(tmp_path, 0)
    summary = compute(tmp_path, ComputeOptions(workers=1), db=tmp_path / "db.duckdb")
    assert (summary.computed, summary.skipped, summary.failed) == (3, 0, ())
    metrics = Store(tmp_path / "db.duckdb").read_metrics()
    fc = model.fc.weight.detach().numpy().astype(np.float64)
    last = metric(metrics, hook_point="fc", tensor="fc.weight", metric="l2")[-1]
    assert last == pytest.approx(np.linalg.norm(fc), rel=1e-6)
    spectral = metric(metrics, hook_point="fc", tensor="fc.weight", metric="spectral")[-1]
    assert spectral == pytest.approx(np.linalg.svd(fc, compute_uv=False)[0], rel=1e-5)
    # W_Q is split per head by default: one matrix per head, and the hook point's value is the
    # mean over its matrices (both heads and W_O).
    heads = [model.attn.W_Q.detach().numpy()[h].astype(np.float64) for h in range(2)]
    w_o = model.attn.W_O.detach().numpy().astype(np.float64)
    per_matrix = [np.abs(m).sum() for m in [*heads, w_o]]
    assert metric(metrics, hook_point="attn", tensor="attn.W_Q", head=1, metric="l1")[0] == (
        pytest.approx(per_matrix[1], rel=1e-6)
    )
    assert metric(metrics, hook_point="attn", scope="hook_point", metric="l1")[0] == (
        pytest.approx(np.mean(per_matrix), rel=1e-6)
    )
    # cosine_to_init is 1 at the first checkpoint; pooled statistics cover every weight.
    assert metric(metrics, hook_point="fc", metric="cosine_to_init", tensor="fc.weight")[0] == (
        pytest.approx(1.0)
    )
    weights = np.concatenate([m.ravel() for m in [*heads, w_o, fc / 1.1**2]])
    assert metric(metrics, scope="network", metric="mean_w")[0] == pytest.approx(
        weights.mean(), rel=1e-5
    )
    network = metrics.filter(pl.col("scope") == "network", pl.col("step") == 0)
    assert network.height == 14 and set(network["hook_point"]) == {""}
    assert set(network["params"]) == {'{"hook_points":["attn","fc"],"preset":"paper"}'}
    assert set(metrics["kind"]) == {"weight"}
    scalars = Store(tmp_path / "db.duckdb").read_scalars()
    assert metric(scalars, run_id="seed0", name="val_acc") == [0.0, 0.1, 0.2]


def test_second_compute_does_nothing_and_changes_compute_only_what_changed(
    tmp_path: Path,
) -> None:
    writer, model = write_run(tmp_path, 0)
    db = tmp_path / "db.duckdb"
    compute(tmp_path, ComputeOptions(workers=1), db=db)
    again = compute(tmp_path, ComputeOptions(workers=1), db=db)
    assert (again.computed, again.skipped, again.values_written) == (0, 3, 0)

    writer.save(3, train_loss=0.1)  # an added checkpoint is computed alone
    added = compute(tmp_path, ComputeOptions(workers=1), db=db)
    assert (added.computed, added.skipped) == (1, 3)

    # A rewritten checkpoint (new contents, new fingerprint) is computed alone.
    path = tmp_path / "seed0" / "epoch_00001.safetensors"
    tensors = {k: v.clone() for k, v in model.state_dict().items()}
    tensors["fc.weight"] = torch.ones(4, 6)
    save_file(tensors, str(path), metadata={"epoch": "1", "step": "1"})
    changed = compute(tmp_path, ComputeOptions(workers=1), db=db)
    assert (changed.computed, changed.skipped) == (1, 3)
    l2 = metric(Store(db).read_metrics(), tensor="fc.weight", metric="l2", step=1)
    assert l2 == [pytest.approx(np.sqrt(24.0))]


def test_a_newly_selected_metric_computes_only_that_metric(tmp_path: Path) -> None:
    write_run(tmp_path, 0)
    db = tmp_path / "db.duckdb"
    compute(tmp_path, ComputeOptions(metrics=("l2",), workers=1), db=db)
    before = Store(db).read_metrics()
    more = compute(tmp_path, ComputeOptions(metrics=("l2", "stable_rank"), workers=1), db=db)
    after = Store(db).read_metrics()
    assert more.computed == 3
    added = after.join(before, on=["run_id", "step", "hook_point", "tensor", "metric"], how="anti")
    assert set(added["metric"]) == {"stable_rank"}
    assert more.values_written == added.height


def test_a_new_hook_point_selection_computes_only_what_is_missing(tmp_path: Path) -> None:
    write_run(tmp_path, 0)
    db = tmp_path / "db.duckdb"
    first = compute(tmp_path, ComputeOptions(select=("fc",), metrics=("l2",), workers=1), db=db)
    assert first.computed == 3
    assert set(Store(db).read_metrics()["hook_point"]) == {"fc"}
    second = compute(tmp_path, ComputeOptions(select=("fc", "attn"), metrics=("l2",)), db=db)
    assert second.computed == 3
    assert set(Store(db).read_metrics()["hook_point"]) == {"fc", "attn"}


def test_nan_weights_give_missing_values_with_a_reason(tmp_path: Path) -> None:
    _, model = write_run(tmp_path, 0, epochs=1)
    tensors = {k: v.clone() for k, v in model.state_dict().items()}
    tensors["fc.weight"][0, 0] = float("nan")
    save_file(tensors, str(tmp_path / "seed0" / "epoch_00005.safetensors"), metadata={"epoch": "5"})
    db = tmp_path / "db.duckdb"
    summary = compute(tmp_path, ComputeOptions(workers=1), db=db)
    assert summary.failed == () and summary.computed == 2
    metrics = Store(db).read_metrics()
    assert metric(metrics, tensor="fc.weight", metric="l2", step=5) == [None]
    assert metric(metrics, tensor="attn.W_O", metric="l2", step=5)[0] is not None
    errors = Store(db).read_errors().filter(pl.col("what") == "fc fc.weight l2")
    assert errors.height == 1 and errors["code"].to_list() == ["nonfinite"]
    assert "NaN" in errors["why"][0]


def test_a_corrupt_checkpoint_is_reported_and_the_rest_computed(tmp_path: Path) -> None:
    write_run(tmp_path, 0)
    write_run(tmp_path, 1)
    bad = tmp_path / "seed1" / "epoch_00001.safetensors"
    bad.write_bytes(bad.read_bytes()[:40])
    db = tmp_path / "db.duckdb"
    summary = compute(tmp_path, ComputeOptions(workers=1), db=db)
    assert summary.computed == 5
    assert any(str(bad) in problem for problem in summary.problems)
    assert any(str(bad) == file for file in Store(db).read_errors()["file"])


def test_activation_metrics_match_torch_on_the_probe(tmp_path: Path) -> None:
    torch.manual_seed(0)
    from tiny_factories import tiny_mlp

    model = tiny_mlp()
    writer = CheckpointWriter(tmp_path / "run", model, {"task": "t"})
    x, y = torch.randn(32, 3), torch.randint(0, 2, (32,))
    writer.save_probe(x, y)
    writer.save(0)
    options = ComputeOptions(
        activations=True, factory="tiny_factories:tiny_mlp", select=("0",), workers=1
    )
    db = tmp_path / "db.duckdb"
    summary = compute(tmp_path, options, db=db)
    assert summary.failed == ()
    metrics = Store(db).read_metrics()
    with torch.no_grad():
        hidden = torch.relu(model[0](x))
    assert metric(metrics, hook_point="1", metric="act_mean") == [
        pytest.approx(float(hidden.double().mean()), rel=1e-6)
    ]
    dead = metric(metrics, hook_point="1", metric="dead_fraction")
    assert dead == [pytest.approx(float((hidden.abs() < 1e-6).double().mean()))]
    histograms = Store(db).read_histograms()
    row = histograms.filter(pl.col("hook_point") == "1").row(0, named=True)
    assert sum(row["counts"]) + row["underflow"] + row["overflow"] == hidden.numel()
    hsic = metric(metrics, hook_point="2", metric="hsic_y")
    assert hsic[0] is not None and 0 < hsic[0] <= 1


def test_compute_of_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"does not exist|no folder"):
        compute(tmp_path / "nope", db=tmp_path / "db.duckdb")
    assert not os.path.exists(tmp_path / "db.duckdb")


def test_a_selection_from_one_model_skips_runs_of_another(tmp_path: Path) -> None:
    write_run(tmp_path, 0)
    torch.manual_seed(1)
    other = torch.nn.Sequential(torch.nn.Linear(3, 3))
    CheckpointWriter(tmp_path / "other", other, {"task": "u"}).save(0)
    db = tmp_path / "db.duckdb"
    summary = compute(tmp_path, ComputeOptions(select=("fc",), metrics=("l2",), workers=1), db=db)
    assert summary.failed == () and summary.computed == 3
    assert any("'fc' matches nothing in 1 run(s) (other)" in note for note in summary.notes)
    assert set(Store(db).read_metrics()["run_id"]) == {"seed0"}
    with pytest.raises(ValueError, match="no run has hook point 'fcc'"):
        compute(tmp_path, ComputeOptions(select=("fcc",), workers=1), db=db)


def test_computing_in_this_process_leaves_its_settings_alone(tmp_path: Path) -> None:
    # Thread counts and glibc's allocator are the workers' set-up, not the caller's.
    from dyntools.pipeline import allocator

    write_run(tmp_path, 0)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    applied = allocator._applied
    try:
        compute(tmp_path, ComputeOptions(workers=1), db=tmp_path / "db.duckdb")
        assert torch.get_num_threads() == 2
        assert allocator._applied is applied
    finally:
        torch.set_num_threads(before)


def test_compute_of_chosen_runs_leaves_the_others_for_later(tmp_path: Path) -> None:
    write_run(tmp_path, 0)
    write_run(tmp_path, 1)
    db = tmp_path / "db.duckdb"
    options = ComputeOptions(metrics=("l2",), workers=1, runs=("seed1",))
    summary = compute(tmp_path, options, db=db)
    assert summary.computed == 3
    assert set(Store(db).read_metrics()["run_id"]) == {"seed1"}
    # The other run is computed by a later compute of every run, and only it.
    assert compute(tmp_path, ComputeOptions(metrics=("l2",), workers=1), db=db).computed == 3
    with pytest.raises(ValueError, match="no run 'seed7' in this folder; its runs: seed0, seed1"):
        compute(tmp_path, ComputeOptions(runs=("seed7",), workers=1), db=db)


def test_values_whose_inputs_are_cut_otherwise_are_recomputed(tmp_path: Path) -> None:
    """The same checkpoint file cut otherwise (its config now states 2 heads, not 4, for the
    fused Q/K/V weight) recomputes that hook point and the network values, nothing else."""
    fixture = Path(__file__).resolve().parent / "fixtures" / "store_v1_cuts" / "run"
    run = tmp_path / "runs" / "run"
    shutil.copytree(fixture, run)
    options = ComputeOptions(metrics=("l2", "mean_w"), workers=1)
    compute(tmp_path / "runs", options)
    store = Store(tmp_path / "runs" / ".dyntools" / "dyntools.duckdb")
    before = store.read_metrics()
    fused = "gpt_neox.layers.0.attention.query_key_value"
    for config in run.glob("checkpoint-*/config.json"):
        config.write_text('{"num_attention_heads": 2, "model_type": "dyntools-fixture"}')
    summary = compute(tmp_path / "runs", options)
    assert (summary.computed, summary.failed) == (2, ())
    assert compute(tmp_path / "runs", options).computed == 0
    after = store.read_metrics()
    heads = after.filter(pl.col("hook_point") == fused, pl.col("scope") == "tensor")["head"]
    assert sorted(heads.unique()) == [0, 1]
    key = ["step", "scope", "hook_point", "tensor", "head", "component", "metric", "params"]
    others = before.filter(pl.col("hook_point") != fused, pl.col("scope") == "hook_point")
    assert (
        others.height
        and others.join(after, on=[*key, "value"], how="anti", nulls_equal=True).is_empty()
    )


def test_a_recompute_replaces_the_problems_its_units_met(tmp_path: Path) -> None:
    """A head count that does not divide the fused Q/K/V weight is a recorded problem; once the
    configuration is right, the recompute of those units leaves no stale problem behind."""
    fixture = Path(__file__).resolve().parent / "fixtures" / "store_v1_cuts" / "run"
    run = tmp_path / "runs" / "run"
    shutil.copytree(fixture, run)
    configs = list(run.glob("checkpoint-*/config.json"))
    for config in configs:
        config.write_text('{"num_attention_heads": 5, "model_type": "dyntools-fixture"}')
    options = ComputeOptions(metrics=("l2", "mean_w"), workers=1)
    compute(tmp_path / "runs", options)
    store = Store(tmp_path / "runs" / ".dyntools" / "dyntools.duckdb")
    errors = store.read_errors()
    split = errors.filter(pl.col("code") == "head-split")
    assert split.height and set(split["kind"]) == {"weight"}
    fused = "gpt_neox.layers.0.attention.query_key_value"
    assert set(split["hook_point"]) <= {fused, ""}
    for config in configs:
        config.write_text('{"num_attention_heads": 4, "model_type": "dyntools-fixture"}')
    assert compute(tmp_path / "runs", options).computed == 2
    assert store.read_errors().filter(pl.col("code") == "head-split").is_empty()


def test_another_probe_batch_computes_the_activation_values_again(tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parent.parent / "sample_runs" / "sparse-parity" / "seed0"
    run = tmp_path / "runs" / "seed0"
    run.mkdir(parents=True)
    for name in ("run.json", "probe.safetensors", "epoch_00000.safetensors"):
        shutil.copyfile(sample / name, run / name)
    options = ComputeOptions(metrics=("act_mean",), activations=True, workers=1)
    assert compute(tmp_path / "runs", options).computed == 1
    store = Store(tmp_path / "runs" / ".dyntools" / "dyntools.duckdb")
    before = store.read_metrics().sort("hook_point")
    probe = read_probe(run / "probe.safetensors")
    write_probe(run / "probe.safetensors", -probe.x, probe.y)
    assert compute(tmp_path / "runs", options).computed == 1
    assert compute(tmp_path / "runs", options).computed == 0
    after = store.read_metrics().sort("hook_point")
    assert after.height == before.height
    assert after["value"].to_list() != before["value"].to_list()


def test_a_damaged_probe_says_how_to_make_it_again(tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parent.parent / "sample_runs" / "sparse-parity" / "seed0"
    run = tmp_path / "runs" / "seed0"
    run.mkdir(parents=True)
    for name in ("run.json", "epoch_00000.safetensors"):
        shutil.copyfile(sample / name, run / name)
    (run / "probe.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{broken")
    options = ComputeOptions(metrics=("l2", "act_mean"), activations=True, workers=1)
    summary = compute(tmp_path / "runs", options)
    (failure,) = summary.failed
    assert "probe.safetensors" in failure.reason and "dyntools probe" in failure.reason
    assert summary.computed == 1  # the weights


def test_tensors_taken_by_their_rank_alone_are_named_in_a_note(tmp_path: Path) -> None:
    """A folder of bare state dicts has no model to rebuild: an nn.Embedding saved as
    ``0.weight`` reads as a linear layer, and the compute says so (once, with what to do)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 10))
    run = tmp_path / "runs" / "run"
    run.mkdir(parents=True)
    for epoch in range(2):
        save_file(dict(model.state_dict()), str(run / f"epoch_{epoch}.safetensors"))
    summary = compute(tmp_path / "runs", ComputeOptions(metrics=("l2",), workers=1))
    (note,) = [n for n in summary.notes if "by name and rank alone" in n]
    assert "0.weight" in note and "dyntools hookpoints FOLDER --roles" in note
    # Nothing left to compute: nothing to say again.
    assert not compute(tmp_path / "runs", ComputeOptions(metrics=("l2",), workers=1)).notes
    # A rebuilt model (a dyntools run) says what each tensor is: no note.
    writer_summary = compute(_rebuildable(tmp_path / "rebuilt"), ComputeOptions(workers=1))
    assert not [n for n in writer_summary.notes if "rank alone" in n]


def _rebuildable(folder: Path) -> Path:
    sample = Path(__file__).resolve().parent.parent / "sample_runs" / "sparse-parity" / "seed0"
    (folder / "seed0").mkdir(parents=True)
    for name in ("run.json", "epoch_00000.safetensors"):
        shutil.copyfile(sample / name, folder / "seed0" / name)
    return folder
