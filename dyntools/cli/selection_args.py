"""The options that choose the tensors of the network values (the paper's features), shared by
``dyntools compute``, ``fit`` and ``hookpoints``."""

from __future__ import annotations

import argparse

from dyntools.pipeline.options import parse_patterns
from dyntools.roles import Layer
from dyntools.selection import NetworkSelection, Preset


def add_network_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "paper features",
        "which tensors the network values (the paper's 14 features) are computed over",
    )
    group.add_argument(
        "--paper-preset",
        choices=[p.value for p in Preset if p is not Preset.CUSTOM],
        help="paper (default): attention, MLP/linear and conv weights and their biases; "
        "polypythias: EleutherAI's training maps (every .weight and .bias but embed*, *norm*)",
    )
    group.add_argument(
        "--paper-tensors",
        action="append",
        metavar="PATTERN",
        help="these tensors instead: names, globs (blocks.*.mlp.W_in) or re:REGEX; repeat or "
        "comma-separate",
    )
    group.add_argument(
        "--paper-layers",
        action="append",
        metavar="LAYER",
        help=f"these layers' weights and biases instead: {', '.join(layer.value for layer in Layer)}",
    )


def network_selection_from_args(args: argparse.Namespace) -> NetworkSelection | None:
    """The selection the options name; None when they name none (the default applies)."""
    tensors = parse_patterns(args.paper_tensors)
    layer_names = parse_patterns(args.paper_layers)
    if (tensors or layer_names) and args.paper_preset:
        raise ValueError(
            "--paper-preset is a fixed selection: give it, or tensors/layers, not both"
        )
    if tensors or layer_names:
        known = {layer.value: layer for layer in Layer}
        unknown = [name for name in layer_names if name not in known]
        if unknown:
            raise ValueError(f"unknown layer(s) {unknown} for --paper-layers; known: {list(known)}")
        return NetworkSelection(
            Preset.CUSTOM, tensors=tensors, layers=tuple(known[name] for name in layer_names)
        )
    return NetworkSelection(Preset(args.paper_preset)) if args.paper_preset else None
