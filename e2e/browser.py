"""Debian's Chromium driven by Playwright, and how to tell that a Streamlit page is done.

Playwright's own browser download does not work on our machines (and CI starts clean), so the
browser is Debian's ``/usr/bin/chromium``, installed by ``make test`` when missing.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    # Root in a container: Chromium's sandbox cannot start, and there is no GPU.
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # The machine's network is closed: without these Chromium keeps dialling Google's hosts.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)
VIEWPORT = {"width": 1400, "height": 900}
RUN_TIMEOUT_MS = 60_000

# Streamlit publishes its state on the root element (its own e2e tests wait on these).
CONNECTED = "[data-testid='stApp'][data-test-connection-state='CONNECTED']"
NOT_RUNNING = "[data-testid='stApp'][data-test-script-state='notRunning']"
EXCEPTION = "[data-testid='stException']"
ERROR_ALERT = "[data-testid='stAlertContentError']"
TOAST = "[data-testid='stToast']"
DIALOG = "[role='dialog']"

# Uncaught script errors per tab, collected from the moment the tab opens.
_JS_ERRORS: weakref.WeakKeyDictionary[Page, list[str]] = weakref.WeakKeyDictionary()


def require_chromium() -> None:
    if not CHROMIUM.exists():
        raise FileNotFoundError(
            f"{CHROMIUM} not found: the browser test drives Debian's Chromium; run `make test` "
            "(installs it) or `apt-get install chromium`"
        )


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Debian Chromium under Playwright, closed when the block ends."""
    require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Browser) -> Page:
    """A new tab in its own context (so its own Streamlit session) at the README viewport."""
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    page = context.new_page()
    page.set_default_timeout(RUN_TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    _JS_ERRORS[page] = errors
    return page


def page_url(base: str, url_path: str, folder: Path) -> str:
    """A page's URL with the folder as query parameter (the app keeps it there too)."""
    from urllib.parse import quote

    return f"{base}/{url_path}?folder={quote(str(folder))}"


def wait_for_app(page: Page, title: str | None = None, timeout_ms: int = RUN_TIMEOUT_MS) -> None:
    """Wait until the page's title shows, the script has finished and nothing is loading."""
    if title is not None:
        # The new title first: right after a click the old page still reads "notRunning".
        heading = page.get_by_role("heading", name=re.compile(rf"^{re.escape(title)}\b"))
        expect(heading.first).to_be_visible(timeout=timeout_ms)
    page.locator(CONNECTED).wait_for(state="attached", timeout=timeout_ms)
    page.locator(NOT_RUNNING).wait_for(state="attached", timeout=timeout_ms)
    expect(page.get_by_test_id("stSkeleton")).to_have_count(0, timeout=timeout_ms)


def wait_for_rerun(page: Page, timeout_ms: int = RUN_TIMEOUT_MS) -> None:
    """After an interaction: let the rerun start (widgets debounce), then wait for its end."""
    page.wait_for_timeout(300)
    wait_for_app(page, timeout_ms=timeout_ms)


def page_problems(page: Page) -> list[str]:
    """Exception boxes, error alerts and toasts, "Page not found" dialogs and uncaught script
    errors on the page."""
    problems = [f"exception box: {text}" for text in page.locator(EXCEPTION).all_inner_texts()]
    problems += [f"error alert: {text}" for text in page.locator(ERROR_ALERT).all_inner_texts()]
    problems += [
        f"error toast: {text}"
        for text in page.locator(TOAST).all_inner_texts()
        if re.search(r"error|failed|exception", text, re.IGNORECASE)
    ]
    problems += [
        f"dialog: {text}"
        for text in page.locator(DIALOG).all_inner_texts()
        if re.search(r"not found|error", text, re.IGNORECASE)
    ]
    problems += [f"browser error: {text}" for text in _JS_ERRORS.get(page, [])]
    return problems


def assert_clean(page: Page, where: str) -> None:
    problems = page_problems(page)
    if problems:
        raise AssertionError(f"{where}: " + "\n".join(problems))


def screenshot(page: Page, path: Path, *, full_page: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=full_page)
    return path


# The element that scrolls in Streamlit's layout (the page body itself does not), whose height is
# what a full-page screenshot must show.
_CONTENT_HEIGHT = """() => {
  const main = document.querySelector("[data-testid='stMain']");
  const heights = [document.documentElement.scrollHeight];
  if (main) heights.push(main.scrollHeight);
  return Math.max(...heights);
}"""
MAX_SCREENSHOT_HEIGHT = 8000


def full_page_screenshot(page: Page, path: Path) -> Path:
    """The whole page, not just the viewport: the window is made as tall as the content."""
    size = page.viewport_size or VIEWPORT
    height = min(int(page.evaluate(_CONTENT_HEIGHT)), MAX_SCREENSHOT_HEIGHT)
    if height > size["height"]:
        page.set_viewport_size({"width": size["width"], "height": height})
        page.wait_for_timeout(500)  # charts redraw for the new size
    try:
        return screenshot(page, path, full_page=False)
    finally:
        page.set_viewport_size({"width": size["width"], "height": size["height"]})
