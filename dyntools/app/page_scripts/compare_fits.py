"""Compare fits: two stored fits side by side (diag vs full, 4 vs 6 states, ...) and how their
states correspond."""

import streamlit as st

from dyntools import charts, ui
from dyntools.views.compare_fits import (
    adjusted_rand_index,
    correspondence,
    fit_choices,
    matched_states,
)
from dyntools.views.latent_states.frames import selection_frame, state_intervals, state_points

page = ui.open_metrics_page("Compare fits")
state = page.state
with ui.user_errors("reading the stored fits"):
    choices = fit_choices(ui.stored_fits(state.db))
if len(choices) < 2:
    st.info(
        "Comparing needs two stored fits: fit on the **Latent states** page with other settings "
        "(a full covariance instead of diag, 4 states instead of the criterion's choice, ...), "
        f"or run `dyntools fit {page.folder}` with other options."
    )
    st.stop()

hashes = list(choices)
current = ui.get_text(ui.FIT)
left, right = st.columns(2)


def short(config_hash: str) -> str:
    # What the box shows, and what the URL carries (?compare.a=...): the hash's first 12.
    return config_hash[:12]


ui.start_with("compare.a", current if current in choices else hashes[0])
a_hash = left.selectbox("Fit A", hashes, format_func=short, key="compare.a", bind=ui.URL)
left.caption(choices[a_hash])
ui.start_with("compare.b", next(h for h in hashes if h != a_hash))
b_hash = right.selectbox("Fit B", hashes, format_func=short, key="compare.b", bind=ui.URL)
right.caption(choices[b_hash])
with ui.user_errors("reading the fits"):
    loaded = {"A": ui.load_fit(state.db, a_hash), "B": ui.load_fit(state.db, b_hash)}
fits = {name: result for name, result in loaded.items() if result is not None}
if len(fits) < len(loaded):
    gone = " and ".join(name for name in loaded if name not in fits)
    ui.stop_with_error(f"Fit {gone} is no longer in this folder's database.")

for column, (name, result) in zip(st.columns(2), fits.items(), strict=True):
    with column:
        st.markdown(
            f"**Fit {name}**: {result.n_states} states (BIC's choice: {result.bic_choice}), "
            f"{len(result.columns)} features, times in {result.axis.value}s."
        )
        selection = selection_frame(result)
        ui.chart(
            charts.model_selection(selection, result.n_states),
            key=f"compare.selection.{name}",
            name=f"selection_{name}",
            data=selection,
        )
        points = state_points(result)
        ui.chart(
            charts.state_timeline(points, state_intervals(result), result.n_states, result.axis),
            key=f"compare.timeline.{name}",
            name=f"state_timeline_{name}",
            data=points,
        )

st.subheader("How their states correspond")
table = correspondence(fits["A"], fits["B"])
if table.is_empty():
    st.info("The two fits share no checkpoint (no run in common): nothing to compare.")
    st.stop()
shared = int(table["checkpoints"].sum())
st.markdown(
    f"Adjusted Rand index **{adjusted_rand_index(table):.3f}** over the {shared} checkpoints "
    "both fits decoded: 1 when they cut training into the same phases (whatever the states "
    "are called), about 0 when they agree no more than chance."
)
left, right = st.columns([3, 2])
with left:
    ui.chart(
        charts.correspondence_heatmap(table),
        key="compare.heatmap",
        name="correspondence",
        data=table,
    )
with right:
    st.caption("Each state of fit A and the state of fit B that holds most of its checkpoints.")
    st.dataframe(matched_states(table), hide_index=True, width="stretch")
