"""Driving Streamlit widgets the way a person does: by their visible labels."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from e2e.browser import wait_for_rerun


def widget(page: Page, test_id: str, label: str) -> Locator:
    """The widget of this kind whose label reads exactly ``label``."""
    labelled = page.get_by_test_id("stWidgetLabel").filter(
        has_text=re.compile(rf"^\s*{re.escape(label)}\s*$")
    )
    found = page.get_by_test_id(test_id).filter(has=labelled)
    if found.count() == 0:
        raise LookupError(f"no {test_id} labelled {label!r} on the page")
    return found.first


def choose(page: Page, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label`` and wait for the rerun.

    The box is scrolled into view first: its dropdown closes on a scroll, and clicking a box
    off screen scrolls the page while the dropdown opens (then it opens and closes at once).
    """
    box = widget(page, "stSelectbox", label)
    box.scroll_into_view_if_needed()
    page.wait_for_timeout(300)  # let the scroll settle before the dropdown opens
    box.click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_for_rerun(page)


def options(page: Page, label: str) -> list[str]:
    """The options of the selectbox labelled ``label`` (its dropdown opened and closed)."""
    box = widget(page, "stSelectbox", label)
    box.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    box.click()
    listed = page.get_by_role("option")
    listed.first.wait_for(state="visible")
    names = [text.strip() for text in listed.all_inner_texts()]
    page.keyboard.press("Escape")
    return names


def add_to_multiselect(page: Page, label: str) -> str:
    """Add the first option not yet chosen to the multiselect labelled ``label``."""
    box = widget(page, "stMultiSelect", label)
    box.locator("input").click()
    options = page.get_by_role("option")
    options.first.wait_for(state="visible")
    name = options.first.inner_text().strip()
    options.first.click()
    page.keyboard.press("Escape")
    wait_for_rerun(page)
    return name


def flip(page: Page, label: str) -> None:
    """Click the toggle or checkbox labelled ``label``."""
    page.get_by_test_id("stCheckbox").filter(has_text=label).first.locator("label").click()
    wait_for_rerun(page)


def pick_radio(page: Page, label: str, option: str) -> None:
    widget(page, "stRadio", label).get_by_text(option, exact=True).click()
    wait_for_rerun(page)


def press(page: Page, name: str, timeout_ms: int = 120_000) -> None:
    page.get_by_role("button", name=name, exact=True).click()
    wait_for_rerun(page, timeout_ms=timeout_ms)


def selected_value(page: Page, label: str) -> str:
    """The text a selectbox shows as its current choice."""
    # The choice is the value of the combobox input that carries the label as its aria-label.
    return page.get_by_role("combobox", name=label, exact=True).input_value()


def follow(page: Page) -> Locator:
    """Turn on the sidebar's "Follow this folder" and return its status line (``Following:
    results version N``), once it shows."""
    flip(page, "Follow this folder")
    status = page.get_by_text(re.compile(r"Following: results version \d+"))
    expect(status).to_be_visible()
    return status
