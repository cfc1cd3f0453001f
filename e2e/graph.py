"""Hovering edges and clicking nodes of a streamlit-agraph graph in the browser.

streamlit-agraph renders vis-network on a canvas inside a component iframe and does not expose
the network object (its ``getNetwork`` callback is empty). The network lives in the React state
of the component that owns the canvas's parent div, so it is found through React's internal
fiber of that div; from it, ``getPositions`` and ``canvasToDOM`` give where each node is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from playwright.sync_api import FrameLocator, Locator, Page

AGRAPH_IFRAME = "iframe[title='streamlit_agraph.agraph']"

# Finds the vis-network instance from the canvas: up the DOM to an element React manages, then up
# its fibers, reading each component's hook list until a value with getPositions() shows up.
_FIND_NETWORK = """
function findNetwork(canvas) {
  for (let el = canvas; el; el = el.parentElement) {
    const key = Object.keys(el).find(
      (k) => k.startsWith("__reactInternalInstance$") || k.startsWith("__reactFiber$"));
    if (!key) continue;
    for (let fiber = el[key]; fiber; fiber = fiber.return) {
      for (let hook = fiber.memoizedState; hook && typeof hook === "object"; hook = hook.next) {
        const value = hook.memoizedState;
        if (value && typeof value.getPositions === "function") return value;
        if (!("next" in hook)) break;
      }
    }
  }
  return null;
}
"""

# Node and edge positions in the canvas element's own pixels (what Locator.click(position=) takes).
_LAYOUT = (
    "(canvas) => {"
    + _FIND_NETWORK
    + """
  const network = findNetwork(canvas);
  if (!network) return null;
  const rect = canvas.getBoundingClientRect();
  const toDom = (p) => network.canvasToDOM(p);
  const positions = network.getPositions();
  const nodes = Object.entries(positions).map(([id, p]) => {
    const dom = toDom(p);
    return {id: String(id), x: dom.x, y: dom.y};
  });
  const edges = [];
  for (const [id, edge] of Object.entries(network.body.edges)) {
    if (!edge.connected || edge.fromId === edge.toId) continue;
    // A point half-way along the drawn (possibly curved) edge.
    const mid = edge.edgeType.getPoint(0.5);
    const dom = toDom(mid);
    edges.push({id: String(id), from: String(edge.fromId), to: String(edge.toId),
                x: dom.x, y: dom.y});
  }
  return {nodes, edges, width: rect.width, height: rect.height};
}"""
)


@dataclass(frozen=True)
class Spot:
    """Where a node or an edge is drawn, in the canvas's pixels."""

    id: str
    x: float
    y: float


@dataclass(frozen=True)
class GraphLayout:
    nodes: tuple[Spot, ...]
    edges: tuple[Spot, ...]
    width: float
    height: float

    def inside(self, spot: Spot) -> bool:
        return 0 <= spot.x < self.width and 0 <= spot.y < self.height


def agraph_frame(page: Page, index: int = 0) -> FrameLocator:
    return page.frame_locator(AGRAPH_IFRAME).nth(index)


def graph_canvas(page: Page, index: int = 0) -> Locator:
    return agraph_frame(page, index).locator("canvas").first


def graph_layout(page: Page, index: int = 0, timeout_ms: int = 20_000) -> GraphLayout:
    """The drawn positions of the graph's nodes and edges, once the network has nodes."""
    canvas = graph_canvas(page, index)
    canvas.wait_for(state="visible", timeout=timeout_ms)
    canvas.scroll_into_view_if_needed()
    step_ms = 250
    raw: dict[str, Any] | None = None
    previous: dict[str, Any] | None = None
    # Wait for nodes, and for them to stop moving (physics may still be settling the layout).
    for _ in range(max(1, timeout_ms // step_ms)):
        raw = canvas.evaluate(_LAYOUT)
        if raw and raw["nodes"] and _same_places(raw, previous):
            break
        previous = raw
        page.wait_for_timeout(step_ms)
    if not raw or not raw["nodes"]:
        raise LookupError(
            "no vis-network nodes found in the agraph iframe: the graph did not render, or "
            "streamlit-agraph changed how it keeps its network (see e2e/graph.py)"
        )
    return GraphLayout(
        tuple(Spot(n["id"], n["x"], n["y"]) for n in raw["nodes"]),
        tuple(Spot(f"{e['from']}->{e['to']}", e["x"], e["y"]) for e in raw["edges"]),
        raw["width"],
        raw["height"],
    )


def _same_places(now: dict[str, Any], before: dict[str, Any] | None) -> bool:
    if before is None or len(before["nodes"]) != len(now["nodes"]):
        return False
    return all(
        abs(a["x"] - b["x"]) < 1 and abs(a["y"] - b["y"]) < 1
        for a, b in zip(now["nodes"], before["nodes"], strict=True)
    )


def hover_edge(page: Page, index: int = 0) -> str:
    """Hover the middle of the first edge between two nodes; returns the tooltip text shown."""
    layout = graph_layout(page, index)
    edges = [edge for edge in layout.edges if layout.inside(edge)]
    if not edges:
        raise LookupError(f"the graph has no edge between two nodes in view ({layout})")
    canvas = graph_canvas(page, index)
    canvas.hover(position={"x": edges[0].x, "y": edges[0].y})
    tooltip = agraph_frame(page, index).locator("div.vis-tooltip")
    tooltip.wait_for(state="visible", timeout=5_000)
    return tooltip.inner_text()


def click_node(page: Page, node_id: str | None = None, index: int = 0) -> str:
    """Click a node (the first one drawn, or ``node_id``); returns the id clicked."""
    layout = graph_layout(page, index)
    nodes = [n for n in layout.nodes if node_id is None or n.id == node_id]
    if not nodes:
        known = [n.id for n in layout.nodes]
        raise LookupError(f"no node {node_id!r} in the graph; its nodes are {known}")
    graph_canvas(page, index).click(position={"x": nodes[0].x, "y": nodes[0].y})
    return nodes[0].id
