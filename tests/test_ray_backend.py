"""The Ray backend of ``dyntools compute`` on a real local Ray instance (2 CPUs, started once for
the module): the same values as the local backend, the same incremental bookkeeping, a killed
worker retried, a failing checkpoint a failure as locally, an existing cluster by its address
and a local instance started for the compute; its choice in the options, the CLI and the app."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from apptest_helpers import blocks, by_key, routed, texts
from conftest import REPO_ROOT, SAMPLE_RUNS
from polars.testing import assert_frame_equal

from dyntools.checkpoints import Probe, discover_runs
from dyntools.cli import build_parser, main
from dyntools.pipeline import ComputeOptions, compute, ray_backend
from dyntools.pipeline.backends import BACKENDS
from dyntools.pipeline.jobs import Job, JobResult
from dyntools.pipeline.options import RAY_ADDRESS_VARIABLE, configured_backend
from dyntools.pipeline.runner import _plan_jobs, chosen_runs, run_job
from dyntools.pipeline.workers import WorkerDiedError, run_local
from dyntools.store import Store, locate_db
from dyntools.store.schema import ERRORS, HISTOGRAMS, METRICS

ray = pytest.importorskip("ray")

RUN = "digits-cnn/seed0"  # 11 small checkpoints with a probe batch
WEIGHTS_AND_ACTIVATIONS = ComputeOptions(runs=(RUN,), activations=True, workers=1)


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local Ray instance for the module (starting one takes seconds); its address."""
    with ray_backend.process_state_kept():  # the later tests' process as it was
        ray.init(address="local", num_cpus=2, include_dashboard=False)
        # Ray workers cannot import this test module (tests/ is not on their path): the run
        # callables defined here travel by value.
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        try:
            yield ray.get_runtime_context().gcs_address
        finally:
            ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
            ray.shutdown()


@pytest.fixture(scope="module")
def local_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run computed by the local backend in this process: what every Ray compute must
    reproduce."""
    db = tmp_path_factory.mktemp("local") / "db.duckdb"
    summary = compute(SAMPLE_RUNS, WEIGHTS_AND_ACTIVATIONS, db=db)
    assert (summary.computed, summary.failed) == (11, ())
    return db


def stored(db: Path) -> dict[str, pl.DataFrame]:
    """A store's computed tables, sorted, without the time errors were logged."""
    store = Store(db)
    tables = {
        "metrics": store.read_metrics(),
        "histograms": store.read_histograms(),
        "errors": store.read_errors().drop("logged_at"),
    }
    return {name: frame.sort(frame.columns) for name, frame in tables.items()}


def rows(results: Sequence[JobResult]) -> dict[str, pl.DataFrame]:
    """The store rows of job results, sorted, and the failures."""
    frames = {
        "metrics": METRICS.frame(row for r in results for row in r.metrics),
        "histograms": HISTOGRAMS.frame(row for r in results for row in r.histograms),
        "errors": ERRORS.frame(row for r in results for row in r.errors),
        "failures": pl.DataFrame({"failure": [r.failure for r in results]}, {"failure": pl.String}),
    }
    sortable = {
        name: [c for c, t in f.schema.items() if t != pl.List] for name, f in frames.items()
    }
    return {name: f.sort(sortable[name]) for name, f in frames.items()}


def assert_same(left: dict[str, pl.DataFrame], right: dict[str, pl.DataFrame]) -> None:
    assert left.keys() == right.keys()
    for name in left:
        try:
            assert_frame_equal(left[name], right[name], check_exact=True)
        except AssertionError as error:
            raise AssertionError(f"{name}: {error}") from None


def planned(folder: Path, options: ComputeOptions, db: Path) -> list[Job]:
    """The jobs a compute of ``folder`` dispatches (to call a backend with)."""
    runs = chosen_runs(discover_runs(folder).runs, options.runs)
    return _plan_jobs(runs, options, Store(db), []).jobs


def test_workers_share_the_cluster_cpus(cluster: str) -> None:
    shape = ray_backend.worker_shape
    assert shape(ray, None, 11) == ray_backend.WorkerShape(2, 1.0, 1)  # one per CPU
    assert shape(ray, 1, 11) == ray_backend.WorkerShape(1, 2.0, 2)  # one task, both CPUs
    # More workers than CPUs share them (Ray runs 3 tasks of 0.6666 CPU); never more than jobs.
    assert shape(ray, 3, 11) == ray_backend.WorkerShape(3, 0.6666, 1)
    assert shape(ray, 8, 2) == ray_backend.WorkerShape(2, 1.0, 1)


