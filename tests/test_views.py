"""The app's pure view helpers: recent folders, exports, selections, state intervals, graph."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from dyntools.checkpoints.records import Axis
from dyntools.hmm.attribution import Driver
from dyntools.hmm.graph import StateNode, TransitionEdge, TransitionGraph
from dyntools.ui.recent import MAX_RECENT, read_recent, remember_folder
from dyntools.views.export import frame_bytes
from dyntools.views.latent_states.frames import state_intervals
from dyntools.views.latent_states.graph import graph_specs, state_of
from dyntools.views.shared_selections import decode_list, encode_list, reconcile


def test_recent_folders_most_recent_first_and_bounded(tmp_path: Path) -> None:
    path = tmp_path / "recent.json"
    for k in range(MAX_RECENT + 3):
        remember_folder(f"/data/{k}", path)
    remember_folder("/data/5", path)
    folders = read_recent(path)
    assert folders[0] == "/data/5" and len(folders) == MAX_RECENT
    assert folders.count("/data/5") == 1


@pytest.mark.parametrize("content", ["{not json", '["a"]', '{"folders": 3}', ""])
def test_corrupt_recent_file_reads_as_empty_and_is_repaired(tmp_path: Path, content: str) -> None:
    path = tmp_path / "recent.json"
    path.write_text(content)
    assert read_recent(path) == []
    assert remember_folder("/x", path) == ["/x"]
    assert read_recent(path) == ["/x"]


def test_exports_round_trip() -> None:
    frame = pl.DataFrame({"run_id": ["a", "b"], "value": [1.5, None], "edges": [[0.0, 1.0], [2.0]]})
    parquet, mime = frame_bytes(frame, "parquet")
    assert mime == "application/vnd.apache.parquet"
    assert pl.read_parquet(io.BytesIO(parquet)).equals(frame)
    csv, _ = frame_bytes(frame, "csv")
    back = pl.read_csv(io.BytesIO(csv))
    assert back["run_id"].to_list() == ["a", "b"]
    assert back["edges"].to_list() == ["0.0;1.0", "2.0"]
    with pytest.raises(ValueError, match="unknown export format 'xlsx'"):
        frame_bytes(frame, "xlsx")


def test_selection_lists_and_reconcile() -> None:
    assert decode_list(encode_list(["a/b", "c"])) == ["a/b", "c"]
    assert decode_list(None) == [] and decode_list("") == []
    assert reconcile(["x", "b"], ["a", "b", "c"]) == ["b"]
    assert reconcile(["x"], ["a", "b", "c"], default=2) == ["a", "b"]
    assert reconcile([], ["a", "b", "c"], preferred=["c", "z"]) == ["c"]


class _Result:
    """The few FitResult fields state_intervals reads (a hand-worked example, on the step axis:
    r2 states no epochs, so the whole fit is placed at steps)."""

    run_ids = ("r1", "r2")
    lengths = (4, 2)
    times = np.array([0.0, 10.0, 20.0, 30.0, 50.0, 70.0])
    states = np.array([0, 0, 1, 0, 2, 2])


def test_state_intervals_tile_each_run() -> None:
    frame = state_intervals(_Result())  # type: ignore[arg-type]
    assert frame.rows() == [
        ("r1", "S0", 0.0, 20.0),
        ("r1", "S1", 20.0, 30.0),
        ("r1", "S0", 30.0, 40.0),  # the last checkpoint stands for one more gap
        ("r2", "S2", 50.0, 90.0),
    ]


def _node(state: int, occupancy: float, initial: int, mean_time: float) -> StateNode:
    return StateNode(
        state=state,
        checkpoints=10,
        occupancy=occupancy,
        runs_visiting=2,
        initial_runs=initial,
        first_time=mean_time - 1,
        mean_time=mean_time,
        last_time=mean_time + 1,
        spent_per_run=5.0,
        scalar_means={"val_acc": 0.5},
    )


def test_graph_specs_size_shape_width_and_tooltips() -> None:
    graph = TransitionGraph(
        nodes=(_node(0, 0.64, 2, 50.0), _node(1, 0.36, 0, 10.0)),
        edges=(
            TransitionEdge(0, 1, 3, 0.2, (Driver("fc1/l2", 1.5),), ()),
            TransitionEdge(1, 0, 1, 0.9, (), (Driver("fc2/l2", -0.25, 0.125),)),
        ),
    )
    nodes, edges = graph_specs(graph, Axis.STEP)
    big, small = nodes
    assert big.size > small.size
    assert (big.shape, small.shape) == ("star", "dot")
    assert small.x < big.x  # laid out by mean time
    assert "steps 49 to 51" in big.title
    assert edges[1].width > edges[0].width
    assert "fc1/l2 +1.5" in edges[0].title and "fc2/l2 -0.25 ±0.12" in edges[1].title
    assert "(initial)" in big.title
    assert state_of(big.id) == 0
    with pytest.raises(ValueError, match="not a state node id"):
        state_of("node-3")


def test_recorded_problems_keeps_failures_and_groups_defined_gaps() -> None:
    from dyntools.views.hook_points import recorded_problems

    errors = pl.DataFrame(
        {
            "file": ["a", "b", "c", "d"],
            "code": ["failed", "undefined", "undefined", "no-previous"],
            "why": ["truncated", "0/0", "0/0", "first checkpoint"],
            "run_id": ["r1", "r1", "r2", "r1"],
        }
    )
    problems, notes = recorded_problems(errors)
    assert problems["file"].to_list() == ["a"]
    assert notes.sort("code").rows() == [
        ("no-previous", "first checkpoint", 1, 1),
        ("undefined", "0/0", 2, 2),
    ]


def test_hook_points_in_network_order_and_activation_functions() -> None:
    from dyntools.views.layers import activation_functions, network_order

    modules = pl.DataFrame(
        {
            "run_id": ["a", "a", "a", "a", "b"],
            "hook_point": ["conv1", "relu1", "fc1", "act", "fc1"],
            "position": [0, 1, 2, 3, 0],
            "module_type": ["Conv2d", "ReLU", "Linear", "NewGELUActivation", "Linear"],
        }
    )
    hooks = ["fc1", "act", "relu1", "layers.10", "conv1", "layers.2"]
    # Run a's model has most of them; hook points no model has follow, numbers as numbers.
    assert network_order(hooks, modules) == [
        "conv1",
        "relu1",
        "fc1",
        "act",
        "layers.2",
        "layers.10",
    ]
    assert activation_functions(["conv1", "relu1", "act", "fc1"], modules) == ["relu1", "act"]


def test_pages_start_from_the_task_of_the_chosen_runs_else_the_largest() -> None:
    from dyntools.views.folder import main_task, runs_of_task

    tasks = {"a/0": "digits", "b/0": "parity", "b/1": "parity", "c/0": "(hf-trainer)"}
    assert main_task(tasks) == "parity"
    assert main_task(tasks, ["a/0", "gone/0"]) == "digits"
    assert main_task({}) is None
    assert main_task({"x": "b", "y": "a"}) == "a"  # a tie goes to the first name
    assert runs_of_task(tasks, "parity") == ["b/0", "b/1"]


def test_default_features_follow_other_pages_else_the_layer_norms_in_network_order() -> None:
    from dyntools.metrics.feature import Feature
    from dyntools.views.latent_states.options import default_features

    offered = [
        Feature(hook, metric, params)
        for hook in ("conv1", "fc1", "relu1")
        for metric, params in (
            ("dead_fraction", '{"threshold":0.01}'),
            ("l2", ""),
            ("spectral", ""),
        )
    ]
    modules = pl.DataFrame(
        {
            "run_id": ["a"] * 3,
            "hook_point": ["fc1", "conv1", "relu1"],
            "position": [0, 1, 2],
            "module_type": ["Linear", "Conv2d", "ReLU"],
        }
    )
    # Nothing chosen elsewhere: the norms, layer by layer in network order (never a dead
    # fraction because its name sorts first).
    assert default_features(offered, [], [], modules) == [
        "fc1/l2",
        "fc1/spectral",
        "conv1/l2",
        "conv1/spectral",
        "relu1/l2",
        "relu1/spectral",
    ]
    chosen = default_features(offered, ["relu1"], ["dead_fraction"], modules)
    assert chosen == ['relu1/dead_fraction@{"threshold":0.01}']


def _tensorboard_smoothing(values: list[float], weight: float) -> list[float]:
    """TensorBoard's smoothing as its frontend computes it (a debiased EMA that skips
    non-finite points, which keep their value)."""
    last, count, out = 0.0, 0, []
    for value in values:
        if not np.isfinite(value):
            out.append(value)
            continue
        last = last * weight + (1 - weight) * value
        count += 1
        out.append(last / (1 - weight**count))
    return out


def test_smoothing_is_tensorboards_per_curve() -> None:
    from dyntools.views.metrics import smoothed

    a = [1.0, 3.0, float("nan"), 2.0, 8.0, 5.0]
    b = [10.0, 0.0, 4.0]
    curves = pl.DataFrame(
        {
            "run_id": ["r"] * 6 + ["s"] * 3,
            "series": ["fc1"] * 9,
            "metric": ["l2"] * 9,
            "params": [""] * 9,
            "step": [5, 0, 1, 2, 3, 4, 2, 0, 1],  # not in order: smoothing follows the steps
            "value": [a[5], a[0], a[1], a[2], a[3], a[4], b[2], b[0], b[1]],
        }
    )
    out = smoothed(curves, 0.6).sort("run_id", "step")
    expected = _tensorboard_smoothing(a, 0.6) + _tensorboard_smoothing(b, 0.6)
    got = out["smoothed"].to_list()
    assert np.isnan(got[2]) and np.isnan(expected[2])
    assert [g for i, g in enumerate(got) if i != 2] == pytest.approx(
        [e for i, e in enumerate(expected) if i != 2]
    )
    assert smoothed(curves, 0.0)["smoothed"].to_list()[1:2] == [1.0]
    with pytest.raises(ValueError, match="smoothing weight"):
        smoothed(curves, 1.0)


def test_tensor_curves_name_each_head_and_fused_part() -> None:
    from dyntools.views.metrics import tensor_curve_frame

    metrics = pl.DataFrame(
        {
            "run_id": ["r"] * 4,
            "kind": ["weight"] * 4,
            "scope": ["tensor", "tensor", "tensor", "hook_point"],
            "hook_point": ["attn"] * 4,
            "tensor": ["attn.W_Q", "attn.c_attn.weight", "attn.W_O", ""],
            "head": [2, None, None, None],
            "component": ["", "q", "", ""],
            "metric": ["l2"] * 4,
            "params": [""] * 4,
            "step": [0] * 4,
            "epoch": [None] * 4,
            "value": [1.0, 2.0, 3.0, 4.0],
        }
    )
    series = tensor_curve_frame(metrics)["series"].to_list()
    assert sorted(series) == ["attn.W_O", "attn.W_Q head 2", "attn.c_attn.weight q"]


def test_fit_correspondence_and_adjusted_rand_index_match_sklearn() -> None:
    from sklearn.metrics import adjusted_rand_score

    from dyntools.views.compare_fits import adjusted_rand_index, matched_states

    rng = np.random.default_rng(3)
    a = rng.integers(0, 3, 40)
    b = (a + (rng.random(40) < 0.2)) % 4  # mostly a renaming of a
    table = (
        pl.DataFrame({"state_a": [f"S{x}" for x in a], "state_b": [f"S{x}" for x in b]})
        .group_by("state_a", "state_b")
        .agg(pl.len().cast(pl.Int64).alias("checkpoints"))
        .with_columns(
            share_of_a=pl.col("checkpoints") / pl.col("checkpoints").sum().over("state_a")
        )
    )
    assert adjusted_rand_index(table) == pytest.approx(adjusted_rand_score(a, b))
    matched = dict(matched_states(table).select("state_a", "state_b").iter_rows())
    assert matched == {"S0": "S0", "S1": "S1", "S2": "S2"}
