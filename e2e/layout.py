"""What a person sees of the charts: none wider than the page, every legend inside its chart.

Streamlit draws Vega-Lite charts as SVG, so the rendered legends (``g.role-legend``) can be
measured where they are.
"""

from __future__ import annotations

from playwright.sync_api import Page

# For each chart: its graphic's box, the main column's box and each legend's box (CSS pixels).
_MEASURE = """() => {
  const main = document.querySelector("[data-testid='stMainBlockContainer']");
  const column = main.getBoundingClientRect();
  return [...document.querySelectorAll("[data-testid='stVegaLiteChart']")].map((chart, index) => {
    const graphic = chart.querySelector("svg.marks, canvas.marks, svg, canvas");
    const box = graphic ? graphic.getBoundingClientRect() : chart.getBoundingClientRect();
    const legends = [...chart.querySelectorAll("g.role-legend")].map(legend => {
      const b = legend.getBoundingClientRect();
      return {left: b.left, right: b.right, top: b.top, bottom: b.bottom, width: b.width};
    });
    return {index, left: box.left, right: box.right, top: box.top, bottom: box.bottom,
            column_left: column.left, column_right: column.right, legends};
  });
}"""
TOLERANCE_PX = 1.0


def chart_layout_problems(page: Page) -> list[str]:
    """Charts wider than the page's main column, and legends cut off or outside their chart."""
    problems = []
    for chart in page.evaluate(_MEASURE):
        name = f"chart {chart['index'] + 1}"
        if chart["right"] > chart["column_right"] + TOLERANCE_PX:
            problems.append(
                f"{name} is wider than the page: it ends at {chart['right']:.0f} px, the "
                f"column at {chart['column_right']:.0f} px"
            )
        for number, legend in enumerate(chart["legends"], start=1):
            inside = (
                legend["left"] >= chart["left"] - TOLERANCE_PX
                and legend["right"] <= min(chart["right"], chart["column_right"]) + TOLERANCE_PX
                and legend["bottom"] <= chart["bottom"] + TOLERANCE_PX
            )
            if legend["width"] <= 0 or not inside:
                problems.append(f"{name}: legend {number} is cut off or outside the chart")
    return problems


def chart_count(page: Page) -> int:
    return int(page.locator("[data-testid='stVegaLiteChart']").count())
