"""Warnings behind the app's rising-crash notice: one sentence per layer whose activations' std
rose, then collapsed while its dead fraction jumped (``dyntools.crash``; the rule:
docs/metrics.md, "Rising crash")."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from dyntools.crash import Crash, CrashThresholds, find_crashes, folder_crashes

ADVICE = "fast.ai: stop and restart training, e.g. with a lower learning rate or a warm-up"


def crash_warning(crash: Crash) -> str:
    """One warning, plain text (escape it before rendering it as Markdown: module paths may
    hold ``_`` or ``*``)."""
    return f"Rising crash in {crash.describe()}. {ADVICE}."


def crash_warnings(folder: str | Path, thresholds: CrashThresholds | None = None) -> list[str]:
    """A warning per crash of every run below ``folder`` with step statistics, by run id, then
    module, then step; empty when none crashed (or none recorded step statistics). Reads every
    run's statistics: a page that already holds them (``ui.load_step_stats``) can call
    ``run_crash_warnings`` per run instead."""
    return [
        crash_warning(crash) for run in folder_crashes(folder, thresholds) for crash in run.crashes
    ]


def run_crash_warnings(
    run_id: str, stats: pl.DataFrame, thresholds: CrashThresholds | None = None
) -> list[str]:
    """The warnings of one run, from its ``read_step_stats`` frame."""
    return [crash_warning(crash) for crash in find_crashes(stats, run_id, thresholds)]
