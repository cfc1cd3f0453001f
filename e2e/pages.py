"""The walk: every page of the app, what must be on it, and what a person would do there.

Data, not code paths: a page is a title, a URL path and a list of actions. A new page is one
more PageWalk; the browser test, the benchmark and the README screenshots all read WALKS.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from playwright.sync_api import Page, expect

from e2e import widgets
from e2e.browser import wait_for_rerun
from e2e.graph import click_node, graph_layout, hover_edge

CHART = "[data-testid='stVegaLiteChart']"


@dataclass(frozen=True)
class Action:
    """One thing a person does on a page, and what they then see (checked inside ``run``)."""

    name: str
    run: Callable[[Page], None]


@dataclass(frozen=True)
class PageWalk:
    """What the browser walk does on one page of the app and what it must find there."""

    title: str  # the sidebar link and the page's heading
    url_path: str  # st.Page url_path ("" for the default page)
    actions: tuple[Action, ...] = ()
    needs: tuple[str, ...] = ()  # selectors that must be on the page once it has rendered

    @property
    def slug(self) -> str:
        return self.url_path or "folder"


def charts_drawn(page: Page, at_least: int = 1) -> None:
    """Vega-Lite has drawn (its canvas or svg is in place) in at least ``at_least`` charts."""
    drawn = page.locator(f"{CHART} canvas, {CHART} svg")
    expect(drawn.nth(at_least - 1)).to_be_attached()


def _hook_points_compute(page: Page) -> None:
    # The fixture computed the defaults already, so this is a quick "up to date" pass.
    widgets.press(page, "Compute")
    status = page.get_by_test_id("stExpander").filter(has_text=re.compile(r"Computed \d+"))
    expect(status.first).to_be_visible()


def _metrics_change_selection(page: Page) -> None:
    widgets.add_to_multiselect(page, "Metrics")
    charts_drawn(page)
    widgets.flip(page, "Log scale")
    charts_drawn(page)


def _metrics_views(page: Page) -> None:
    widgets.pick_radio(page, "Values of", "each tensor")
    charts_drawn(page)
    colour = page.get_by_test_id("stRadio").filter(has_text="by each run's state")
    colour.get_by_text("by each run's state", exact=True).click()
    wait_for_rerun(page)
    charts_drawn(page)
    # Smoothing: the slider's thumb, moved with the keyboard as a person can.
    thumb = widgets.widget(page, "stSlider", "Smoothing").get_by_role("slider")
    thumb.focus()
    for _ in range(60):
        thumb.press("ArrowRight")
    wait_for_rerun(page)
    charts_drawn(page)
    if "metrics.smoothing=" not in page.url:
        raise AssertionError(f"the smoothing did not reach the URL: {page.url}")


def _latent_refit(page: Page) -> None:
    widgets.choose(page, "Number of states", "3")
    expect(page.get_by_text(re.compile(r"Fit \w+: .*\b3 states"))).to_be_visible()
    widgets.choose(page, "Covariance", "spherical")
    expect(page.get_by_text(re.compile(r"Fit \w+: (fitted and stored|read back)"))).to_be_visible()


def _latent_graph(page: Page) -> None:
    tooltip = hover_edge(page)
    if not tooltip.strip():
        raise AssertionError("hovering an edge of the transition graph showed an empty tooltip")
    others = [node.id for node in graph_layout(page).nodes if node.id != "S0"]
    clicked = click_node(page, others[-1] if others else None)
    page.wait_for_timeout(300)
    wait_for_rerun(page)
    shown = widgets.selected_value(page, "State")
    if shown.strip() != clicked:
        raise AssertionError(f"clicked node {clicked} but the State box shows {shown!r}")


def _latent_views(page: Page) -> None:
    expect(page.get_by_text("switch log-odds gradient").first).to_be_attached()
    runs = widgets.options(page, "Run")
    widgets.choose(page, "Run", runs[-1])
    charts_drawn(page)


def _activations_other_bins(page: Page) -> None:
    page.get_by_text("Other bins", exact=True).click()
    bins = widgets.widget(page, "stNumberInput", "Bins").locator("input")
    bins.fill("8")
    widgets.press(page, "Compute these histograms")
    expect(page.get_by_text(re.compile(r"Computed \d+ checkpoints"))).to_be_visible()
    if "8 bins" not in widgets.selected_value(page, "Histogram bins (computed more than one way)"):
        raise AssertionError("the new bins are not the ones shown")
    charts_drawn(page)


def _information_plane_variant(page: Page) -> None:
    radio = widgets.widget(page, "stRadio", "HSIC")
    options = radio.get_by_role("radio")
    options.nth(options.count() - 1).check(force=True)
    wait_for_rerun(page)
    charts_drawn(page)


WALKS: tuple[PageWalk, ...] = (
    PageWalk("Folder", "", needs=("[data-testid='stDataFrame']", CHART)),
    PageWalk(
        "Hook points",
        "hook-points",
        actions=(Action("compute", _hook_points_compute),),
        needs=("[data-testid='stDataFrame']",),
    ),
    PageWalk(
        "Metrics",
        "metrics",
        actions=(
            Action("change selection", _metrics_change_selection),
            Action("per tensor, by state, smoothed", _metrics_views),
        ),
        needs=(CHART,),
    ),
    PageWalk(
        "Latent states",
        "latent-states",
        actions=(
            Action("refit", _latent_refit),
            Action("graph", _latent_graph),
            Action("drivers and posteriors", _latent_views),
        ),
        needs=(CHART, "iframe[title='streamlit_agraph.agraph']"),
    ),
    PageWalk("Compare fits", "compare-fits", needs=(CHART,)),
    PageWalk(
        "Activations",
        "activations",
        actions=(Action("other bins", _activations_other_bins),),
        needs=(CHART,),
    ),
    PageWalk("Training steps", "steps", needs=(CHART,)),
    PageWalk(
        "Information plane",
        "information-plane",
        actions=(Action("variant", _information_plane_variant),),
        needs=(CHART,),
    ),
)


def check_rendered(page: Page, spec: PageWalk) -> None:
    """What must be on the page once it has rendered."""
    for selector in spec.needs:
        expect(page.locator(selector).first).to_be_attached()
    if CHART in spec.needs:
        charts_drawn(page)
