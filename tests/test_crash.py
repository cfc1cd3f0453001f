"""The rising crash (dyntools.crash): a sample task trained with a too-high learning rate is
flagged with its layer and the step of the collapse, the same task at its default learning rate
is not; the rule on hand-made series (a gradual rise, noise, NaN, a rise without a collapse);
``dyntools crashes`` and the app's warnings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest

from dyntools.checkpoints.step_stats import FRAME_SCHEMA, read_step_stats
from dyntools.cli import main
from dyntools.crash import Crash, CrashThresholds, find_crashes, folder_crashes
from dyntools.views.steps import crash_warnings, run_crash_warnings

# digits-cnn trains with AdamW at lr 1e-3; at lr 0.3 the first update multiplies the deeper
# ReLUs' std by 20 to 3000 and the next step kills most of their units (measured on seeds 0-4:
# relu2, relu3 and relu4 crash at step 2 on every seed, relu1 on some).
CRASHING_LR = "0.3"
CRASHING_LAYERS = {"relu2", "relu3", "relu4"}


def _train(out: Path, *extra: str) -> Path:
    args = ["train", "digits-cnn", "--seed", "0", "--out", str(out), "--step-stats", "--quiet"]
    assert main([*args, *extra]) == 0
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a crashing run (22 steps), a healthy one (44 steps) and a run without
    step statistics."""
    folder = tmp_path_factory.mktemp("crash_runs")
    _train(folder / "crashing", "--lr", CRASHING_LR, "--epochs", "1")
    _train(folder / "healthy", "--epochs", "2")
    args = ["train", "sparse-parity", "--seed", "0", "--out", str(folder / "no_stats")]
    assert main([*args, "--epochs", "1", "--quiet"]) == 0
    return folder


def _series(
    std: list[float], dead: list[float], module: str = "act", every: int = 1
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "step": [i * every for i in range(len(std))],
            "module": [module] * len(std),
            "std": std,
            "dead_fraction": dead,
        },
        schema={
            "step": pl.Int64,
            "module": pl.String,
            "std": pl.Float64,
            "dead_fraction": pl.Float64,
        },
    )


# fast.ai's shape: a flat start, an exponential rise over 12 steps, a collapse to a tenth of the
# start, with half the units dying; a little multiplicative noise throughout.
_NOISE = [1.0, 1.03, 0.98, 1.02, 0.97, 1.01, 0.99, 1.04, 0.96, 1.0]
FLAT, RISE = 20, 12
GRADUAL_STD = (
    [0.2 * _NOISE[i % 10] for i in range(FLAT)]
    + [0.2 * 1.3 ** (i + 1) * _NOISE[i % 10] for i in range(RISE)]
    + [0.02 * _NOISE[i % 10] for i in range(20)]
)
GRADUAL_DEAD = [0.45 + 0.01 * (i % 3) for i in range(FLAT + RISE)] + [0.9] * 20
PEAK = FLAT + RISE - 1


def test_too_high_learning_rate_is_flagged_at_the_collapse(runs: Path) -> None:
    stats = read_step_stats(runs / "crashing")
    crashes = find_crashes(stats, "crashing")
    assert {crash.module for crash in crashes} >= CRASHING_LAYERS
    for crash in crashes:
        rows = stats.filter(pl.col("module") == crash.module).sort("step")
        std = dict(zip(rows["step"], rows["std"], strict=True))
        assert crash.run_id == "crashing"
        assert 0 < crash.peak_step < crash.step <= crash.peak_step + 10
        assert crash.peak_std == std[crash.peak_step] >= 2 * std[0]
        # The reported step is inside the collapse: the std is down by 4 there and stays down.
        assert std[crash.step] <= crash.peak_std / 4
        assert crash.std_after <= crash.peak_std / 4
        assert crash.dead_after >= crash.dead_before + 0.2


def test_default_learning_rate_is_not_flagged(runs: Path) -> None:
    stats = read_step_stats(runs / "healthy")
    assert stats["step"].n_unique() == 44 and stats["module"].n_unique() == 4
    assert find_crashes(stats) == []


