"""Frames behind the app's views: pure functions from engine records to polars frames.

The pages stay thin: they choose, these shape. Nothing here imports streamlit.
"""