@dataclass(frozen=True)
class DieOnce:
    """A run callable whose first attempt (of all tasks) kills its own worker process."""

    marker: Path

    def __call__(self, job: Job, options: ComputeOptions, probe: Probe | None = None) -> JobResult:
        if job.activation_units and probe is None:
            raise AssertionError("the task got no probe batch from the object store")
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))  # only one task wins
        except FileExistsError:
            return run_job(job, options, probe)
        os._exit(1)  # as the system's OOM killer would end it: no exception, no result


@dataclass(frozen=True)
class AlwaysDie:
    def __call__(self, job: Job, options: ComputeOptions, probe: Probe | None = None) -> JobResult:
        os._exit(1)


@pytest.mark.slow
def test_values_equal_the_local_backend_and_a_rerun_computes_nothing(
    cluster: str, local_db: Path, tmp_path: Path
) -> None:
    db = tmp_path / "db.duckdb"
    options = ComputeOptions(runs=(RUN,), activations=True, backend="ray")
    summary = compute(SAMPLE_RUNS, options, db=db)
    assert (summary.computed, summary.skipped, summary.failed) == (11, 0, ())
    tables = stored(db)
    assert not tables["histograms"].is_empty()  # activations: the probe from the object store
    assert_same(tables, stored(local_db))
    again = compute(SAMPLE_RUNS, options, db=db)
    assert (again.computed, again.skipped, again.values_written) == (0, 11, 0)


def test_a_killed_worker_is_retried_and_its_job_computed(cluster: str, tmp_path: Path) -> None:
    options = ComputeOptions(runs=(RUN,), activations=True, metrics=("l2", "act_mean"))
    jobs = planned(SAMPLE_RUNS, options, tmp_path / "db.duckdb")[:4]
    marker = tmp_path / "died"
    results = list(ray_backend.run_on_ray(jobs, options, 2, DieOnce(marker)))
    assert marker.exists()  # a worker did die
    assert [(r.run_id, r.step) for r in results] == [(j.run.run_id, j.ref.step) for j in jobs]
    assert_same(rows(results), rows([run_job(job, options) for job in jobs]))


def test_a_worker_that_keeps_dying_is_a_worker_died_error(
    cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ray_backend, "MAX_RETRIES", 0)  # one death is the last
    options = ComputeOptions(runs=(RUN,), metrics=("l2",))
    jobs = planned(SAMPLE_RUNS, options, tmp_path / "db.duckdb")[:1]
    with pytest.raises(WorkerDiedError, match=r"a Ray worker died computing .*epoch_00000"):
        list(ray_backend.run_on_ray(jobs, options, 1, AlwaysDie()))


def test_failing_checkpoints_are_failures_as_locally(cluster: str, tmp_path: Path) -> None:
    folder = tmp_path / "runs"
    shutil.copytree(SAMPLE_RUNS / RUN, folder / RUN)
    # A damaged probe: the run's activations fail once, when the compute plans them (it reads
    # the probe's digest), while every checkpoint's weights are computed.
    (folder / RUN / "probe.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{broken")
    options = ComputeOptions(metrics=("l2", "act_mean"))
    local = compute(folder, options, db=tmp_path / "local.duckdb")
    on_ray = compute(
        folder,
        ComputeOptions(metrics=("l2", "act_mean"), backend="ray"),
        db=tmp_path / "ray.duckdb",
    )
    assert len(on_ray.failed) == 1 and "probe.safetensors" in on_ray.failed[0].reason
    assert on_ray.failed == local.failed
    assert_same(stored(tmp_path / "ray.duckdb"), stored(tmp_path / "local.duckdb"))
    assert not stored(tmp_path / "ray.duckdb")["metrics"].is_empty()

    # A checkpoint rewritten after the compute planned it fails when a worker opens it.
    jobs = planned(folder, options, tmp_path / "planned.duckdb")
    os.utime(jobs[3].ref.path, ns=(0, 0))
    on_ray_rows = rows(list(ray_backend.run_on_ray(jobs, options, 2, run_job)))
    assert on_ray_rows["failures"]["failure"].str.contains("changed since").sum() == 1
    assert_same(on_ray_rows, rows(list(run_local(jobs, options, 1, run_job))))


