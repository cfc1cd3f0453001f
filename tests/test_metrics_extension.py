"""Adding a metric is one function and one registry entry (CONTRIBUTING.md, "Add a metric"):
a toy metric registered here is computed, stored, exported, offered in the app and listed in the
CLI help, with no other change."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
import torch
from apptest_helpers import by_key, routed

from dyntools.checkpoints import CheckpointWriter
from dyntools.cli import main
from dyntools.metrics.batch import Column
from dyntools.metrics.kinds import ActivationMetric, MatrixMetric, Param
from dyntools.metrics.registry import registered
from dyntools.pipeline import ComputeOptions, compute
from dyntools.store import Store, export, locate_db

pytestmark = pytest.mark.usefixtures("_config_home")

TOY = MatrixMetric(
    name="toy_l2_squared",
    description="||W||_F^2, a toy metric a test registers",
    compute=lambda batch: Column(batch.l2**2),
)


def _run(folder: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    writer = CheckpointWriter(folder / "run", model, {"task": "toy"})
    for epoch in range(3):
        with torch.no_grad():
            model[0].weight.mul_(1.5)
        writer.save(epoch, train_loss=1.0 / (epoch + 1))


def test_a_registered_metric_is_computed_stored_exported_and_offered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(tmp_path)
    with registered(TOY):
        summary = compute(tmp_path, ComputeOptions(metrics=("l2", TOY.name), workers=1))
        assert (summary.computed, summary.failed) == (3, ())
        store = Store(locate_db(tmp_path).path)
        metrics = store.read_metrics().filter(pl.col("scope") == "tensor")
        wide = metrics.pivot(on="metric", index=["step", "tensor"], values="value")
        assert wide.height == 6
        assert wide[TOY.name].to_list() == pytest.approx((wide["l2"] ** 2).to_list(), rel=1e-12)
        assert set(metrics.filter(pl.col("metric") == TOY.name)["kind"]) == {"weight"}

        out = tmp_path / "export.csv"
        export(store, out, "csv")
        exported = pl.read_csv(out).filter(pl.col("name") == TOY.name)
        # Per tensor and per hook point: 2 layers x 3 checkpoints each.
        assert exported.height == store.read_metrics(metrics=[TOY.name]).height == 12

        hook_points = routed("hook-points", tmp_path)
        assert TOY.name in by_key(hook_points.multiselect, "hooks.metrics").options
        (glossary,) = [
            pl.from_pandas(t.value) for t in hook_points.dataframe if "definition" in t.value
        ]
        assert TOY.description in glossary["definition"].to_list()
        page = routed("metrics", tmp_path)
        assert TOY.name in by_key(page.multiselect, "metrics.metrics").options

        with pytest.raises(SystemExit):
            main(["compute", "--help"])
        assert TOY.name in capsys.readouterr().out


TOY_ACTIVATION = ActivationMetric(
    name="toy_share_above",
    description="share of outputs above a level, a toy metric a test registers",
    params=(Param("level", 0.5, "the level", minimum=0.0),),
    compute=lambda output, params: (
        float((output.values > float(params["level"])).sum()) / output.count,
        None,
    ),
)


def test_a_registered_metrics_parameter_is_set_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A parameter of a new metric needs no option of its own: --param METRIC.NAME=VALUE."""
    sample = Path(__file__).resolve().parent.parent / "sample_runs" / "sparse-parity" / "seed0"
    run = tmp_path / "seed0"
    run.mkdir()
    for name in ("run.json", "probe.safetensors", "epoch_00000.safetensors"):
        shutil.copyfile(sample / name, run / name)
    with registered(TOY_ACTIVATION):
        args = ["compute", str(tmp_path), "--activations", "--metrics", TOY_ACTIVATION.name]
        assert main([*args, "--param", f"{TOY_ACTIVATION.name}.level=0.25"]) == 0
        stored = Store(locate_db(tmp_path).path).read_metrics(metrics=[TOY_ACTIVATION.name])
        assert stored.height and set(stored["params"]) == {'{"level":0.25}'}
        with pytest.raises(SystemExit):
            main(["compute", "--help"])
        assert f"--param {TOY_ACTIVATION.name}.level=" in capsys.readouterr().out
        for bad, why in [
            (f"{TOY_ACTIVATION.name}.level=-1", "must be >= 0"),
            (f"{TOY_ACTIVATION.name}.level=high", "takes a float"),
            (f"{TOY_ACTIVATION.name}.height=1", "has no parameter 'height'"),
            ("level=1", "write METRIC.NAME=VALUE"),
        ]:
            assert main([*args, "--param", bad]) == 2
            assert why in capsys.readouterr().err
