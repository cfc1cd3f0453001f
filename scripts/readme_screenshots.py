"""README screenshots: one PNG per app page, from ``sample_runs/``, at a fixed 1400x900 window.

``make screenshots`` (or ``python scripts/readme_screenshots.py --out docs/images``). Computes the
sample runs first when needed (incremental; the first time takes several minutes), then opens
each page of e2e.pages.WALKS in Debian's Chromium and saves ``<page>.png``. The Latent states page
is shot after a node of the transition graph was clicked, so its state summary shows.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the e2e harness package

from e2e.browser import (
    assert_clean,
    chromium,
    new_page,
    page_url,
    screenshot,
    wait_for_app,
    wait_for_rerun,
)
from e2e.folder import SAMPLE_RUNS, compute_all
from e2e.graph import click_node, graph_canvas
from e2e.pages import WALKS, check_rendered
from e2e.server import running_app


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    # Relative, so the sidebar shows `sample_runs` as a user who ran `make app` sees it.
    parser.add_argument("--folder", type=Path, default=Path(os.path.relpath(SAMPLE_RUNS)))
    args = parser.parse_args(argv)
    summary = compute_all(args.folder, activation_select=None)
    print(f"{args.folder}: {summary.computed} checkpoints computed, {summary.skipped} up to date")
    log = Path(tempfile.gettempdir()) / "dyntools-screenshots.log"
    with running_app(args.folder, log) as server, chromium() as browser:
        for spec in WALKS:
            page = new_page(browser)
            page.goto(page_url(server.url, spec.url_path, args.folder))
            wait_for_app(page, spec.title)
            check_rendered(page, spec)
            if spec.title == "Latent states":
                click_node(page)
                wait_for_rerun(page)
                # Rest the pointer on an empty corner of the graph, so no tooltip covers it.
                graph_canvas(page).hover(position={"x": 5, "y": 5})
            page.wait_for_timeout(800)  # let charts finish their transitions
            assert_clean(page, spec.title)
            path = screenshot(page, args.out / f"{spec.slug}.png", full_page=False)
            print(f"{path} ({path.stat().st_size / 1024:.0f} KiB)")
            page.context.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
