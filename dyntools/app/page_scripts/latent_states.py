"""Latent states: fit HMMs live over the chosen features, pick n, explore states and graph."""

import functools
import json

import streamlit as st

from dyntools import charts, ui
from dyntools.checkpoints.records import AXIS_CHOICES
from dyntools.hmm import COVARIANCE_TYPES, NORMALIZATIONS, FitConfig
from dyntools.hmm.caveats import CaveatCode, plural
from dyntools.hmm.model_selection import CRITERIA
from dyntools.hmm.report import r_squared_text, selection_text
from dyntools.hmm.stability import DEFAULT_RESAMPLES
from dyntools.metrics.feature import Feature
from dyntools.pipeline.fits import ServedFit, fit_document
from dyntools.views.latent_states.frames import (
    caveats_about,
    convergence_frame,
    drivers_frame,
    edges_frame,
    posterior_frame,
    regression_frame,
    runs_in_state,
    selection_frame,
    stability_frame,
    stability_text,
    state_intervals,
    state_points,
    state_summary,
    transitions_between_states,
)
from dyntools.views.latent_states.graph import graph_specs, node_id, state_of
from dyntools.views.latent_states.options import (
    default_features,
    heldout_checkpoints,
    heldout_runs,
    runs_text,
    shared_features,
    shared_scalars,
    split_heldout,
)


def fit_json(served: ServedFit) -> bytes:
    """The download's content, made only when clicked."""
    return json.dumps(fit_document(served)).encode()


CRITERION_LABELS = {"bic": "lowest BIC", "heldout": "held-out log-likelihood"}
PAPER = "The paper's 14 features (whole network)"
CHOSEN = "Hook point metrics"
AUTOMATIC = "chosen by the criterion"

page = ui.open_metrics_page("Latent states")
folder, state, index = page.folder, page.state, page.index

with st.expander("Fit settings", expanded=True):
    a, b, c = st.columns(3)
    normalize = a.selectbox(
        "Normalization", NORMALIZATIONS, index=1, key="latent.normalize", bind=ui.URL
    )
    covariance = a.selectbox("Covariance", COVARIANCE_TYPES, key="latent.covariance", bind=ui.URL)
    # Auto by default, not the axis of the other pages: they follow the fit's axis (below),
    # so starting from theirs would make a reopened link fit on another axis than it showed.
    axis = a.selectbox(
        "Time axis",
        AXIS_CHOICES,
        key="latent.axis",
        bind=ui.URL,
        help="What state durations, first/last times and convergence are measured in; auto: "
        "epochs when every checkpoint states one, else steps.",
    )
    max_states = b.slider(
        "Maximum states", 1, 12, FitConfig.max_states, key="latent.max_states", bind=ui.URL
    )
    restarts = b.slider(
        "Restarts per n", 1, 20, FitConfig.restarts, key="latent.restarts", bind=ui.URL
    )
    heldout_share = b.slider(
        "Held-out checkpoints",
        0.0,
        0.5,
        FitConfig.heldout_checkpoints,
        0.05,
        key="latent.heldout_checkpoints",
        bind=ui.URL,
        help="A share of each run's checkpoints held out at random and scored, as EleutherAI's "
        "training maps do with 0.2.",
    )
    seed = c.number_input("Seed", 0, 2**31 - 1, 0, key="latent.seed", bind=ui.URL)
    threshold = c.slider(
        "Converged at validation accuracy",
        0.0,
        1.0,
        0.9,
        0.01,
        key="latent.threshold",
        bind=ui.URL,
    )
    resamples = c.number_input(
        "Stability resamples",
        0,
        200,
        DEFAULT_RESAMPLES,
        key="latent.resamples",
        bind=ui.URL,
        help="Bootstrap the runs this many times after the fit to tell how stable the number "
        "of states and the labels are (0: skip).",
    )
    criterion = c.selectbox(
        "Choose n by",
        CRITERIA,
        format_func=CRITERION_LABELS.__getitem__,
        key="latent.criterion",
        bind=ui.URL,
        help="Held-out log-likelihood needs held-out runs or checkpoints.",
    )

available = index["run_id"].unique().sort().to_list()
main = page.main_runs(available)
runs = ui.shared_multiselect(
    "Runs (separate sequences of one fit)",
    ui.RUNS,
    available,
    key="latent.runs",
    default=len(main),
    preferred=main,
)
feature_set = st.radio(
    "Features", [PAPER, CHOSEN], horizontal=True, key="latent.feature_set", bind=ui.URL
)
features: tuple[Feature, ...] = ()
if feature_set == CHOSEN:
    offered = shared_features(index, runs)
    names = [feature.format() for feature in offered]
    ui.start_with(
        "latent.features",
        default_features(
            offered, ui.get_list(ui.WEIGHT_HOOKS), ui.get_list(ui.METRICS), page.modules
        ),
    )
    chosen = st.multiselect(
        "Features (hook point/metric, computed for every chosen run)",
        names,
        key="latent.features",
        bind=ui.URL,
    )
    features = tuple(Feature.parse(name) for name in chosen)
    if not features:
        st.info("Choose at least one feature.")
        st.stop()
