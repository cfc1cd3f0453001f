"""Hook points: the layer tree with shapes and parameter counts, selection, metrics, compute."""

import streamlit as st

from dyntools import ui
from dyntools.hookpoints import select_paths
from dyntools.metrics.kinds import HookKind
from dyntools.pipeline.options import configured_backend
from dyntools.selection import NetworkSelection, Preset
from dyntools.views.hook_points import (
    computed_table,
    metric_catalogue,
    metric_names_of,
    recorded_problems,
    roles_table,
    tree_table,
)
from dyntools.views.layers import module_types

# The presets a page can choose (a custom selection's patterns belong to the command line).
PRESETS = [Preset.PAPER.value, Preset.POLYPYTHIAS.value]

st.title("Hook points")
ui.load_state()
folder = ui.current_folder()
if folder is None:
    st.stop()
with ui.user_errors(f"reading {folder}"):
    loaded = ui.load_runs(str(folder))
if loaded.runs.is_empty():
    ui.stop_with_error(f"No runs found in `{folder}`: see the Folder page for what was expected.")

run_ids = loaded.runs["run_id"].to_list()
chosen_runs = [run for run in ui.get_list(ui.RUNS) if run in set(run_ids)]
# Starts from the runs chosen on other pages (the URL's choice, when it names a run, wins).
ui.start_with("hooks.run", chosen_runs[0] if chosen_runs else run_ids[0])
run_id = st.selectbox("Run whose layers to show", run_ids, key="hooks.run", bind=ui.URL)
with ui.user_errors(f"reading the checkpoints of {run_id}"):
    tree = ui.load_tree(str(folder), run_id)
table = tree_table(tree)
natural = table.filter(table["natural"])["hook_point"].to_list()

pattern = st.text_input(
    "Filter (names, globs such as `blocks.*.mlp`, or `re:` regexes; comma-separated)",
    key="hooks.filter",
)
shown = table
if pattern.strip():
    with ui.user_errors("filter"):
        matched = select_paths(
            table["hook_point"].to_list(), [p.strip() for p in pattern.split(",") if p.strip()]
        )
    shown = table.filter(table["hook_point"].is_in(matched))
st.dataframe(
    shown,
    hide_index=True,
    width="stretch",
    column_config={"parameters": st.column_config.NumberColumn(format="localized")},
)
ui.downloads(shown, "hook_points", key="hooks.tree")
state = ui.store_state(folder)
preset = st.selectbox(
    "Tensors of the paper features",
    PRESETS,
    key="hooks.preset",
    bind=ui.URL,
    help="Which tensors the network-wide values (the paper's 14 features) pool; Compute uses "
    "it. paper: the weights of attention, MLP/linear and conv layers and their biases; "
    "polypythias: EleutherAI's training maps (every .weight and .bias but embeddings and "
    "norms). Patterns and layer lists: `dyntools compute --paper-tensors` / `--paper-layers`.",
)
network = NetworkSelection(Preset(preset))
# The rebuilt model's module types, once a compute recorded them: the roles the compute uses.
types = module_types(ui.load_modules(state.db, state.version or 0), run_id) if state.ready else {}
with st.expander("Tensor roles: which tensors the paper features take"):
    roles = roles_table(tree, network, types)
    source = (
        "the rebuilt model's module types, then names and shapes"
        if types
        else "names and shapes (a compute records the rebuilt model's module types)"
    )
    st.caption(
        f"{int(roles['paper_features'].sum())} of {roles.height} tensors enter the paper "
        f"features under preset `{preset}`. Roles from {source}. docs/metrics.md, "
        '"Tensor roles" and "Presets", says what each preset takes.'
    )
    st.dataframe(roles, hide_index=True, width="stretch")

matching = [h for h in shown["hook_point"].to_list() if h in natural]


def select_matching() -> None:
    st.session_state["hooks.select"] = matching
    ui.set_shared(ui.WEIGHT_HOOKS, matching)


if pattern.strip():
    st.button(
        f"Select the {len(matching)} matching layer-level hook points",
        key="hooks.select_matching",
        on_click=select_matching,
        disabled=not matching,
    )
