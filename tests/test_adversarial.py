"""Any folder, any file: every case of tests/adversarial.py beside good runs. For each, with a
time limit: discovery names the bad file once with a hint, never raises and never blocks;
`dyntools runs` prints no raw control character; compute finishes and stores for the good runs
exactly what a clean compute of them stores; nothing is read outside the folder."""

from __future__ import annotations

import re
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pytest
import torch
from adversarial import CASES, Case, good_run

from dyntools.checkpoints import discover_runs
from dyntools.cli import main
from dyntools.pipeline import ComputeOptions, compute
from dyntools.store import Store

LIMIT_S = 30
GOOD = ("good", "victim")
OPTIONS = ComputeOptions(metrics=("l2", "spectral", "mean_w"), workers=1)
KEY = ["run_id", "step", "kind", "scope", "hook_point", "tensor", "metric", "params"]


@contextmanager
def time_limit(seconds: int = LIMIT_S) -> Iterator[None]:
    """Fail instead of hanging: a read blocked on a FIFO is interrupted by the alarm."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s: something blocked")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _folder(root: Path) -> Path:
    good_run(root / "good")
    good_run(root / "victim", steps=(0, 10), seed=3)
    return root


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """What a compute of the good runs alone stores."""
    root = _folder(tmp_path_factory.mktemp("clean") / "runs")
    db = root.parent / "clean.duckdb"
    with time_limit():
        assert compute(root, OPTIONS, db=db).failed == ()
    return Store(db).read_metrics().sort(KEY)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_one_bad_thing_costs_only_itself(
    case: Case, tmp_path: Path, clean: pl.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _folder(tmp_path / "runs")
    bad = case.build(root / "victim")
    with time_limit():
        found = discover_runs(root)
    runs = {run.run_id: run for run in found.runs}
    assert len(runs["good"].checkpoints) == 3 and len(runs["victim"].checkpoints) == 2
    problems = found.all_problems()
    for problem in problems:
        assert problem.what and problem.hint, problem
    if bad is not None:
        named = [p for p in problems if p.path == bad]
        assert len(named) == 1, (bad, [p.message() for p in problems])
        assert "/etc/passwd" not in named[0].hint  # never tell anyone to delete that
    else:
        assert not problems, [p.message() for p in problems]

    with time_limit():
        assert main(["runs", str(root)]) in (0, 1)
    out = capsys.readouterr()
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", out.out + out.err), "raw control characters"
    assert "Traceback" not in out.err

    db = tmp_path / "db.duckdb"
    with time_limit():
        summary = compute(root, OPTIONS, db=db)
    stored = Store(db).read_metrics()
    good = stored.filter(pl.col("run_id").is_in(GOOD)).sort(KEY)
    assert good.select(KEY).equals(clean.select(KEY))
    assert good["value"].to_list() == pytest.approx(clean["value"].to_list(), nan_ok=True)
    for failure in summary.failed:  # only a run beside the good ones may fail
        assert not any(f"/{name}/" in failure.reason for name in GOOD), failure


def test_the_corpus_holds_every_named_failure() -> None:
    names = {case.name for case in CASES}
    assert len(names) == len(CASES) >= 26
    assert sum(case.hangs for case in CASES) >= 4


def test_the_corpus_writes_only_inside_its_folder(tmp_path: Path) -> None:
    for number, case in enumerate(CASES):
        root = _folder(tmp_path / f"case{number}")
        case.build(root / "victim")
    assert all(path.absolute().is_relative_to(tmp_path) for path in tmp_path.rglob("*"))
    shutil.rmtree(tmp_path)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every case at once, each in its own corner, beside the good runs."""
    root = tmp_path_factory.mktemp("hostile") / "runs"
    for number, case in enumerate(CASES):
        if case.hangs:  # every hanging kind once is enough for the app
            continue
        _folder(root / f"case{number:02d}")
        case.build(root / f"case{number:02d}" / "victim")
    return root


def test_the_app_shows_problem_lines_never_an_exception(
    hostile: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from apptest_helpers import routed, texts

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    app = routed("folder", hostile)
    assert not app.exception
    problems = discover_runs(hostile).all_problems()
    (expander,) = [e for e in app.expander if "problems found" in e.label]
    assert f"{len(problems)} problems" in expander.label
    shown = "\n".join(w.value for w in app.warning)
    assert "sparse file" in shown and "outside its checkpoint folder" in shown
    assert "\x1b" not in texts(app)
    for page in ("hook-points", "metrics", "latent-states"):
        assert not routed(page, hostile).exception, page


def test_hook_point_names_are_escaped_in_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _folder(tmp_path / "runs")
    named = next(case for case in CASES if "control characters" in case.name)
    named.build(root / "victim")
    assert main(["hookpoints", str(root / "weird")]) == 0
    out = capsys.readouterr().out
    assert "\\x1b[2J" in out and "\x1b" not in out and "\x07" not in out


def test_numbers_past_the_limits_are_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _folder(tmp_path / "runs")
    args = ["compute", str(root), "--activations", "--bins", "100000000"]
    assert main(args) == 2
    assert "histogram bins must be <= 10000" in capsys.readouterr().err
    assert not (root / ".dyntools").exists()  # refused before anything was written


def test_model_arguments_the_model_refuses_are_an_error_row(tmp_path: Path) -> None:
    import json

    from dyntools.checkpoints import CheckpointWriter
    from dyntools.models import build_model
    from dyntools.store import locate_db

    spec = {"name": "mlp", "kwargs": {"in_features": 4, "hidden": [8], "out_features": 2}}
    model = build_model(spec)
    writer = CheckpointWriter(tmp_path / "run", model, {"task": "t", "seed": 0, "model": spec})
    writer.save(0)
    writer.save(1)
    writer.save_probe(torch.randn(8, 4), torch.randint(0, 2, (8,)))
    config = json.loads((tmp_path / "run" / "run.json").read_text())
    config["model"]["kwargs"]["no_such_argument"] = 3
    (tmp_path / "run" / "run.json").write_text(json.dumps(config))
    with time_limit():
        summary = compute(tmp_path, ComputeOptions(activations=True, workers=1))
    assert summary.failed and "no_such_argument" in summary.failed[0].reason
    assert not Store(locate_db(tmp_path).path).read_metrics(kinds=["weight"]).is_empty()
