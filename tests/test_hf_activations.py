"""Activations of Hugging Face models: a GPT-NeoX suite in a hub cache (and a Trainer run) gets
a probe from text tokenized with its own tokenizer files, and the colorful dimension, dead units
and the information plane are computed on it; the model is rebuilt by transformers from
config.json, never from remote code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from safetensors.torch import save_file

from dyntools.checkpoints import discover_runs, read_probe
from dyntools.cli import main
from dyntools.pipeline import ComputeOptions, compute
from dyntools.pipeline.probes import ProbeRequest, make_probe
from dyntools.store import Store, locate_db
from dyntools.store.location import probe_path

transformers = pytest.importorskip("transformers")
from hub_suites import PYTHIA as REPO  # noqa: E402
from hub_suites import TEXT, WORDS, save, write_seeds  # noqa: E402
from hub_suites import tiny_neox as _model  # noqa: E402

from bench.hub_cache import write_revision  # noqa: E402  (needs huggingface_hub)

MLP_ACT = "gpt_neox.layers.0.mlp.act"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hub-activations")
    write_seeds(root / "hub", root / "saved", (1, 2, 4), seeds=2)
    (root / "text.txt").write_text(TEXT)
    return root / "hub"


def test_a_probe_from_text_then_activations_of_every_seed(
    cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = cache.parent / "text.txt"
    args = ["probe", str(cache), "--from", str(text), "--length", "8", "--sequences", "12"]
    assert main(args) == 0
    out = capsys.readouterr().out
    path = probe_path(locate_db(cache).path, REPO)
    assert "probe of 12 samples, x (12, 8) int64" in out
    assert path.is_file()
    probe = read_probe(path)
    # the run's own tokenizer: word i of the text is id WORDS.index(word) + 1; y is x shifted
    ids = [WORDS.index(word) + 1 for word in TEXT.split()]
    assert probe.x[0].tolist() == ids[:8]
    assert probe.y[0].tolist() == ids[1:9]
    assert probe.x[1].tolist() == ids[9:17]
    assert main(args) == 2  # made before: kept unless --force
    assert "pass --force" in capsys.readouterr().err

    summary = compute(cache, ComputeOptions(activations=True, workers=1))
    assert not summary.failed, summary.failed
    store = Store(locate_db(cache).path)
    values = store.read_metrics().filter(pl.col("kind") == "activation")
    runs = set(values["run_id"])
    assert runs == {REPO, f"{REPO}-seed1"}
    dead = values.filter((pl.col("hook_point") == MLP_ACT) & (pl.col("metric") == "act_mean"))
    assert dead.height == 6  # two seeds x three checkpoints
    hsic = values.filter(pl.col("metric").str.starts_with("hsic"))
    assert hsic.height > 0 and hsic["value"].is_finite().all()
    assert store.read_histograms().filter(pl.col("hook_point") == MLP_ACT).height == 6

    # the value against the model transformers loads from the snapshot itself
    run = next(r for r in discover_runs(cache).runs if r.run_id == REPO)
    snapshot = run.checkpoints[-1].files[0].parent
    model = transformers.GPTNeoXForCausalLM.from_pretrained(snapshot, dtype=torch.float32)
    captured: list[torch.Tensor] = []
    module = dict(model.named_modules())[MLP_ACT]
    module.register_forward_hook(lambda _m, _i, output: captured.append(output))
    with torch.no_grad():
        model.eval()(probe.x)
    stored = dead.filter((pl.col("run_id") == REPO) & (pl.col("step") == 4))["value"].item()
    assert stored == pytest.approx(captured[0].double().mean().item(), rel=1e-5)


def test_an_architecture_transformers_does_not_define_is_a_clear_message(tmp_path: Path) -> None:
    """A config that names remote code (auto_map) is never run: the compute says why and the
    weight metrics are still computed."""
    cache = tmp_path / "hub"
    folder = tmp_path / "saved"
    save(_model(0), folder)
    config = json.loads((folder / "config.json").read_text())
    config |= {"architectures": ["MyOwnNeoX"], "auto_map": {"AutoModel": "modeling.MyOwnNeoX"}}
    (folder / "config.json").write_text(json.dumps(config))
    write_revision(cache, "me/custom", {p.name: p for p in folder.iterdir()}, ["step1"])
    x = torch.zeros(4, 8, dtype=torch.long)
    db = locate_db(cache).path
    save_file({"x": x, "y": x.clone()}, str(tmp_path / "ids.safetensors"))
    probe = make_probe(ProbeRequest(tmp_path / "ids.safetensors"))
    probe_path(db, "me/custom").parent.mkdir(parents=True)
    save_file({"x": probe.x, "y": probe.y}, str(probe_path(db, "me/custom")))
    summary = compute(cache, ComputeOptions(activations=True, workers=1))
    (failure,) = summary.failed
    assert "cannot rebuild the model 'MyOwnNeoX'" in failure.reason
    assert "trust_remote_code" in failure.reason
    assert Store(db).read_metrics().filter(pl.col("kind") == "weight").height > 0


def test_probes_from_token_ids_and_from_a_classifiers_arrays(tmp_path: Path) -> None:
    stream = np.arange(100, dtype=np.int64)
    np.save(tmp_path / "ids.npy", stream)
    probe = make_probe(ProbeRequest(tmp_path / "ids.npy", length=9))
    assert probe.x.shape == (10, 9)  # 100 ids make 10 windows of 10
    assert probe.x[1, 0] == 10 and probe.y[1, -1] == 19
    rows = torch.arange(60).reshape(3, 20)
    save_file({"input_ids": rows}, str(tmp_path / "rows.safetensors"))
    probe = make_probe(ProbeRequest(tmp_path / "rows.safetensors", length=5))
    assert probe.x.tolist()[2] == [40, 41, 42, 43, 44] and probe.y.tolist()[2][-1] == 45
    inputs = np.random.default_rng(0).normal(size=(600, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", inputs)
    np.save(tmp_path / "y.npy", np.arange(600) % 3)
    probe = make_probe(ProbeRequest(tmp_path / "x.npy", labels=tmp_path / "y.npy"))
    assert probe.x.shape == (512, 4) and probe.y.shape == (512,)  # at most 512 samples
    with pytest.raises(ValueError, match="not token ids: for a classifier's inputs give"):
        make_probe(ProbeRequest(tmp_path / "x.npy"))
    with pytest.raises(ValueError, match="do not fill one sequence"):
        make_probe(ProbeRequest(tmp_path / "ids.npy", length=200))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"not a numeric \.npy array"):
        make_probe(ProbeRequest(tmp_path / "objects.npy"))
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match="unknown kind of file"):
        make_probe(ProbeRequest(tmp_path / "data.csv"))


def test_text_without_a_tokenizer_says_what_to_give(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text(TEXT)
    with pytest.raises(ValueError, match=r"give token ids as \.npy or \.safetensors"):
        make_probe(ProbeRequest(tmp_path / "t.txt"))


def test_a_trainer_run_of_a_hugging_face_model(tmp_path: Path) -> None:
    """A Trainer output folder (checkpoint-N/) gets the same activations."""
    run = tmp_path / "out"
    model = _model(2)
    for step in (10, 20):
        save(model, run / f"checkpoint-{step}")
    np.save(tmp_path / "ids.npy", np.arange(200, dtype=np.int64) % len(WORDS))
    assert main(["probe", str(run), "--from", str(tmp_path / "ids.npy"), "--length", "6"]) == 0
    summary = compute(run, ComputeOptions(activations=True, workers=1))
    assert not summary.failed, summary.failed
    values = Store(locate_db(run).path).read_metrics()
    dead = values.filter((pl.col("metric") == "dead_fraction") & (pl.col("hook_point") == MLP_ACT))
    assert dead.height == 2
