"""What the information plane is given, through the real pipeline: token inputs enter the X
kernel as one-hot codes (never as coordinates), PyGlow's Y is the softmax of the model's output,
the stored parameters say both, and the app says them too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from apptest_helpers import by_key, routed, texts

from dyntools.capture import capture, load_weights, rebuild_model
from dyntools.checkpoints import discover_runs, read_probe
from dyntools.cli import main
from dyntools.metrics.hsic import InformationPlane, probabilities
from dyntools.metrics.hsic_inputs import Coding
from dyntools.models.outputs import first_tensor
from dyntools.pipeline import ComputeOptions, compute
from dyntools.store import Store, locate_db

pytestmark = pytest.mark.usefixtures("_config_home")
SAMPLE = Path(__file__).resolve().parent.parent / "sample_runs"
HSIC = ("hsic_x", "hsic_y", "hsic_x_pyglow", "hsic_y_pyglow")
HOOK = "blocks.0.mlp"


def _copy(run: str, target: Path, checkpoints: int = 2) -> Path:
    source, dest = SAMPLE / run, target / run
    dest.mkdir(parents=True)
    for name in ("run.json", "probe.safetensors"):
        shutil.copy2(source / name, dest / name)
    for checkpoint in sorted(source.glob("epoch_*.safetensors"))[-checkpoints:]:
        shutil.copy2(checkpoint, dest / checkpoint.name)
    return target


def _options(**params: dict[str, str]) -> ComputeOptions:
    return ComputeOptions(metrics=HSIC, activation_select=(HOOK,), params=params, workers=1)


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Modular addition: the probe inputs are token ids (a, b, =), the labels class indices."""
    folder = _copy("modular-addition/seed0", tmp_path_factory.mktemp("tokens"))
    assert compute(folder, _options()).failed == ()
    return folder


def _stored(folder: Path, name: str) -> pl.DataFrame:
    metrics = Store(locate_db(folder).path).read_metrics(hook_points=[HOOK], metrics=[name])
    return metrics.sort("step")


def test_token_inputs_are_one_hot_codes_and_pyglow_y_the_softmax(tokens: Path) -> None:
    (run,) = discover_runs(tokens).runs
    probe = read_probe(run.probe)
    assert not probe.x.is_floating_point()
    model = rebuild_model(run.config)
    ref = run.checkpoints[-1]
    load_weights(model, ref)
    model.eval()
    with torch.no_grad(), capture(model, [HOOK]) as outputs:
        logits = first_tensor(model(probe.x))
    assert logits is not None
    h = outputs[HOOK].reshape(probe.x.shape[0], -1)
    # Independent construction: explicit one-hot codes per position, used as coordinates.
    codes = torch.cat(
        [torch.nn.functional.one_hot(probe.x[:, i]).double() for i in range(probe.x.shape[1])],
        dim=1,
    )
    expected = InformationPlane(codes, probe.y, x_coding=Coding.VALUES).hsic(h)
    softmax = torch.softmax(logits.double(), dim=-1).reshape(logits.shape[0], -1)
    pyglow = InformationPlane(codes, softmax, variant="pyglow", x_coding=Coding.VALUES).hsic(h)
    for name, value, params in (
        ("hsic_x", expected.hsic_x, {"inputs": "one-hot"}),
        ("hsic_y", expected.hsic_y, {"labels": "one-hot"}),
        ("hsic_x_pyglow", pyglow.hsic_x, {"inputs": "one-hot"}),
        ("hsic_y_pyglow", pyglow.hsic_y, {"output": "softmax"}),
    ):
        row = _stored(tokens, name).filter(pl.col("step") == ref.step)
        assert json.loads(row["params"].item()) == params
        assert row["value"].item() == pytest.approx(value, rel=1e-9), name
    # The integers as coordinates give another number (what schema 2 stored).
    raw = InformationPlane(probe.x, probe.y, x_coding=Coding.VALUES).hsic(h)
    assert raw.hsic_x is not None and abs(raw.hsic_x - expected.hsic_x) > 1e-3  # type: ignore[operator]
    assert np.allclose(probabilities(logits).reshape(softmax.shape).numpy(), softmax.numpy())


def test_another_coding_is_stored_beside_and_the_page_says_which(tokens: Path) -> None:
    app = routed("information-plane", tokens)
    assert not app.exception
    said = texts(app)
    assert "X = the probe inputs as one-hot codes." in said
    assert "Y = the labels as one-hot codes." in said
    assert not [s for s in app.selectbox if s.key == "info.params.hsic_x"]

    # The raw integers, asked for explicitly: stored beside, with their own parameters.
    folder = tokens.parent / "both"
    shutil.copytree(tokens, folder)
    args = ["compute", str(folder), "--metrics", "hsic_x,hsic_y"]
    assert main([*args, "--activation-select", HOOK, "--hsic-inputs", "values"]) == 0
    stored = _stored(folder, "hsic_x")
    assert sorted(set(stored["params"])) == ['{"inputs":"one-hot"}', '{"inputs":"values"}']
    app = routed("information-plane", folder)
    choice = by_key(app.selectbox, "info.params.hsic_x")
    assert choice.options == [
        "X = the probe inputs as one-hot codes",
        "X = the probe inputs as values",
    ]
    choice.set_value('{"inputs":"values"}').run()
    assert not app.exception
    assert "X = the probe inputs as values." in texts(app)


def test_one_hot_codes_of_real_inputs_are_refused_by_name(tmp_path: Path) -> None:
    folder = _copy("sparse-parity/seed0", tmp_path)
    options = ComputeOptions(
        metrics=("hsic_x",), params={"hsic_x": {"inputs": "one-hot"}}, workers=1
    )
    (failure,) = compute(folder, options).failed
    assert "probe.safetensors" in failure.reason
    assert "real values" in failure.reason and "'values'" in failure.reason
