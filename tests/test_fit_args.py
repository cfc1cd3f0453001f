from __future__ import annotations

import argparse

import pytest

from dyntools.cli.fit_args import add_fit_arguments, fit_config_from_args, parse_feature
from dyntools.hmm.analysis import FitConfig


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_fit_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_are_the_fit_config_defaults() -> None:
    assert fit_config_from_args(parse([])) == FitConfig()


def test_options_reach_the_config() -> None:
    config = fit_config_from_args(
        parse(
            [
                "--features",
                "blocks.0.attn/l2",
                "embed/spectral",
                "--paper-features",
                "--max-states",
                "6",
                "--states",
                "4",
                "--restarts",
                "3",
                "--covariance",
                "full",
                "--normalize",
                "global",
                "--seed",
                "7",
            ]
        ),
        data_fingerprint="f00",
    )
    assert config.features == (("blocks.0.attn", "l2"), ("embed", "spectral"))
    assert config.paper_features and config.max_states == 6 and config.n_states == 4
    assert (config.restarts, config.covariance_type, config.normalize, config.seed) == (
        3,
        "full",
        "global",
        7,
    )
    assert config.data_fingerprint == "f00"


def test_bad_feature_names_the_expected_form() -> None:
    with pytest.raises(ValueError, match="HOOK/METRIC"):
        parse_feature("l2")
