"""A published-suite trajectory, side by side with the published method (issue 15).

Set-up: a Pythia-70m-shaped GPT-NeoX (6 layers, d 512, 8 heads, vocab 50304), built with
transformers from a config (random weights, no download), nudged and saved in fp16 as the
suite publishes it, ``REVISIONS`` times, laid out as a hub cache (``stepN`` branches).

Compared on the same checkpoints, the ``polypythias`` paper features:

(a) EleutherAI's training-maps method as they run it: per checkpoint, a Ray actor loads the
    full model with transformers and applies the reference metric functions
    (visualize_training's ``get_matrix_metrics``: ``matrix_norm(ord=2)`` and ``svd``, two
    decompositions per matrix; ``get_distribution_stats`` on the pooled weights and biases) to
    every ``.weight`` reshaped to (rows, -1) and every ``.bias``, skipping ``embed*`` and
    ``*norm*`` names;
(b) ``dyntools compute`` on the local backend (one process);
(c) ``dyntools compute --backend ray`` on the same local Ray instance, 1 and 2 workers;
and the floor: reading the tensors plus one ``svdvals`` per matrix.

``DYNTOOLS_BENCH_REVISIONS`` sets the number of revisions (default 20).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import polars as pl
import torch

from bench.hub_cache import write_revision
from bench.report import Row
from dyntools.checkpoints import discover_runs, open_checkpoint
from dyntools.metrics.registry import PAPER_FEATURES
from dyntools.pipeline import ComputeOptions, compute
from dyntools.selection import NetworkSelection, Preset
from dyntools.store import Store

REPO = "EleutherAI/pythia-70m-shaped"
REVISIONS = int(os.environ.get("DYNTOOLS_BENCH_REVISIONS", "20"))
CPUS = os.cpu_count() or 1
# Pooled means and medians: compared relative to their pool's standard deviation.
SPREAD_SCALED = {f"{stat}_{pool}": f"var_{pool}" for stat in ("mean", "median") for pool in "wb"}


def _suite(cache: Path, work: Path) -> None:
    import transformers

    config = transformers.GPTNeoXConfig(
        vocab_size=50304,
        hidden_size=512,
        num_hidden_layers=6,
        num_attention_heads=8,
        intermediate_size=2048,
        max_position_embeddings=2048,
    )
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = transformers.GPTNeoXForCausalLM(config).half()
        for index in range(REVISIONS):
            step = index * 1000
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter.add_(0.002 * torch.randn_like(parameter))
            folder = work / f"step{step}"
            model.save_pretrained(folder)
            files = {path.name: path for path in folder.iterdir()}
            write_revision(cache, REPO, files, [f"step{step}"])
            for path in files.values():  # the cache holds its own copy (blobs/)
                path.unlink()


def _published_selection(name: str) -> bool:
    return not name.startswith("embed") and "norm" not in name


def _published_features(snapshot: str) -> dict[str, float]:
    """EleutherAI's per-checkpoint extraction: the model loaded by transformers, the reference
    metrics per matrix, means over matrices, pooled distribution statistics."""
    import transformers
    from visualize_training import metrics as ref

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = transformers.GPTNeoXForCausalLM.from_pretrained(snapshot, local_files_only=True)
    state = {name: tensor.detach().float() for name, tensor in model.state_dict().items()}
    # the checkpoint's own names (the model calls embed_out lm_head)
    state = {("embed_out.weight" if n == "lm_head.weight" else n): t for n, t in state.items()}
    per_matrix, weights, biases = [], [], []
    for name, tensor in state.items():
        if not _published_selection(name):
            continue
        if name.endswith(".weight"):
            per_matrix.append(ref.get_matrix_metrics(tensor.reshape(tensor.shape[0], -1)))
            weights.append(tensor.flatten())
        elif name.endswith(".bias"):
            biases.append(tensor.flatten())
    features: dict[str, float] = {}
    for metric in PAPER_FEATURES[:8]:
        values = [float(m[metric]) for m in per_matrix if not math.isnan(float(m[metric]))]
        features[metric] = sum(values) / len(values)
    for suffix, pool in (("w", weights), ("b", biases)):
        for stat, value in ref.get_distribution_stats(torch.cat(pool)).items():
            features[f"{stat}_{suffix}"] = float(value)
    return features


def _published_on_ray(snapshots: list[str]) -> tuple[float, dict[str, dict[str, float]]]:
    import ray

    @ray.remote(num_cpus=1)
    class Extractor:
        def __init__(self) -> None:
            torch.set_num_threads(1)

        def features(self, snapshot: str) -> dict[str, float]:
            return _published_features(snapshot)

    actors = [Extractor.remote() for _ in range(CPUS)]  # type: ignore[attr-defined]
    ray.get([actor.__ray_ready__.remote() for actor in actors])  # started before the clock
    start = time.perf_counter()
    refs = [actors[i % len(actors)].features.remote(s) for i, s in enumerate(snapshots)]
    values = ray.get(refs)
    seconds = time.perf_counter() - start
    for actor in actors:
        ray.kill(actor)
    return seconds, dict(zip(snapshots, values, strict=True))


def _floor(cache: Path) -> float:
    """Reading every tensor of the polypythias selection as float32 plus one svdvals per
    matrix: what no method can avoid."""
    (run,) = discover_runs(cache).runs
    start = time.perf_counter()
    for ref in run.checkpoints:
        with open_checkpoint(ref) as reader:
            for name in reader.names():
                if not _published_selection(name):
                    continue
                tensor = reader.read(name).float()
                if name.endswith(".weight") and tensor.dim() >= 2:
                    torch.linalg.svdvals(tensor.reshape(tensor.shape[0], -1))
    return time.perf_counter() - start


def _dyntools(cache: Path, db: Path, **options: Any) -> tuple[float, pl.DataFrame]:
    chosen = ComputeOptions(network=NetworkSelection(Preset.POLYPYTHIAS), **options)
    start = time.perf_counter()
    summary = compute(cache, chosen, db=db)
    seconds = time.perf_counter() - start
    if summary.failed:
        raise RuntimeError(f"dyntools compute failed: {summary.failed}")
    network = Store(db).read_metrics().filter(pl.col("scope") == "network")
    return seconds, network


def _worst_error(
    network: pl.DataFrame, published: dict[str, dict[str, float]], steps: dict[str, int]
) -> tuple[float, str]:
    """The largest relative difference between dyntools' and the published features, and
    the feature it is found in. A mean or median of weights is a tiny difference of large
    sums: its difference is relative to the spread (the standard deviation) instead."""
    worst, where = 0.0, ""
    for snapshot, features in published.items():
        ours = dict(
            network.filter(pl.col("step") == steps[snapshot]).select("metric", "value").iter_rows()
        )
        for metric, expected in features.items():
            scale = abs(expected)
            if metric in SPREAD_SCALED:
                scale = max(scale, math.sqrt(features[SPREAD_SCALED[metric]]))
            error = abs(ours[metric] - expected) / max(scale, 1e-12)
            if error > worst:
                worst, where = error, metric
    return worst, where


def run() -> list[Row]:
    import ray

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cache = root / "hub"
        _suite(cache, root / "saved")
        (suite,) = discover_runs(cache).runs
        steps = {str(ref.files[0].parent): ref.step for ref in suite.checkpoints}
        snapshots = list(steps)
        n = len(snapshots)

        floor_s = _floor(cache)
        local_s, local = _dyntools(cache, root / "local.duckdb", workers=1)
        # "local": a new instance, even where a `ray start` cluster was recorded in /tmp/ray.
        ray.init(address="local", num_cpus=CPUS, include_dashboard=False, log_to_driver=False)
        try:
            published_s, published = _published_on_ray(snapshots)
            ray_s = {
                workers: _dyntools(cache, root / f"ray{workers}.duckdb", backend="ray",
                                   workers=workers)[0]
                for workers in (1, 2)
            }  # fmt: skip
        finally:
            ray.shutdown()
        error, where = _worst_error(local, published, steps)

    per = f"{n} fp16 revisions of a Pythia-70m-shaped GPT-NeoX, hub cache"
    return [
        Row(
            "trajectory: dyntools local vs EleutherAI's method on Ray",
            local_s,
            published_s,
            goal=">= 4x",
            note=f"{per}; published on {CPUS} Ray actors; worst relative difference "
            f"of the 14 polypythias features {error:.1e} ({where})",
        ),
        Row(
            "trajectory: dyntools local vs the floor (read + svdvals)",
            local_s,
            floor_s,
            goal=">= 0.8x",
            note=f"{local_s / n:.2f} s vs {floor_s / n:.2f} s per revision",
        ),
        Row(
            "trajectory: dyntools on Ray (1 worker) vs local",
            ray_s[1],
            local_s,
            goal=">= 0.87x (within 15%)",
            note="the engine's overhead on one machine",
        ),
        Row(
            "trajectory: dyntools on Ray (2 workers) vs local",
            ray_s[2],
            local_s,
            note=f"{CPUS} CPUs: the scaling when workers are added",
        ),
    ]