def test_a_gradual_rise_then_collapse_is_one_crash_at_its_first_low_step() -> None:
    stats = _series(GRADUAL_STD, GRADUAL_DEAD)
    assert find_crashes(stats, "r") == [
        Crash(
            run_id="r",
            module="act",
            step=PEAK + 1,
            peak_step=PEAK,
            peak_std=GRADUAL_STD[PEAK],
            std_after=pytest.approx(0.02, rel=0.05),
            dead_before=pytest.approx(0.46, abs=0.01),
            dead_after=0.9,
        )
    ]


def test_windows_count_recorded_steps_and_steps_are_reported_as_recorded() -> None:
    crash = find_crashes(_series(GRADUAL_STD, GRADUAL_DEAD, every=10))[0]
    assert (crash.peak_step, crash.step) == (PEAK * 10, (PEAK + 1) * 10)


def test_a_collapse_over_several_steps_reports_the_first_step_below_the_limit() -> None:
    std = [0.1] * 10 + [0.2, 0.4, 0.8, 0.5, 0.3, 0.15, 0.05] + [0.01] * 10
    dead = [0.5] * 13 + [0.6, 0.7, 0.8, 0.9] + [0.95] * 10
    (crash,) = find_crashes(_series(std, dead))
    assert (crash.peak_step, crash.step, crash.peak_std) == (12, 15, 0.8)  # 0.15 <= 0.8 / 4


def test_a_rise_without_a_collapse_is_not_a_crash() -> None:
    rising = [0.1 * 1.5**i for i in range(40)]
    assert find_crashes(_series(rising, [0.5] * 40)) == []
    # Still rising at the end of what was recorded (a run being written): not yet a crash.
    assert find_crashes(_series(GRADUAL_STD[: PEAK + 1], GRADUAL_DEAD[: PEAK + 1])) == []


def test_a_spike_without_dead_units_is_not_a_crash() -> None:
    # One noisy batch: the std jumps and comes back, no unit dies.
    std = [0.2] * 20 + [2.0] + [0.2] * 20
    assert find_crashes(_series(std, [0.5] * 41)) == []
    # Without the dead-fraction condition the collapse alone is enough.
    assert len(find_crashes(_series(std, [0.5] * 41), thresholds=CrashThresholds(dead_rise=0))) == 1


def test_a_dip_that_recovers_is_not_a_crash() -> None:
    # Down by 4 for one step, back up at once: the median of the window after stays high.
    std = [0.1 * 1.2**i for i in range(15)] + [0.05] + [0.5] * 15
    dead = [0.4] * 15 + [0.9] + [0.4] * 15
    assert find_crashes(_series(std, dead)) == []


def test_only_the_crashing_module_is_reported() -> None:
    healthy = _series([0.3 + 0.001 * i for i in range(52)], [0.4] * 52, module="a")
    crashing = _series(GRADUAL_STD, GRADUAL_DEAD, module="b")
    crashes = find_crashes(pl.concat([healthy, crashing]).sort("step"))
    assert [crash.module for crash in crashes] == ["b"]


@pytest.mark.parametrize(
    "stats",
    [
        FRAME_SCHEMA.to_frame(),
        _series([0.5], [0.5]),
        _series([0.1, 5.0], [0.2, 0.9]),
        _series([math.nan] * 30, [math.nan] * 30),
        _series([math.inf] * 30, [0.5] * 30),
        _series([0.0] * 30, [1.0] * 30),  # dead from the start: nothing rose
    ],
    ids=["empty", "one-step", "two-steps", "all-nan", "all-inf", "all-zero"],
)
def test_too_little_or_no_finite_data_is_no_crash(stats: pl.DataFrame) -> None:
    assert find_crashes(stats) == []


def test_nan_steps_are_skipped_not_taken_for_a_collapse() -> None:
    std, dead = list(GRADUAL_STD), list(GRADUAL_DEAD)
    for i in (5, PEAK - 3, PEAK + 4):
        std[i] = math.nan
    dead[PEAK - 5] = math.nan
    (crash,) = find_crashes(_series(std, dead))
    assert (crash.peak_step, crash.step) == (PEAK, PEAK + 1)
    # NaN where a healthy series would be low is not a collapse.
    flat = [0.3] * 20 + [math.nan] * 10 + [0.3] * 10
    assert find_crashes(_series(flat, [0.4] * 20 + [math.nan] * 10 + [0.4] * 10)) == []