if not runs:
    st.info("Choose at least one run.")
    st.stop()
a, b = st.columns(2)
with a:
    scalars = ui.kept_multiselect(
        "Training scalars as features",
        shared_scalars(ui.load_scalar_index(state.db, state.version or 0), runs),
        key="latent.scalars",
        help="Only scalars that every chosen run logged are offered.",
    )
    st.caption(
        "Scalars such as `val_acc` or `train_loss` measure how training is going: as features "
        "they make the phases partly supervised (states then follow the learning curve too)."
    )
with b:
    fitted, heldout = split_heldout(
        runs, ui.kept_multiselect("Held-out runs", runs, key="latent.heldout")
    )
    st.caption("Held-out runs are scored (log-likelihood per step), not fitted.")
if not fitted:
    st.info("Every chosen run is held out: keep at least one run to fit the model on.")
    st.stop()
override = st.selectbox(
    "Number of states",
    [AUTOMATIC, *range(1, max_states + 1)],
    key="latent.n_states",
    bind=ui.URL,
    help="Chosen by the criterion of the fit settings (lowest BIC by default), or fixed.",
)

config = FitConfig(
    runs=tuple(runs),
    features=features,
    paper_features=feature_set == PAPER,
    scalar_features=tuple(scalars),
    normalize=normalize,
    max_states=max_states,
    n_states=None if override == AUTOMATIC else int(override),
    restarts=restarts,
    covariance_type=covariance,
    seed=int(seed),
    convergence_threshold=float(threshold),
    heldout_runs=heldout,
    heldout_checkpoints=float(heldout_share),
    criterion=criterion,
    axis=axis,
)
# While the folder is followed, the fit shown stays on the data it was made on until asked to
# refit (a refit at every new checkpoint would redraw the states under the reader's eyes).
data_version = ui.followed_fit_version(state.version or 0, state.db, config)
with st.spinner("Fitting..."), ui.user_errors("fit"):
    outcome, seen = ui.fit(state.db, data_version, config)
result = outcome.result
ui.set_shared(ui.FIT, outcome.config_hash)
ui.set_shared(ui.AXIS, result.axis.value)  # the other pages draw on the fit's axis
source = "read back from the store" if outcome.from_store else "fitted and stored"
again = " (already shown in this session)" if seen else ""
st.success(
    f"Fit {outcome.config_hash[:12]}: {source} in {outcome.seconds:.2f} s{again}; "
    f"{runs_text(result)}, {sum(result.lengths)} checkpoints, {len(result.columns)} "
    f"features, {result.n_states} states (BIC's choice: {result.bic_choice}); times in "
    f"{result.axis.value}s.",
    icon=":material/check_circle:",
)
if result.config.paper_features:
    network = result.config.network_selection
    st.caption(
        "Paper features over "
        + selection_text(None if network is None else network.describe())
        + " (docs/metrics.md, tensor roles)."
    )
for notice in result.notices:
    st.caption(f"Note: {notice.message}")

left, right = st.columns(2)
with left:
    st.subheader("Model selection")
    for message in caveats_about(
        result, CaveatCode.CLAMPED, CaveatCode.EDGE, CaveatCode.PARAMETERS
    ):
        st.warning(message, icon=":material/warning:")
    selection = selection_frame(result)
    ui.chart(
        charts.model_selection(selection, result.n_states),
        key="latent.selection",
        name="selection",
        data=selection,
    )
    # Filled at the end of the page: the bootstrap runs after everything else is shown.
    stability_box = st.container()
    if result.fitted is not None:
        scored = [
            f"runs {', '.join(heldout_runs(result))}" if heldout_runs(result) else "",
            plural(heldout_checkpoints(result), "random checkpoint")
            if heldout_checkpoints(result)
            else "",
        ]
        st.caption(
            f"Held out ({'; '.join(part for part in scored if part)}): log-likelihood per time "
            "step under each number of states' best model (higher is better)."
        )
        ui.chart(
            charts.heldout_likelihood(selection, result.n_states),
            key="latent.heldout_selection",
            name="heldout_selection",
            data=selection.select("n_states", "heldout_log_likelihood"),
        )
with right:
    st.subheader("States over training")
    points, intervals = state_points(result), state_intervals(result)
    ui.chart(
        charts.state_timeline(points, intervals, result.n_states, result.axis),
        key="latent.timeline",
        name="state_timeline",
        data=points,
    )
    if heldout_runs(result):
        st.caption(
            f"The held-out runs ({', '.join(heldout_runs(result))}) are decoded with the model "
            "fitted on the others: their states are predictions of that model."
        )

st.subheader("Transition graph")
st.caption(
    "Node size: share of checkpoints; star: a state some run starts in; edge width: transition "
    "probability. Hover an edge for the features that drive it; click a node for its summary."
)
for message in caveats_about(result, CaveatCode.ONE_RUN_STATE):
    st.warning(message, icon=":material/warning:")
nodes, edges = graph_specs(result.graph, result.axis, result.state_names)
clicked = ui.state_graph(nodes, edges, memo_key="latent.graph_click")
labels = [node.id for node in nodes]
if clicked in labels:
    st.session_state["latent.node"] = clicked
