"""Activation hook points: the named modules of the rebuilt model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dyntools.capture import activation_hook_points, rebuild_model
from dyntools.models import register_model


@register_model("read-test-tiny")
def _tiny(width: int = 3) -> torch.nn.Module:
    model = torch.nn.Module()
    model.fc1 = torch.nn.Linear(2, width)
    model.act = torch.nn.ReLU()
    model.fc2 = torch.nn.Linear(width, 1)
    return model


def test_modules_of_a_registered_model_from_run_json() -> None:
    config = {"model": {"name": "read-test-tiny", "kwargs": {"width": 5}}}
    points = activation_hook_points(config)
    assert [(p.path, p.module_type, p.parameters, p.is_leaf) for p in points] == [
        ("fc1", "Linear", 2 * 5 + 5, True),
        ("act", "ReLU", 0, True),
        ("fc2", "Linear", 5 + 1, True),
    ]


def test_modules_from_an_explicit_factory() -> None:
    config = {"model": {"name": "not-registered", "kwargs": {"hidden": 7}}}
    points = activation_hook_points(config, factory="tiny_factories:tiny_mlp")
    reference = torch.nn.Sequential(
        torch.nn.Linear(3, 7), torch.nn.ReLU(), torch.nn.Sequential(torch.nn.Linear(7, 2))
    )
    assert [(p.path, p.parameters) for p in points] == [
        (name, sum(x.numel() for x in module.parameters()))
        for name, module in reference.named_modules()
        if name
    ]
    assert [p.is_leaf for p in points] == [True, True, False, True]
    # Without run.json's model entry the factory alone builds it, with its defaults.
    assert rebuild_model({}, factory="tiny_factories:tiny_mlp")[0].out_features == 5


def test_no_model_description_asks_for_a_factory() -> None:
    with pytest.raises(ValueError, match=r"--factory mypackage\.models:make_model"):
        activation_hook_points({"task": "custom"})


def test_nothing_named_in_a_run_folder_is_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "sneaky_models.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\ndef build(**kw): ...\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = {"model": {"name": "sneaky_models:build", "factory": "sneaky_models:build"}}
    with pytest.raises(ValueError, match="unknown model 'sneaky_models:build'"):
        activation_hook_points(config)
    assert not marker.exists()
    assert "sneaky_models" not in sys.modules


def test_a_probe_written_again_by_another_process_is_read_again(tmp_path: Path) -> None:
    from dyntools.checkpoints import read_probe, write_probe

    path = tmp_path / "probe.safetensors"
    write_probe(path, torch.zeros(2, 3), torch.zeros(2))
    assert float(read_probe(path).x.sum()) == 0.0
    script = (
        "import torch; from pathlib import Path; from dyntools.checkpoints import write_probe; "
        f"write_probe(Path({str(path)!r}), torch.ones(2, 3), torch.zeros(2))"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    assert float(read_probe(path).x.sum()) == 6.0
