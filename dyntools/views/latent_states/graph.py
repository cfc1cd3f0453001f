"""The transition graph as plain node and edge specs for the app's graph widget.

``dyntools.ui`` turns these into streamlit-agraph ``Node``/``Edge`` objects; keeping the
layout and the tooltips here keeps them testable without a browser. Positions are fixed
(states left to right by their mean time in training, alternating up and down) so the drawing does not move
on every rerun, and edges are curved so A->B and B->A do not overlap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from dyntools.checkpoints.records import Axis
from dyntools.hmm.graph import StateNode, TransitionEdge, TransitionGraph
from dyntools.views.latent_states.frames import state_color, state_label

MIN_NODE_SIZE = 12.0
MAX_NODE_SIZE = 45.0
MIN_EDGE_WIDTH = 1.0
MAX_EDGE_WIDTH = 8.0
X_SPACING = 170
Y_OFFSET = 90


@dataclass(frozen=True)
class NodeSpec:
    id: str
    label: str
    title: str  # plain-text tooltip
    size: float
    color: str
    shape: str  # "star" marks an initial state, "dot" the others
    border_width: int
    x: int
    y: int


@dataclass(frozen=True)
class EdgeSpec:
    source: str
    target: str
    label: str
    title: str  # plain-text tooltip: the top features of the transition
    width: float
    color: str


def node_id(state: int) -> str:
    return state_label(state)


def state_of(node: str) -> int:
    """The state number of a node id (``"S3"`` -> 3)."""
    if not node.startswith("S") or not node[1:].isdigit():
        raise ValueError(f"{node!r} is not a state node id (expected S0, S1, ...)")
    return int(node[1:])


def _time_order(nodes: tuple[StateNode, ...]) -> list[int]:
    def key(node: StateNode) -> tuple[float, int]:
        mean = node.mean_time if math.isfinite(node.mean_time) else math.inf
        return (mean, node.state)

    return [node.state for node in sorted(nodes, key=key)]


def node_label(state: int, name: str = "") -> str:
    """``S2``, or with a user-given name ``S2 generalizing``."""
    return f"{state_label(state)} {name}" if name else state_label(state)


def node_tooltip(node: StateNode, unit: str, name: str = "") -> str:
    visits = "1 run visits" if node.runs_visiting == 1 else f"{node.runs_visiting} runs visit"
    lines = [
        f"state {node_label(node.state, name)}" + (" (initial)" if node.initial else ""),
        f"{node.occupancy:.1%} of checkpoints, {visits}",
        f"{unit}s {node.first_time:.4g} to {node.last_time:.4g}",
    ]
    lines += [f"{key}: {value:.3g}" for key, value in sorted(node.scalar_means.items())]
    return "\n".join(lines)


def edge_tooltip(edge: TransitionEdge) -> str:
    lines = [
        f"{state_label(edge.source)} -> {state_label(edge.target)}: "
        f"p = {edge.probability:.3f}, seen {edge.count}x"
    ]
    if edge.top_mean_difference:
        lines.append("mean change (std units):")
        lines += [f"  {driver.text()}" for driver in edge.top_mean_difference]
    if edge.top_gradient:
        lines.append("switch gradient (log-odds per std unit, ± spread over switches):")
        lines += [f"  {driver.text()}" for driver in edge.top_gradient]
    return "\n".join(lines)


def graph_specs(
    graph: TransitionGraph, axis: Axis, names: Sequence[str] = ()
) -> tuple[list[NodeSpec], list[EdgeSpec]]:
    """Node and edge specs: size by occupancy, initial states starred, width by probability;
    ``names``: user-given state names, shown in the labels."""

    def name(state: int) -> str:
        return names[state] if state < len(names) else ""

    order = {state: rank for rank, state in enumerate(_time_order(graph.nodes))}
    nodes = [
        NodeSpec(
            id=node_id(node.state),
            label=node_label(node.state, name(node.state)),
            title=node_tooltip(node, axis.value, name(node.state)),
            size=MIN_NODE_SIZE + (MAX_NODE_SIZE - MIN_NODE_SIZE) * math.sqrt(node.occupancy),
            color=state_color(node.state),
            shape="star" if node.initial else "dot",
            border_width=4 if node.initial else 1,
            x=order[node.state] * X_SPACING,
            y=(Y_OFFSET if order[node.state] % 2 else -Y_OFFSET) if len(order) > 2 else 0,
        )
        for node in graph.nodes
    ]
    edges = [
        EdgeSpec(
            source=node_id(edge.source),
            target=node_id(edge.target),
            label=f"{edge.probability:.2f}",
            title=edge_tooltip(edge),
            width=MIN_EDGE_WIDTH + (MAX_EDGE_WIDTH - MIN_EDGE_WIDTH) * edge.probability,
            color=state_color(edge.source),
        )
        for edge in graph.edges
    ]
    return nodes, edges
