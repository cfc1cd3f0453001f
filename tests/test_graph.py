from __future__ import annotations

import numpy as np

from dyntools.hmm.attribution import Driver, EdgeDrivers
from dyntools.hmm.graph import transition_graph
from dyntools.hmm.params import HMMParams


def params() -> HMMParams:
    return HMMParams(
        covariance_type="diag",
        startprob=np.array([0.8, 0.2, 0.0]),
        transmat=np.array([[0.7, 0.2, 0.1], [0.0, 0.9, 0.1], [0.0, 0.0, 1.0]]),
        means=np.zeros((3, 2)),
        covars=np.ones((3, 2)),
    )


def test_nodes_and_edges_from_hand_made_paths() -> None:
    paths = {"a": np.array([0, 0, 1, 1, 2]), "b": np.array([1, 1, 2, 2, 2])}
    epochs = {"a": np.arange(5.0), "b": np.arange(5.0)}
    val_acc = {"a": np.array([0.0, 0.0, 0.5, 0.5, 1.0]), "b": np.array([0.4, 0.6, 1, 1, 1.0])}
    drivers = {
        (1, 2): EdgeDrivers(
            1, 2, 2, np.array([0.5, -2.0]), np.array([1.0, 0.1]), np.array([0.2, 0.3])
        ),
    }
    graph = transition_graph(
        params(), paths, epochs, drivers, ["f", "g"], {"val_acc": val_acc}, top=1
    )
    occupancy = [n.checkpoints for n in graph.nodes]
    assert occupancy == [2, 4, 4]
    assert [n.initial_runs for n in graph.nodes] == [1, 1, 0]
    assert [n.initial for n in graph.nodes] == [True, True, False]
    assert graph.nodes[2].runs_visiting == 2
    assert graph.nodes[1].scalar_means["val_acc"] == np.mean([0.5, 0.5, 0.4, 0.6])
    assert (graph.nodes[2].first_time, graph.nodes[2].last_time) == (2.0, 4.0)
    # State 2: run a at epoch 4 (1 epoch), run b at epochs 2, 3, 4 (3 epochs): 2 per run.
    assert graph.nodes[2].spent_per_run == 2.0
    assert [(e.source, e.target, e.count) for e in graph.edges] == [(0, 1, 1), (1, 2, 2)]
    assert graph.edges[0].probability == 0.2 and graph.edges[0].top_gradient == ()
    assert [(d.feature, d.value) for d in graph.edges[1].top_mean_difference] == [("g", -2.0)]
    assert graph.edges[1].top_gradient == (Driver("f", 1.0, 0.2),)


def test_self_loops_on_request() -> None:
    paths = {"a": np.array([0, 0, 1])}
    graph = transition_graph(
        params(), paths, {"a": np.arange(3.0)}, {}, ["f", "g"], self_loops=True
    )
    assert [(e.source, e.target, e.count) for e in graph.edges] == [(0, 0, 1), (0, 1, 1)]
    assert graph.edges[0].probability == 0.7
