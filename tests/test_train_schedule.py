"""Checkpoint schedules: every, every N, log K; bad specs are refused."""

from __future__ import annotations

import math

import pytest

from dyntools.train.schedule import EpochSchedule, parse_schedule


def test_every_epoch() -> None:
    assert parse_schedule("every").epochs(4) == (0, 1, 2, 3, 4)


def test_every_n_keeps_the_last_epoch() -> None:
    assert parse_schedule("every 3").epochs(10) == (0, 3, 6, 9, 10)
    assert parse_schedule("every 5").epochs(10) == (0, 5, 10)


def test_log_spacing() -> None:
    epochs = parse_schedule("log 20").epochs(10000)
    assert epochs[0] == 0 and epochs[-1] == 10000
    assert len(epochs) <= 21
    assert list(epochs) == sorted(set(epochs))
    # evenly spaced in log(1 + epoch): the ratio between neighbours settles near a constant
    ratio = (1 + epochs[-1]) / (1 + epochs[-2])
    assert ratio == pytest.approx(math.exp(math.log1p(10000) / 20), rel=0.01)
    assert parse_schedule("log 100").epochs(10) == tuple(range(11))


def test_str_round_trips() -> None:
    for text in ("every", "every 7", "log 30"):
        assert str(parse_schedule(text)) == text
    assert parse_schedule("every 1") == EpochSchedule("every", 1)


@pytest.mark.parametrize("bad", ["", "daily", "every 0", "log", "log -3", "every 2.5", "log 3 4"])
def test_bad_schedules_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="schedule"):
        parse_schedule(bad)
