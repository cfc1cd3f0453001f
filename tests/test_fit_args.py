from __future__ import annotations

import argparse

import pytest

from dyntools.cli.fit_args import add_fit_arguments, fit_config_from_args
from dyntools.hmm.analysis import FitConfig
from dyntools.metrics import Feature


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
    assert config.features == (Feature("blocks.0.attn", "l2"), Feature("embed", "spectral"))
    assert config.paper_features and config.max_states == 6 and config.n_states == 4
    assert (config.restarts, config.covariance_type, config.normalize, config.seed) == (
        3,
        "full",
        "global",
        7,
    )
    assert config.data_fingerprint == "f00"


def test_features_have_one_text_form() -> None:
    for text, feature in (
        ("blocks.0.attn/l2", Feature("blocks.0.attn", "l2")),
        ("l2", Feature("", "l2")),
        (
            'relu1/dead_fraction@{"threshold":0.01}',
            Feature("relu1", "dead_fraction", '{"threshold":0.01}'),
        ),
        ('a/b.c/x@{"p":"u/v"}', Feature("a/b.c", "x", '{"p":"u/v"}')),
    ):
        assert Feature.parse(text) == feature
        assert feature.format() == text


@pytest.mark.parametrize("text", ["", "blocks.0.attn/", "Blocks/L2", "fc1/l2@threshold"])
def test_bad_feature_names_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match="HOOK/METRIC"):
        Feature.parse(text)
