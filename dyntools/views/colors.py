"""The one categorical palette of every chart, the graph and the exported files.

Okabe and Ito's eight colours (distinguishable with every common colour-vision deficiency),
black left last, then four of Paul Tol's muted colours for up to twelve categories (the most
states the app fits); more categories wrap around. Runs, layers and HMM states all draw from it,
in the app and in SVG/PNG/Vega-Lite exports alike.
"""

from __future__ import annotations

from typing import Final

CATEGORICAL: Final = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#56B4E9",  # sky blue
    "#CC79A7",  # reddish purple
    "#F0E442",  # yellow
    "#000000",  # black
    "#882255",  # wine (Tol)
    "#44AA99",  # teal (Tol)
    "#999933",  # olive (Tol)
    "#332288",  # indigo (Tol)
)


def category_color(index: int) -> str:
    """The colour of the ``index``-th category (wrapping around)."""
    return CATEGORICAL[index % len(CATEGORICAL)]
