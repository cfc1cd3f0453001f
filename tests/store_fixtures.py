"""Small hand-made frames shared by the store tests."""

from __future__ import annotations

import polars as pl


def runs() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "run_id": ["seed0", "seed1"],
            "path": ["/data/seed0", "/data/seed1"],
            "layout": ["dyntools", "hf_trainer"],
            "config_json": ['{"lr": 0.001}', '{"lr": 0.01}'],
            "network_selection": ["", ""],
        }
    )


def checkpoints(steps: range = range(3), fingerprint: str = "v1") -> pl.DataFrame:
    rows = [
        {
            "run_id": run,
            "step": step * 100,
            "epoch": float(step),
            "path": f"/data/{run}/epoch_{step:05d}.safetensors",
            "size": 1000 + step,
            "mtime_ns": 10**18 + step,
            "header_hash": f"h{step}",
            "fingerprint": f"{run}-{step}-{fingerprint}",
            "dtype": "float32",
        }
        for run in ("seed0", "seed1")
        for step in steps
    ]
    return pl.DataFrame(rows)


def candidates(
    ckpts: pl.DataFrame, hook_points: list[str], metrics: list[str], params: str = ""
) -> pl.DataFrame:
    """Every (checkpoint, hook point, metric) unit the pipeline would want computed."""
    units = pl.DataFrame({"hook_point": hook_points}).join(
        pl.DataFrame({"metric": metrics}), how="cross"
    )
    return (
        ckpts.select("run_id", "step", "fingerprint")
        .join(units, how="cross")
        .with_columns(params=pl.lit(params), kind=pl.lit("weight"))
        .select("run_id", "step", "kind", "hook_point", "metric", "fingerprint", "params")
    )


def metrics_for(units: pl.DataFrame, tensors: list[str]) -> pl.DataFrame:
    """One value per tensor of each unit plus a hook-point-level value (tensor '')."""
    return (
        units.join(pl.DataFrame({"tensor": [*tensors, ""]}), how="cross")
        .with_columns(value=pl.col("step").cast(pl.Float64) + pl.col("tensor").str.len_chars())
        .select("run_id", "step", "kind", "hook_point", "tensor", "metric", "params", "value")
        .pipe(typed)
    )


def typed(frame: pl.DataFrame) -> pl.DataFrame:
    """A hand-made metrics, histograms or computed frame with the columns every row states:
    ``kind`` (weight hook points here) and, for metric values, ``scope`` (a tensor's value when
    ``tensor`` is set, else its hook point's)."""
    if "kind" not in frame.columns:
        frame = frame.with_columns(kind=pl.lit("weight"))
    if "value" in frame.columns and "scope" not in frame.columns:
        tensor = pl.col("tensor") if "tensor" in frame.columns else pl.lit("")
        frame = frame.with_columns(
            scope=pl.when(tensor != "").then(pl.lit("tensor")).otherwise(pl.lit("hook_point"))
        )
    return frame
