"""Callbacks that make an existing trainer write a dyntools run folder.

``dyntools.integrations.hf.DyntoolsCallback`` for ``transformers.Trainer`` and
``dyntools.integrations.lightning.DyntoolsCallback`` for Lightning. Each module imports its
library; this package imports neither, so that ``import dyntools`` never pulls them in.
"""
