"""Altair chart specifications. Pure functions: frames in, charts out; no streamlit here."""

from dyntools.charts.activations import activation_stats, colorful_dimension, information_plane
from dyntools.charts.latent import heldout_likelihood, model_selection, state_timeline
from dyntools.charts.metrics import BRUSH, metric_curves
from dyntools.charts.training import training_curves

__all__ = [
    "BRUSH",
    "activation_stats",
    "colorful_dimension",
    "heldout_likelihood",
    "information_plane",
    "metric_curves",
    "model_selection",
    "state_timeline",
    "training_curves",
]
