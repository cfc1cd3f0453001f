"""Every page of the app on a Hugging Face hub cache holding three seeds of a suite and another
model: the seeds are one task, chosen together by default; weights, activations, the fit and
the information plane all show."""

from __future__ import annotations

from pathlib import Path

import pytest
from apptest_helpers import by_key, routed, vega_charts

from dyntools.app import PAGES
from dyntools.cli import main
from dyntools.pipeline import ComputeOptions, compute

pytest.importorskip("transformers")
from hub_suites import PYTHIA, TEXT, write_seeds, write_suite

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("_config_home")]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("app-hub")
    cache = root / "hub"
    seeds = write_seeds(cache, root / "saved", (1, 2, 4, 8, 16, 32))
    write_suite(cache, "org/other", (1, 2), root / "saved", seed=7)
    (root / "text.txt").write_text(TEXT)
    args = ["probe", str(cache), "--task", PYTHIA, "--from", str(root / "text.txt")]
    assert main([*args, "--length", "8", "--sequences", "16"]) == 0
    summary = compute(cache, ComputeOptions(activations=True, workers=1, runs=tuple(seeds)))
    assert not summary.failed, summary.failed
    return cache


@pytest.mark.parametrize("page", [page.url_path for page in PAGES])
def test_every_page_renders_on_the_cache(hub: Path, page: str) -> None:
    app = routed(page, hub)
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]


def test_the_seeds_of_a_suite_are_the_runs_chosen_by_default(hub: Path) -> None:
    seeds = [PYTHIA, f"{PYTHIA}-seed1", f"{PYTHIA}-seed2"]
    folder = routed("folder", hub)
    assert by_key(folder.selectbox, "folder.task").value == PYTHIA
    assert by_key(folder.multiselect, "folder.runs_pick").value == seeds
    for page, key in (("metrics", "metrics.runs"), ("latent-states", "latent.runs")):
        app = routed(page, hub)
        assert by_key(app.multiselect, key).value == seeds, page
    latent = routed("latent-states", hub)
    assert vega_charts(latent), "the fit's charts"
    activations = routed("activations", hub)
    assert vega_charts(activations), "the colorful dimension of the suite"
