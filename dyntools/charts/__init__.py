"""Altair chart specifications. Pure functions: frames in, charts out; no streamlit here."""

from dyntools.charts.activations import activation_stats, colorful_dimension
from dyntools.charts.folder import training_curves
from dyntools.charts.information_plane import information_plane
from dyntools.charts.latent_states import (
    correspondence_heatmap,
    heldout_likelihood,
    model_selection,
    posterior_areas,
    state_timeline,
    transition_drivers,
)
from dyntools.charts.metrics import BRUSH, metric_curves, state_coloured_curves

__all__ = [
    "BRUSH",
    "activation_stats",
    "colorful_dimension",
    "correspondence_heatmap",
    "heldout_likelihood",
    "information_plane",
    "metric_curves",
    "model_selection",
    "posterior_areas",
    "state_coloured_curves",
    "state_timeline",
    "training_curves",
    "transition_drivers",
]
