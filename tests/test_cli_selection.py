"""Showing and changing the paper features' tensor selection from the command line and the app."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from apptest_helpers import routed
from conftest import SAMPLE_RUNS

from dyntools.cli import main
from dyntools.store import Store, locate_db

pytestmark = pytest.mark.usefixtures("_config_home")
RUN = SAMPLE_RUNS / "modular-addition" / "seed0"


def test_hookpoints_roles_lists_what_the_paper_features_take(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["hookpoints", str(RUN), "--roles", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    roles = {t["name"]: (t["layer"], t["part"], t["network"]) for t in document["tensors"]}
    assert roles["blocks.0.attn.W_Q"] == ("attention_q", "weight", True)
    assert roles["blocks.0.mlp.b_in"] == ("linear", "bias", True)
    assert roles["embed.W_E"] == ("embedding", "weight", False)
    assert roles["unembed.W_U"] == ("unembedding", "weight", False)
    assert document["selection"] == {"preset": "paper"} and document["module_types"] is True
    assert main(["hookpoints", str(RUN), "--roles", "--paper-layers", "embedding"]) == 0
    text = capsys.readouterr().out
    assert "1 of 11 tensors enter the paper features (custom selection" in text


def _one_run(tmp_path: Path) -> Path:
    target = tmp_path / "run"
    target.mkdir()
    shutil.copy2(RUN / "run.json", target / "run.json")
    shutil.copy2(sorted(RUN.glob("epoch_*.safetensors"))[-1], target)
    return tmp_path


def test_compute_records_the_selection_with_the_network_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _one_run(tmp_path)
    assert main(["compute", str(folder), "--metrics", "l2,mean_w"]) == 0
    assert (
        main(["compute", str(folder), "--metrics", "l2,mean_w", "--paper-preset", "polypythias"])
        == 0
    )
    assert main(["compute", str(folder), "--metrics", "l2,mean_w", "--paper-tensors", "*.W_E"]) == 0
    capsys.readouterr()
    store = Store(locate_db(folder).path)
    network = store.read_metrics().filter(pl.col("scope") == "network")
    described = {json.loads(p)["preset"]: p for p in network["params"].unique()}
    assert set(described) == {"paper", "polypythias", "custom"}
    assert json.loads(described["custom"])["tensors"] == ["*.W_E"]
    # The embedding alone: its mean is the custom selection's mean_w.
    custom = network.filter(pl.col("params") == described["custom"])
    paper = network.filter(pl.col("params") == described["paper"])
    assert custom["value"][0] != paper["value"][0]
    # The default compute's selection stays the one fits use.
    assert json.loads(store.read_runs()["network_selection"][0])["preset"] == "paper"
    assert (
        main(["compute", str(folder), "--paper-preset", "paper", "--paper-layers", "linear"]) == 2
    )
    assert "not both" in capsys.readouterr().err


def test_the_hook_points_page_shows_the_roles(tmp_path: Path) -> None:
    app = routed("hook-points", _one_run(tmp_path))
    assert not app.exception
    (roles,) = [pl.from_pandas(t.value) for t in app.dataframe if "paper_features" in t.value]
    taken = roles.filter(pl.col("paper_features"))["tensor"].to_list()
    assert "blocks.0.attn.W_O" in taken and "embed.W_E" not in taken
