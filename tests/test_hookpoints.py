"""Hook point tree and selection, checked against hand-worked expectations and numpy counts."""

from __future__ import annotations

import re

import numpy as np
import pytest
from layout_builders import FIXTURES

from dyntools.checkpoints import TensorInfo, discover_runs
from dyntools.hookpoints import build_tree, glob_to_regex, select

TENSORS = [
    TensorInfo("embed.W_E", (10, 4), "float32"),
    TensorInfo("blocks.0.attn.W_Q", (4, 4), "bfloat16"),
    TensorInfo("blocks.0.attn.W_K", (4, 4), "bfloat16"),
    TensorInfo("blocks.0.mlp.W_in", (4, 8), "float32"),
    TensorInfo("blocks.0.mlp.mask", (8,), "bool"),
    TensorInfo("blocks.10.mlp.W_in", (4, 8), "float32"),
    TensorInfo("blocks.2.mlp.W_in", (4, 8), "float32"),
    TensorInfo("bn.running_mean", (8,), "float32"),
    TensorInfo("bn.num_batches_tracked", (), "int64"),
    TensorInfo("W_pos", (6, 4), "float16"),
]


def paths(points: list) -> list[str]:  # type: ignore[type-arg]
    return [p.path for p in points]


def test_tree_nodes_owners_and_counts() -> None:
    tree = build_tree(TENSORS)
    assert list(tree.nodes) == [
        "W_pos",
        "blocks",
        "blocks.0",
        "blocks.0.attn",
        "blocks.0.mlp",
        "blocks.2",
        "blocks.2.mlp",
        "blocks.10",
        "blocks.10.mlp",
        "bn",
        "embed",
    ]
    attn = tree.nodes["blocks.0.attn"]
    assert [t.name for t in attn.tensors] == ["blocks.0.attn.W_Q", "blocks.0.attn.W_K"]
    assert attn.natural and attn.parent == "blocks.0" and attn.depth == 2
    assert not tree.nodes["blocks.0"].natural
    # Parameter counts: floating tensors only, summed over the subtree (numpy reference).
    float_sizes = {
        t.name: int(np.prod(t.shape)) for t in TENSORS if t.dtype != "bool" and t.dtype != "int64"
    }
    expected_blocks = sum(v for k, v in float_sizes.items() if k.startswith("blocks."))
    assert tree.nodes["blocks"].parameters == expected_blocks == 16 + 16 + 32 * 3
    assert tree.nodes["W_pos"].parameters == 24
    assert [t.name for t in tree.nodes["bn"].metric_inputs] == ["bn.running_mean"]
    assert [t.name for t in tree.nodes["bn"].non_float] == ["bn.num_batches_tracked"]
    assert [t.name for t in tree.nodes["blocks.0.mlp"].non_float] == ["blocks.0.mlp.mask"]
    assert paths(tree.natural()) == [
        "W_pos", "blocks.0.attn", "blocks.0.mlp", "blocks.2.mlp", "blocks.10.mlp", "bn", "embed"
    ]  # fmt: skip


def test_selection_exact_glob_regex_and_lists() -> None:
    tree = build_tree(TENSORS)
    assert paths(tree.select("blocks.0.attn")) == ["blocks.0.attn"]
    assert paths(tree.select("blocks.*.mlp")) == ["blocks.0.mlp", "blocks.2.mlp", "blocks.10.mlp"]
    assert paths(tree.select("blocks.*")) == ["blocks.0", "blocks.2", "blocks.10"]
    assert paths(tree.select("blocks.**")) == [
        "blocks.0", "blocks.0.attn", "blocks.0.mlp", "blocks.2", "blocks.2.mlp", "blocks.10",
        "blocks.10.mlp",
    ]  # fmt: skip
    assert paths(tree.select("blocks.[0-2].mlp")) == ["blocks.0.mlp", "blocks.2.mlp"]
    assert paths(tree.select("blocks.?.mlp")) == ["blocks.0.mlp", "blocks.2.mlp"]
    assert paths(tree.select(r"re:blocks\.1?0\.mlp")) == ["blocks.0.mlp", "blocks.10.mlp"]
    # A list is a union in tree order, without duplicates.
    assert paths(tree.select(["embed", "blocks.0.*", "blocks.0.attn"])) == [
        "blocks.0.attn",
        "blocks.0.mlp",
        "embed",
    ]
    assert paths(select(TENSORS, "bn")) == ["bn"]


def test_unknown_names_suggest_close_matches() -> None:
    tree = build_tree(TENSORS)
    with pytest.raises(
        ValueError, match=r"no hook point matches 'blocks\.0\.atn'; close matches: blocks\.0\.attn"
    ):
        tree.select("blocks.0.atn")
    with pytest.raises(
        ValueError,
        match=re.escape("is a tensor, not a hook point: select its module 'blocks.0.attn'"),
    ):
        tree.select("blocks.0.attn.W_Q")
    with pytest.raises(ValueError, match=re.escape("no hook point matches 'decoder.*'")):
        tree.select(["embed", "decoder.*"])
    with pytest.raises(ValueError, match=re.escape("regex 're:blocks[' is invalid")):
        tree.select("re:blocks[")
    with pytest.raises(ValueError, match="no hook point pattern given"):
        tree.select([])


def test_glob_translation() -> None:
    assert glob_to_regex("a.*.b") == r"a\.[^.]*\.b"
    assert glob_to_regex("a.**") == r"a\..*"
    assert glob_to_regex("l[!0]") == "l[^0]"


def test_tree_from_real_checkpoints() -> None:
    (run,) = discover_runs(FIXTURES / "lightning").runs
    tree = build_tree(run.checkpoints[0].tensors)
    assert paths(tree.natural()) == ["bn", "fc1", "fc2"]
    assert tree.nodes["fc1"].parameters == 4 * 8 + 8
    assert [t.name for t in tree.nodes["bn"].non_float] == ["bn.num_batches_tracked"]
    (hf,) = discover_runs(FIXTURES / "hf_trainer").runs
    hf_tree = build_tree(hf.checkpoints[0].tensors)
    total = sum(t.numel for t in hf.checkpoints[0].tensors if t.is_float)
    assert hf_tree.nodes["bert"].parameters + hf_tree.nodes["classifier"].parameters == total
    assert paths(hf_tree.select("bert.encoder.layer.*.attention.self.*")) == [
        "bert.encoder.layer.0.attention.self.key",
        "bert.encoder.layer.0.attention.self.query",
        "bert.encoder.layer.0.attention.self.value",
    ]
