"""What every chart shares: the palette, legends that stay in view, widths that fit the page,
and time axes that end at the last checkpoint.

Faceted and concatenated charts cannot take the container's width in Vega-Lite, so their panels
are sized to share ``PAGE_WIDTH`` (the room a wide-layout page has beside the sidebar in a
1280-px window); legends go below the plot, where they take no width.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, TypeVar

import altair as alt

from dyntools.checkpoints.records import Axis
from dyntools.views.colors import CATEGORICAL

PAGE_WIDTH: Final = 720
MIN_PANEL_WIDTH: Final = 110
# Room a panel's y axis (ticks, labels, title) takes beside it.
AXIS_ROOM: Final = 70
LEGEND_COLUMNS: Final = 3
LEGEND_LABEL_LIMIT: Final = 220  # px: long run ids stay readable, three fit in a row

Chart = TypeVar("Chart", bound=alt.TopLevelMixin)


def panel_width(columns: int, *, room: int = AXIS_ROOM) -> int:
    """The width of each of ``columns`` panels side by side so that together they fit the page
    (never narrower than ``MIN_PANEL_WIDTH``)."""
    return max(MIN_PANEL_WIDTH, PAGE_WIDTH // max(columns, 1) - room)


def time_x(axis: Axis, field: str = "time") -> alt.X:
    """The x encoding of training time: it ends at the last checkpoint (no rounding up)."""
    return alt.X(f"{field}:Q", title=axis.value, scale=alt.Scale(nice=False))


def ordered(values: Sequence[str]) -> list[str] | alt.UndefinedType:
    """A sort order for an encoding (network order of layers, ...): the given one, or
    Vega-Lite's default when none is given."""
    return list(values) if values else alt.Undefined


def styled(chart: Chart) -> Chart:
    """``chart`` with the shared palette and legends below the plot: what the app shows and
    what SVG, PNG and Vega-Lite exports contain."""
    config: Any = chart.configure_range(category=list(CATEGORICAL)).configure_legend(
        orient="bottom",
        direction="horizontal",
        columns=LEGEND_COLUMNS,
        labelLimit=LEGEND_LABEL_LIMIT,
    )
    result: Chart = config
    return result
