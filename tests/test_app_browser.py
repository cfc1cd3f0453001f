"""The app in a real browser: Debian's Chromium, driven by Playwright, against ``streamlit run``.

Walks every page of e2e.pages.WALKS on a small computed folder, does what a person would do on
each (change a selection, refit, hover an edge and click a node of the graph), checks that no
exception box, error alert or error toast appears, and saves screenshots to
test-artifacts/screenshots/. ``make test`` installs the browser when it is missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from e2e import widgets
from e2e.browser import (
    assert_clean,
    chromium,
    full_page_screenshot,
    new_page,
    page_url,
    wait_for_app,
)
from e2e.folder import analysis_folder
from e2e.layout import chart_layout_problems
from e2e.pages import WALKS, PageWalk, check_rendered
from e2e.server import APP, PACKAGED, REPO_ROOT, AppServer, listening_addresses, running_app

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ARTIFACTS = REPO_ROOT / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"


@pytest.fixture(scope="module")
def analysis(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return analysis_folder(tmp_path_factory.mktemp("analysis"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def app(analysis: Path, browser: Browser) -> Iterator[AppServer]:
    with running_app(analysis, ARTIFACTS / "streamlit.log") as server:
        yield server


@contextmanager
def tab(browser: Browser, failure_shot: Path) -> Iterator[Page]:
    """A fresh tab (its own Streamlit session); on failure its screen is kept for a look."""
    page = new_page(browser)
    try:
        yield page
    except BaseException:
        full_page_screenshot(page, failure_shot)
        raise
    finally:
        page.context.close()


@pytest.mark.parametrize("spec", WALKS, ids=[spec.slug for spec in WALKS])
def test_page_renders_and_responds(
    spec: PageWalk, app: AppServer, browser: Browser, analysis: Path
) -> None:
    with tab(browser, SCREENSHOTS / f"{spec.slug}-failed.png") as page:
        page.goto(page_url(app.url, spec.url_path, analysis))
        wait_for_app(page, spec.title)
        assert_clean(page, f"{spec.title} page")
        check_rendered(page, spec)
        assert chart_layout_problems(page) == []
        full_page_screenshot(page, SCREENSHOTS / f"{spec.slug}.png")
        for action in spec.actions:
            action.run(page)
            assert_clean(page, f"{spec.title} page after {action.name}")
            assert chart_layout_problems(page) == []
        if spec.actions:
            full_page_screenshot(page, SCREENSHOTS / f"{spec.slug}-after.png")


def test_sidebar_reaches_every_page_in_one_session(
    app: AppServer, browser: Browser, analysis: Path
) -> None:
    with tab(browser, SCREENSHOTS / "navigation-failed.png") as page:
        page.goto(page_url(app.url, "", analysis))
        wait_for_app(page, WALKS[0].title)
        links = page.get_by_test_id("stSidebarNav").get_by_role("link")
        # Every page the app offers is one the walk knows, so a new page cannot go unwalked.
        assert _sidebar_titles(page) == [spec.title for spec in WALKS]
        for spec in (*WALKS[1:], WALKS[0]):
            links.filter(has_text=re.compile(rf"{re.escape(spec.title)}\s*$")).click()
            wait_for_app(page, spec.title)
            assert_clean(page, f"{spec.title} page reached from the sidebar")
            assert page.url.split("?")[0] == f"{app.url}/{spec.url_path}"
            assert "folder=" in page.url, "the folder fell out of the URL on the way"


def _sidebar_titles(page: Page) -> list[str]:
    # A link's text is its icon's name, then its title.
    links = page.get_by_test_id("stSidebarNav").get_by_role("link")
    return [text.strip().splitlines()[-1].strip() for text in links.all_inner_texts()]


def test_plain_streamlit_run_listens_on_localhost_only(analysis: Path) -> None:
    # No --server.address: .streamlit/config.toml must keep the app off other machines' reach.
    with running_app(analysis, ARTIFACTS / "streamlit-bind.log", bind=False) as server:
        assert listening_addresses(server.port) == {"127.0.0.1"}


FRESH = [(spec, PACKAGED) for spec in WALKS] + [(WALKS[1], APP)]


@pytest.mark.parametrize(
    ("spec", "script"), FRESH, ids=[f"{s.slug}-{p.parent.name}" for s, p in FRESH]
)
def test_a_link_opens_its_page_on_a_fresh_server(
    spec: PageWalk, script: Path, browser: Browser, analysis: Path, tmp_path: Path
) -> None:
    """A link someone shared, opened on a server no one has visited: the right page, no "Page
    not found" dialog, and the selections the link carries."""
    with (
        running_app(analysis, tmp_path / "streamlit.log", script=script) as server,
        tab(browser, SCREENSHOTS / f"{spec.slug}-fresh-failed.png") as page,
    ):
        run = "modular-addition/seed0"
        page.goto(page_url(server.url, spec.url_path, analysis) + f"&runs={run}")
        wait_for_app(page, spec.title)
        page.wait_for_timeout(500)
        assert not page.get_by_text("Page not found").count()
        assert f"runs={run.replace('/', '%2F')}" in page.url or f"runs={run}" in page.url
        # The whole app, through its router: the sidebar names the pages by their titles (a
        # file of pages/ run bare would list file names) and holds the folder.
        assert _sidebar_titles(page) == [spec.title for spec in WALKS]
        assert page.get_by_test_id("stSidebar").get_by_role("textbox").input_value() == str(
            analysis
        )


ALL_RUNS = "modular-addition/seed0,modular-addition/seed1,digits-cnn/seed0"


@pytest.mark.parametrize("spec", [s for s in WALKS if s.url_path], ids=lambda s: s.slug)
def test_charts_of_every_run_fit_the_page(
    spec: PageWalk, app: AppServer, browser: Browser, analysis: Path
) -> None:
    """Three runs side by side (the most the walk's folder has): no chart wider than the page,
    every legend in view."""
    with tab(browser, SCREENSHOTS / f"{spec.slug}-all-runs-failed.png") as page:
        page.goto(page_url(app.url, spec.url_path, analysis) + f"&runs={ALL_RUNS}")
        wait_for_app(page, spec.title)
        check_rendered(page, spec)
        assert chart_layout_problems(page) == []


FIT_SUCCESS = re.compile(r"Fit (\w+): (fitted and stored|read back from the store)")


def _shown_fit(page: Page) -> str:
    text = page.get_by_text(FIT_SUCCESS).first.inner_text()
    found = FIT_SUCCESS.search(text)
    assert found, text
    return found.group(1)


def test_a_copied_url_shows_the_same_fit(app: AppServer, browser: Browser, analysis: Path) -> None:
    """Fit settings changed in one tab; its URL opened in a new session (a reload, a link sent
    to a colleague) shows the same fit, settings and all."""
    with tab(browser, SCREENSHOTS / "latent-states-url-failed.png") as page:
        page.goto(page_url(app.url, "latent-states", analysis))
        wait_for_app(page, "Latent states")
        widgets.choose(page, "Covariance", "spherical")
        widgets.choose(page, "Number of states", "2")
        expect(page.get_by_text(re.compile(r"Fit \w+: .*\b2 states"))).to_be_visible()
        shown, url = _shown_fit(page), page.url
    assert "latent.covariance=spherical" in url and "latent.n_states=2" in url
    with tab(browser, SCREENSHOTS / "latent-states-url-reopened-failed.png") as page:
        page.goto(url)
        wait_for_app(page, "Latent states")
        assert_clean(page, "Latent states opened from a copied URL")
        assert _shown_fit(page) == shown
        assert widgets.selected_value(page, "Covariance") == "spherical"
