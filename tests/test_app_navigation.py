"""Every page both ways (through the router, and its file on its own), with nothing computed
and with results; shared selections across page switches and through a reload (the URL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from apptest_helpers import PAGE_FILES, by_key, direct, routed, texts
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.usefixtures("_config_home")
TITLES = {
    "folder": "Folder",
    "hook-points": "Hook points",
    "metrics": "Metrics",
    "latent-states": "Latent states",
    "compare-fits": "Compare fits",
    "activations": "Activations",
    "steps": "Training steps",
    "information-plane": "Information plane",
}
NEEDS_METRICS = ("metrics", "latent-states", "compare-fits", "activations", "information-plane")


@pytest.mark.parametrize("page", list(PAGE_FILES))
def test_every_page_renders_both_ways(page: str, analysed_folder: Path) -> None:
    for app in (routed(page, analysed_folder), direct(page, analysed_folder)):
        assert not app.exception, app.exception
        assert not app.error, [e.value for e in app.error]
        assert app.title[0].value == TITLES[page]


@pytest.mark.parametrize("page", NEEDS_METRICS)
def test_pages_with_nothing_computed_say_what_to_do(page: str, fresh_folder: Path) -> None:
    app = routed(page, fresh_folder)
    assert not app.exception
    message = texts(app)
    assert "Hook points" in message and f"dyntools compute {fresh_folder}" in message


def test_router_sidebar_and_url_paths(analysed_folder: Path) -> None:
    app = routed("metrics", analysed_folder)
    assert app.sidebar.text_input[0].value == str(analysed_folder)
    # The development pages/ folder names each page by its URL (Streamlit announces that
    # folder's files to a new browser before the router has run), and runs the same script.
    repo = Path(__file__).resolve().parent.parent
    assert sorted(p.stem for p in (repo / "pages").glob("*.py")) == sorted(PAGE_FILES)
    for url in PAGE_FILES:
        assert f'run_page("{url}", __file__)' in (repo / "pages" / f"{url}.py").read_text()


def test_selections_follow_page_switches(analysed_folder: Path) -> None:
    app = routed("metrics", analysed_folder)
    by_key(app.multiselect, "metrics.runs").set_value(["sparse-parity/seed1"])
    by_key(app.multiselect, "metrics.hooks").set_value(["fc2"]).run()
    app.switch_page(PAGE_FILES["activations"]).run()
    assert not app.exception
    assert by_key(app.multiselect, "acts.runs").value == ["sparse-parity/seed1"]
    app.switch_page(PAGE_FILES["latent-states"]).run()
    assert by_key(app.multiselect, "latent.runs").value == ["sparse-parity/seed1"]
    # One run of 7 checkpoints cannot take 8 states: the sweep is clamped, and says so.
    assert not app.error
    assert "1 run," in app.success[0].value
    assert any("max_states 8 lowered to 3" in w.value for w in app.warning)
    app.switch_page(PAGE_FILES["metrics"]).run()
    assert by_key(app.multiselect, "metrics.runs").value == ["sparse-parity/seed1"]
    assert by_key(app.multiselect, "metrics.hooks").value == ["fc2"]
    # Everything shared is in the URL, so a reload restores it.
    assert app.query_params["runs"] == "sparse-parity/seed1"
    assert app.query_params["weights"].startswith("fc2")
    assert app.query_params["fit"] == app.session_state["dyntools.fit"]


def test_a_reload_restores_selections_from_the_url(analysed_folder: Path) -> None:
    app = routed(
        "metrics", analysed_folder, runs="sparse-parity/seed0", weights="fc1", metrics="spectral"
    )
    assert by_key(app.multiselect, "metrics.runs").value == ["sparse-parity/seed0"]
    assert by_key(app.multiselect, "metrics.hooks").value == ["fc1"]
    assert by_key(app.multiselect, "metrics.metrics").value == ["spectral"]


def test_a_stale_fit_in_the_url_is_a_note_not_an_error(analysed_folder: Path) -> None:
    app = routed("metrics", analysed_folder, fit="0" * 32)
    assert not app.exception and not app.error
    assert "not in this folder's database" in texts(app)


def _busy_store_script() -> None:
    import streamlit as st

    from dyntools import ui
    from dyntools.store import StoreBusyError

    with ui.user_errors("compute"):
        raise StoreBusyError("dyntools database x is held by process 1 (python)")
    st.write("not reached")


def test_a_busy_store_is_an_error_message() -> None:
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_function(_busy_store_script, default_timeout=60).run()
    assert not app.exception
    assert app.error[0].value == "compute: dyntools database x is held by process 1 (python)"
    assert not app.markdown


def test_a_pages_file_run_by_streamlit_itself_hands_over_to_the_router(
    analysed_folder: Path,
) -> None:
    """Until a session has called st.navigation, Streamlit runs the pages/ file a URL names
    by itself: it must show the app (sidebar, shared selections), not a bare page."""
    repo = Path(__file__).resolve().parent.parent
    app = AppTest.from_file(str(repo / PAGE_FILES["metrics"]), default_timeout=60)
    app.query_params["folder"] = str(analysed_folder)
    app.session_state["dyntools.start_page"] = "metrics"
    app.run()
    assert not app.exception
    assert app.title[0].value == "Metrics"
    assert app.sidebar.text_input[0].value == str(analysed_folder)


def test_worker_processes_do_not_start_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker of the HMM fits re-imports the main module under the name __mp_main__ (its
    start method's rule): no entry of the app may run the app then."""
    import runpy

    import dyntools.app
    import dyntools.app.main

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the app ran in a worker process")

    monkeypatch.setattr(dyntools.app.main, "run", refuse)
    monkeypatch.setattr(dyntools.app.main, "run_page", refuse)
    repo = Path(__file__).resolve().parent.parent
    entries = [repo / "streamlit_app.py", dyntools.app.MAIN_SCRIPT, *(repo / "pages").glob("*.py")]
    for entry in entries:
        runpy.run_path(str(entry), run_name="__mp_main__")
