"""``FitResult`` <-> plain JSON-able dicts (the store persists them; ``--json`` prints them).

Arrays become nested lists; non-finite numbers become ``null`` (JSON has no NaN) and come
back as NaN. ``fit_result_from_json(fit_result_to_json(r)) == r`` up to that. Fits stored by
an older dyntools read back: fields added since take their defaults.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from dyntools.checkpoints.records import Axis
from dyntools.hmm.analysis import FitResult, RestartSummary, config_from_json, config_json
from dyntools.hmm.attribution import Driver
from dyntools.hmm.caveats import Caveat, CaveatCode
from dyntools.hmm.convergence import ConvergenceAnalysis, DetourState
from dyntools.hmm.graph import StateNode, TransitionEdge, TransitionGraph
from dyntools.hmm.model_selection import SelectionRow
from dyntools.hmm.normalize import Notice
from dyntools.hmm.params import HMMParams
from dyntools.hmm.stability import Stability


def fit_result_to_json(result: FitResult) -> dict[str, Any]:
    """Every field of ``result`` as JSON-able dicts, lists, numbers and strings."""
    plain = _plain(result)
    if not isinstance(plain, dict):  # pragma: no cover - a dataclass always gives a dict
        raise TypeError("a FitResult must serialize to a dict")
    plain["config"] = config_json(result.config)
    plain["format"] = "dyntools-hmm-fit"
    return plain


def fit_result_from_json(data: dict[str, Any]) -> FitResult:
    """The inverse of ``fit_result_to_json``."""
    if data.get("format") != "dyntools-hmm-fit":
        raise ValueError(f"not a stored dyntools HMM fit (format {data.get('format')!r}); refit it")
    config = data["config"]
    conv = data["convergence"]
    params = data["params"]
    return FitResult(
        config=config_from_json(config),
        config_hash=data["config_hash"],
        columns=tuple(data["columns"]),
        run_ids=tuple(data["run_ids"]),
        lengths=tuple(data["lengths"]),
        steps=np.asarray(data["steps"], dtype=np.int64),
        epochs=_array(data["epochs"]),
        axis=Axis(data["axis"]),
        notices=tuple(Notice(**n) for n in data["notices"]),
        selection=tuple(
            SelectionRow(**_known(SelectionRow, _floats(r))) for r in data["selection"]
        ),
        bic_choice=data["bic_choice"],
        n_states=data["n_states"],
        params=HMMParams(
            covariance_type=params["covariance_type"],
            startprob=_array(params["startprob"]),
            transmat=_array(params["transmat"]),
            means=_array(params["means"]),
            covars=_array(params["covars"]),
        ),
        states=np.asarray(data["states"], dtype=np.int64),
        posteriors=_array(data["posteriors"]),
        restarts=tuple(RestartSummary(**_floats(r)) for r in data["restarts"]),
        graph=TransitionGraph(
            nodes=tuple(
                StateNode(**{**_floats(n), "scalar_means": _floats(n["scalar_means"])})
                for n in data["graph"]["nodes"]
            ),
            edges=tuple(_edge(e) for e in data["graph"]["edges"]),
        ),
        convergence=None
        if conv is None
        else ConvergenceAnalysis(
            threshold=conv["threshold"],
            converged_at=_floats(conv["converged_at"]),
            not_converged=tuple(conv["not_converged"]),
            visit_counts={k: tuple(v) for k, v in conv["visit_counts"].items()},
            coefficients=tuple(_num(c) for c in conv["coefficients"]),
            intercept=_num(conv["intercept"]),
            r_squared=conv["r_squared"],
            detours=tuple(DetourState(**_known(DetourState, d)) for d in conv["detours"]),
            adjusted_r_squared=conv.get("adjusted_r_squared"),
            p_value=conv.get("p_value"),
            regressors=conv.get("regressors", 0),
        ),
        seconds=data["seconds"],
        caveats=tuple(Caveat(CaveatCode(c["code"]), c["message"]) for c in data.get("caveats", [])),
        fitted=None if data.get("fitted") is None else np.asarray(data["fitted"], dtype=bool),
        stability=_stability(data.get("stability")),
        state_names=tuple(data.get("state_names", ())),
    )


def _stability(data: dict[str, Any] | None) -> Stability | None:
    if data is None:
        return None
    return Stability(
        resamples=data["resamples"],
        seed=data["seed"],
        chosen=tuple(data["chosen"]),
        agreement=tuple(_num(a) for a in data["agreement"]),
        state_agreement=tuple(_num(a) for a in data["state_agreement"]),
        seconds=data["seconds"],
    )


def _edge(data: dict[str, Any]) -> TransitionEdge:
    return TransitionEdge(
        source=data["source"],
        target=data["target"],
        count=data["count"],
        probability=data["probability"],
        top_mean_difference=tuple(_driver(d) for d in data["top_mean_difference"]),
        top_gradient=tuple(_driver(d) for d in data["top_gradient"]),
    )


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            return _plain(value.tolist())
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _driver(data: list[Any]) -> Driver:
    """[feature, value, spread] (fits stored before spreads: [feature, value])."""
    return Driver(data[0], _num(data[1]), _num(data[2]) if len(data) > 2 else math.nan)


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``data`` that ``cls`` has: fits stored by an older dyntools may hold
    fields since dropped (their new fields take their defaults)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _num(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _floats(data: dict[str, Any]) -> dict[str, Any]:
    """Nulls back to NaN, except where None is the field's own value (held-out scores)."""
    keep_none = {"heldout_log_likelihood"}
    return {k: (float("nan") if v is None and k not in keep_none else v) for k, v in data.items()}


def _array(data: Any) -> np.ndarray:
    return np.array(_nan_lists(data), dtype=np.float64)


def _nan_lists(data: Any) -> Any:
    if isinstance(data, list):
        return [_nan_lists(v) for v in data]
    return float("nan") if data is None else data