def test_bad_input_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="dead_fraction"):
        find_crashes(pl.DataFrame({"step": [0], "module": ["a"], "std": [1.0]}))
    for bad, word in (
        ({"rise": 0.5}, "rise"),
        ({"collapse": 1.0}, "collapse"),
        ({"dead_rise": 1.5}, "dead_rise"),
        ({"window": 0}, "window"),
        ({"collapse": math.nan}, "collapse"),
    ):
        with pytest.raises(ValueError, match=word):
            CrashThresholds(**bad)


def test_folder_crashes_lists_every_run_and_which_have_statistics(runs: Path) -> None:
    found = {run.run_id: run for run in folder_crashes(runs)}
    assert sorted(found) == ["crashing", "healthy", "no_stats"]
    assert found["crashing"].has_stats and found["crashing"].crashes
    assert found["healthy"].has_stats and not found["healthy"].crashes
    assert not found["no_stats"].has_stats and not found["no_stats"].crashes


def test_a_folder_with_statistics_but_no_checkpoint_yet_is_checked(
    runs: Path, tmp_path: Path
) -> None:
    # A custom loop with ActivationStats, before its first checkpoint (or without any).
    import shutil

    shutil.copytree(runs / "crashing" / "step_stats", tmp_path / "loop" / "step_stats")
    (only,) = folder_crashes(tmp_path)
    assert only.run_id == "loop" and only.has_stats and only.crashes


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        status = main(args)
    except SystemExit as exit_:  # argparse errors
        status = int(exit_.code or 0)
    out = capsys.readouterr()
    return status, out.out, out.err


def test_crashes_command_prints_each_crash_and_exits_1(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _cli(["crashes", str(runs)], capsys)
    assert status == 1
    lines = out.splitlines()
    for layer in CRASHING_LAYERS:
        line = next(line for line in lines if line.startswith(f"crashing: {layer} crashed"))
        assert " at step " in line and "std " in line and "dead fraction " in line
    assert not any(line.startswith("healthy:") for line in lines)
    assert "no_stats: no step statistics" in out
    assert lines[-1].endswith("in 1 of 2 run(s) with step statistics")


def test_crashes_command_exits_0_without_a_crash(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _cli(["crashes", str(runs / "healthy")], capsys)
    assert (status, out.strip()) == (
        0,
        f"no rising crash in 1 run(s) with step statistics below {runs / 'healthy'}",
    )
    status, out, _ = _cli(["crashes", str(runs / "no_stats")], capsys)
    assert status == 0 and "nothing checked" in out


def test_crashes_command_json(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _cli(["crashes", str(runs), "--json", "--window", "5"], capsys)
    document = json.loads(out)
    assert status == 1 and document["schema"] == 1
    assert document["thresholds"]["window"] == 5
    by_id = {run["id"]: run for run in document["runs"]}
    assert by_id["healthy"]["crashes"] == [] and by_id["no_stats"]["step_stats"] is False
    crash = by_id["crashing"]["crashes"][0]
    assert set(crash) == {
        "module",
        "step",
        "peak_step",
        "peak_std",
        "std_after",
        "dead_before",
        "dead_after",
    }
    assert document["crashes"] == len(by_id["crashing"]["crashes"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--collapse", "0.5"], "collapse must be a factor > 1"),
        (["--dead-rise", "2"], "dead_rise is a share between 0 and 1"),
        (["--window", "x"], "invalid int value"),
    ],
)
def test_crashes_command_bad_thresholds_exit_2(
    runs: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _cli(["crashes", str(runs), *args], capsys)
    assert (status, out) == (2, "") and message in err and err.count("\n") == 1


def test_crashes_command_missing_folder_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = _cli(["crashes", str(tmp_path / "nope")], capsys)
    assert status == 2 and err.startswith("dyntools crashes: error:") and "does not exist" in err


def test_app_warnings(runs: Path) -> None:
    warnings = crash_warnings(runs)
    assert len(warnings) >= len(CRASHING_LAYERS)
    assert all(w.startswith("Rising crash in crashing: relu") for w in warnings)
    assert all("restart" in w for w in warnings)
    assert crash_warnings(runs / "healthy") == []
    stats = read_step_stats(runs / "crashing")
    assert run_crash_warnings("crashing", stats) == warnings