# The URL's state (a shared link) counts until the widget holds one.
if st.session_state.get("latent.node", st.query_params.get("latent.node")) not in labels:
    st.session_state["latent.node"] = node_id(0)
picked = st.selectbox("State", labels, key="latent.node", bind=ui.URL)
with ui.user_errors("state"):
    summary = state_summary(result, state_of(picked))
    where = runs_in_state(result, state_of(picked))
left, right = st.columns([2, 3])
# A table, not a data grid: the summary's texts wrap instead of being cut.
left.table(summary, hide_index=True)
state_number = state_of(picked)
name_key = f"latent.name.{outcome.config_hash}.{state_number}"
st.session_state.setdefault(name_key, result.state_name(state_number))


def _store_name() -> None:
    with ui.user_errors("naming the state"):
        ui.name_state(state.db, data_version, outcome, state_number, st.session_state[name_key])


left.text_input(
    f"Name of {picked}",
    key=name_key,
    on_change=_store_name,
    placeholder="e.g. memorizing",
    help="Stored with the fit: the graph, the report and a refit with the same settings show it.",
)
right.dataframe(where, hide_index=True, width="stretch")
right.caption(f"spent, first and last: in {result.axis.value}s (the fit's time axis).")
st.subheader("Transitions and what drives them")
switches = transitions_between_states(result)
if switches:
    chosen_edge = st.selectbox(
        "Transition",
        list(switches),
        key="latent.transition",
        bind=ui.URL,
        format_func=lambda label: (
            f"{label} ({plural(switches[label].count, 'switch', 'switches')})"
        ),
        help="Hover an edge of the graph for the same ranking in short.",
    )
    drivers = drivers_frame(switches[chosen_edge])
    if drivers.is_empty():
        st.info(f"No feature ranking for {chosen_edge}.")
    else:
        st.caption(
            "Bars: the features that most raise the log-odds of switching (its gradient, with "
            "the spread over the switches as the error bar), and the difference of the two "
            "states' means in standard units."
        )
        ui.chart(
            charts.transition_drivers(drivers),
            key="latent.drivers",
            name="transition_drivers",
            data=drivers,
        )
else:
    st.info("No run switches state in this fit.")
with st.expander("Every transition"):
    transitions = edges_frame(result)
    st.dataframe(transitions, hide_index=True, width="stretch")
    ui.downloads(transitions, "transitions", key="latent.edges_data")

st.subheader("State probabilities over training")
posterior_run = st.selectbox("Run", list(result.run_ids), key="latent.posterior_run", bind=ui.URL)
posteriors = posterior_frame(result, posterior_run)
st.caption(
    "p(state | the whole run) at each checkpoint, stacked to 1: a band shared by two states "
    "is where the model cannot tell them apart."
)
ui.chart(
    charts.posterior_areas(posteriors, result.n_states, result.axis),
    key="latent.posteriors",
    name="posteriors",
    data=posteriors,
)

st.subheader("Convergence")
analysis = result.convergence
if analysis is None:
    st.info(
        "The runs logged no validation accuracy (`val_acc`), so there is no convergence analysis."
    )
else:
    for message in caveats_about(result, CaveatCode.FORCED_REGRESSION):
        st.warning(message, icon=":material/warning:")
    r2 = r_squared_text(analysis)
    st.markdown(
        f"Convergence: first checkpoint with validation accuracy >= {analysis.threshold:g}. "
        f"R² of the convergence {result.axis.value} on the visit counts: **{r2}**. "
        + (
            f"Never converged: {', '.join(analysis.not_converged)}."
            if analysis.not_converged
            else ""
        )
    )
    conv = convergence_frame(result)
    st.dataframe(conv, hide_index=True, width="stretch")
    st.dataframe(regression_frame(result), hide_index=True, width="stretch")
    ui.downloads(conv, "convergence", key="latent.conv_data")

if resamples:
    with stability_box:
        checking = f"Checking stability: {int(resamples)} resamples of the runs..."
        with st.spinner(checking), ui.user_errors("stability"):
            checked = ui.load_stability(state.db, data_version, outcome, int(resamples))
        st.markdown(f"**Stability**: {stability_text(checked.result)}.")
        for message in caveats_about(checked.result, CaveatCode.UNSTABLE):
            st.warning(message, icon=":material/warning:")
        st.dataframe(stability_frame(checked.result), hide_index=True, width="stretch")
        outcome = checked

st.subheader("Download this fit")
st.caption(
    f"The fit as `dyntools fit {folder} --json` prints it (with the stability check when it "
    "ran), and every run's decoded states: one row per checkpoint with its state and that "
    "state's posterior."
)
with st.container(horizontal=True):
    st.download_button(
        "Fit (JSON)",
        data=functools.partial(fit_json, outcome),
        file_name=f"fit-{outcome.config_hash[:12]}.json",
        mime="application/json",
        key="latent.fit_json",
        icon=":material/data_object:",
    )
    ui.downloads(state_points(result), f"states-{outcome.config_hash[:12]}", key="latent.states")