@pytest.mark.slow
def test_an_existing_cluster_is_used_by_its_address(cluster: str, tmp_path: Path) -> None:
    command = ["compute", str(SAMPLE_RUNS), "--runs", RUN, "--metrics", "l2", "--json"]
    command += ["--db", str(tmp_path / "db"), "--backend", "ray", "--ray-address", cluster]
    done = subprocess.run(
        [sys.executable, "-m", "dyntools", *command], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    assert f"Connecting to existing Ray cluster at address: {cluster}" in done.stderr
    assert json.loads(done.stdout)["computed"] == 11
    assert ray.cluster_resources()["CPU"] == 2  # the cluster outlives the compute
    # This process's connection is the one a compute here uses; another address is refused.
    with (
        pytest.raises(ValueError, match="connected to the Ray cluster at"),
        ray_backend.connected(ray, "10.9.9.9:6379"),
    ):
        pass


# A compute in a process of its own, with RAY_ADDRESS naming the module's cluster: it starts its
# own instance all the same, and leaves the process as it found it.
ON_OWN_INSTANCE = """
import json, os, signal, sys
import ray
from dyntools.pipeline import ComputeOptions, compute
before = dict(os.environ), signal.getsignal(signal.SIGTERM)
options = ComputeOptions(runs=({run!r},), metrics=("l2",), backend="ray")
summary = compute({folder!r}, options, db={db!r})
after = dict(os.environ), signal.getsignal(signal.SIGTERM)
print(json.dumps([summary.computed, after == before, ray.is_initialized()]))
"""


@pytest.mark.slow
def test_without_an_address_a_local_instance_is_started_for_the_compute(
    cluster: str, tmp_path: Path
) -> None:
    script = ON_OWN_INSTANCE.format(run=RUN, folder=str(SAMPLE_RUNS), db=str(tmp_path / "db"))
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "RAY_ADDRESS": cluster},
    )
    assert done.returncode == 0, done.stderr
    assert "Started a local Ray instance" in done.stderr
    assert "Connecting to existing" not in done.stderr
    # Computed; environment and SIGTERM handler as before; disconnected (the instance stopped).
    assert json.loads(done.stdout) == [11, True, False]


def test_the_app_computes_on_the_cluster_its_environment_names(
    cluster: str, fresh_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RAY_ADDRESS_VARIABLE, cluster)
    app = routed("hook-points", fresh_folder)
    assert f"Computes run on the Ray cluster at `{cluster}`" in texts(app)
    by_key(app.multiselect, "hooks.select").set_value(["fc2"])
    by_key(app.multiselect, "hooks.metrics").set_value(["l2"])
    by_key(app.button, "hooks.compute").click().run(timeout=120)
    assert not app.exception
    assert "Computed 14 checkpoints" in blocks(app, "status")[0].proto.label
    metrics = Store(locate_db(fresh_folder).path).read_metrics()
    assert set(metrics.filter(pl.col("scope") == "hook_point")["hook_point"]) == {"fc2"}


def test_the_backend_is_validated_and_chosen_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(
        ValueError, match=r"unknown backend 'nope'; choose one of \['local', 'ray'\]"
    ):
        ComputeOptions(backend="nope")
    with pytest.raises(ValueError, match="is for the ray backend"):
        ComputeOptions(ray_address="auto")
    with pytest.raises(ValueError, match="empty Ray address"):
        ComputeOptions(backend="ray", ray_address=" ")
    args = build_parser(["compute"]).parse_args(
        ["compute", "runs", "--backend", "ray", "--ray-address", "ray://head:10001"]
    )
    assert (args.backend, args.ray_address) == ("ray", "ray://head:10001")
    assert build_parser(["compute"]).parse_args(["compute", "runs"]).backend == "local"

    # Without ray installed, asking for it says how to install it, before any work.
    monkeypatch.setitem(sys.modules, "ray", None)
    assert not BACKENDS["ray"].available()
    status = main(["compute", str(SAMPLE_RUNS), "--backend", "ray", "--db", str(tmp_path / "db")])
    assert status == 2
    assert "pip install 'dyntools[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "db").exists()


def test_the_app_backend_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    base = ComputeOptions(workers=1)
    local = configured_backend({})
    assert (local.backend, local.apply(base)) == ("local", base)
    assert RAY_ADDRESS_VARIABLE in local.description
    chosen = configured_backend({RAY_ADDRESS_VARIABLE: " head:6379 "})
    options = chosen.apply(base)
    assert (options.backend, options.ray_address, options.workers) == ("ray", "head:6379", None)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    missing = configured_backend({RAY_ADDRESS_VARIABLE: "head:6379"})
    assert missing.backend == "local" and "pip install 'dyntools[ray]'" in missing.description


def test_only_the_ray_backend_imports_ray_and_importing_dyntools_does_not() -> None:
    importers = [
        str(path.relative_to(REPO_ROOT))
        for path in (REPO_ROOT / "dyntools").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if (isinstance(node, ast.Import) and any(a.name.split(".")[0] == "ray" for a in node.names))
        or (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ray")
    ]
    assert importers == ["dyntools/pipeline/ray_backend.py"]
    script = (
        "import sys\n"
        "import dyntools, dyntools.pipeline.runner, dyntools.pipeline.ray_backend\n"
        "from dyntools.cli import build_parser\n"
        "build_parser()\n"
        "print('ray' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    assert done.stdout.strip() == "False", done.stderr