selected = ui.shared_multiselect(
    "Hook points to compute and show",
    ui.WEIGHT_HOOKS,
    natural,
    key="hooks.select",
    default=len(natural),
    help="Layer-level hook points (those that own tensors directly). The filter above narrows "
    "the table; this list is what Compute uses.",
)
catalogue = metric_catalogue()
weight_names = metric_names_of(HookKind.WEIGHT)
st.session_state.setdefault("hooks.metrics", weight_names)
metrics = st.multiselect("Weight metrics to compute", weight_names, key="hooks.metrics")
activations = st.checkbox(
    "Also activation metrics on the probe batch (mean/std, dead fraction, histograms, HSIC)",
    key="hooks.activations",
    help="Needs a probe.safetensors in the run and a model dyntools can rebuild.",
)
with st.expander("What each metric means"):
    st.dataframe(catalogue, hide_index=True, width="stretch")
compute_runs: tuple[str, ...] = ()  # every run
if chosen_runs and len(chosen_runs) < len(run_ids):
    every = f"every run in the folder ({len(run_ids)})"
    scope = st.radio(
        "Compute for",
        [f"the {len(chosen_runs)} runs chosen on the other pages", every],
        horizontal=True,
        key="hooks.scope",
        help="Runs left out now are computed by a later Compute of every run (only what is "
        "missing).",
    )
    compute_runs = () if scope == every else tuple(chosen_runs)

backend = configured_backend()
st.caption(backend.description)
if st.button("Compute", type="primary", key="hooks.compute", disabled=not selected):
    # Imported here: the compute imports torch (about 1.3 s), which only a compute needs.
    from dyntools.pipeline import ComputeOptions, compute

    chosen = tuple(metrics) + (tuple(metric_names_of(HookKind.ACTIVATION)) if activations else ())
    with ui.user_errors("compute"):
        # Every layer-level hook point selected means "every model's own layers": a folder can
        # hold runs of several models, and this list shows one run's.
        select = () if set(selected) >= set(natural) else tuple(selected)
        options_ = backend.apply(
            ComputeOptions(
                select=select,
                metrics=chosen,
                activations=activations,
                workers=1,
                runs=compute_runs,
                network=network,
            )
        )
    bar = st.progress(0.0, text="Planning...")

    def progress(done: int, total: int) -> None:
        bar.progress(done / total if total else 1.0, text=f"{done}/{total} checkpoints")

    with st.status("Computing...", expanded=True) as status, ui.user_errors("compute"):
        summary = compute(folder, options_, db=state.path, progress=progress)
        status.update(
            label=f"Computed {summary.computed} checkpoints, skipped {summary.skipped} already "
            f"up to date, {len(summary.failed)} failed ({summary.values_written} values in "
            f"{summary.seconds:.1f} s)",
            state="error" if summary.failed else "complete",
            expanded=bool(summary.failed),
        )
        for note in summary.notes:
            st.info(note)
    # Why something failed stays in view, not inside a box the status collapses.
    for failure in summary.failed:
        st.warning(f"`{failure.file}`: {failure.reason}")
    state = ui.store_state(folder)

st.subheader("Already computed")
if not state.ready:
    st.info(
        f"Nothing computed for `{folder}` yet: choose hook points and metrics above and press "
        f"**Compute**, or run `dyntools compute {folder}` in a terminal."
    )
    st.stop()
with ui.user_errors("reading the database"):
    done = computed_table(ui.load_summary(state.db, state.version or 0))
    errors = ui.load_errors(state.db, state.version or 0)
st.caption(f"Database `{state.path}` (data version {state.version})")
st.dataframe(done, hide_index=True, width="stretch")
ui.downloads(done, "computed", key="hooks.computed")
problems, notes = recorded_problems(errors)
if not problems.is_empty():
    with st.expander(f"{problems.height} problems recorded while computing", expanded=True):
        st.dataframe(problems, hide_index=True, width="stretch")
if not notes.is_empty():
    with st.expander(
        f"{int(notes['values'].sum())} values left undefined by their definition (notes)"
    ):
        st.caption(
            "Not failures: a value with no definition there (the HSIC of a layer whose output "
            "is the same for every probe sample, a 0/0), an empty tensor, or a difference "
            "below the resolution of the dtype the checkpoints were saved in."
        )
        st.dataframe(notes, hide_index=True, width="stretch")
