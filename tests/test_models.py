"""Built-in models: registry round trip, readable names, shapes, and the transformer's maths."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from dyntools.capture import load_weights, rebuild_model
from dyntools.checkpoints import CheckpointWriter, read_run
from dyntools.models import MODEL_REGISTRY, build_model

SPECS = {
    "transformer": {"d_vocab": 8, "d_vocab_out": 7, "d_model": 16, "n_heads": 2, "d_mlp": 32},
    "mlp": {"in_features": 6, "hidden": [5, 4], "out_features": 1},
    "lenet": {},
    "resnet": {"widths": [4, 8]},
}


def test_every_builtin_model_is_registered() -> None:
    build_model({"name": "mlp", "kwargs": SPECS["mlp"]})
    assert set(SPECS) <= set(MODEL_REGISTRY)


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"known models: .*transformer"):
        build_model({"name": "nope", "kwargs": {}})


INPUTS = {
    "transformer": lambda: torch.randint(0, 8, (5, 3)),
    "mlp": lambda: torch.randn(5, 6),
    "lenet": lambda: torch.randn(5, 1, 8, 8),
    "resnet": lambda: torch.randn(5, 1, 8, 8),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_a_saved_model_is_rebuilt_from_its_run_folder_with_the_same_outputs(
    name: str, tmp_path: Path
) -> None:
    # The path activation metrics take: run.json names the model, the checkpoint holds the
    # weights, and the rebuilt model computes what the trained one did.
    spec = {"name": name, "kwargs": SPECS[name]}
    trained = build_model(spec)
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))  # differ from any fresh init
    trained.eval()
    writer = CheckpointWriter(tmp_path / "run", trained, {"task": "t", "model": spec})
    writer.save(0)
    run = read_run(tmp_path / "run")
    rebuilt = rebuild_model(run.config)
    load_weights(rebuilt, run.checkpoints[0])
    rebuilt.eval()
    x = INPUTS[name]()
    with torch.no_grad():
        assert torch.equal(rebuilt(x), trained(x))


def test_transformer_names_and_per_head_layout() -> None:
    model = build_model(
        {"name": "transformer", "kwargs": {**SPECS["transformer"], "layernorm": True}}
    )
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["embed.W_E"] == (8, 16)
    assert shapes["pos_embed.W_pos"] == (3, 16)
    assert shapes["blocks.0.attn.W_Q"] == (2, 8, 16)  # (n_heads, d_head, d_model)
    assert shapes["blocks.0.attn.W_O"] == (16, 16)
    assert shapes["blocks.0.mlp.W_in"] == (32, 16)
    assert shapes["blocks.0.mlp.b_in"] == (32,)
    assert shapes["blocks.0.mlp.W_out"] == (16, 32)
    assert shapes["unembed.W_U"] == (7, 16)
    assert "blocks.0.ln1.w" in shapes and "ln_final.b" in shapes
    modules = dict(model.named_modules())
    assert {"blocks.0.attn", "blocks.0.mlp", "embed", "unembed"} <= set(modules)
    plain = build_model({"name": "transformer", "kwargs": SPECS["transformer"]})
    assert not any(".ln" in k or "ln_final" in k for k in plain.state_dict())


def reference_attention(attn: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per-head attention written out with explicit loops and matrix products."""
    n_heads, d_head, _ = attn.W_Q.shape
    n = x.shape[1]
    heads = []
    for h in range(n_heads):
        q = x @ attn.W_Q[h].T
        k = x @ attn.W_K[h].T
        v = x @ attn.W_V[h].T
        scores = q @ k.transpose(1, 2) / math.sqrt(d_head)
        causal = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
        scores = scores.masked_fill(causal, float("-inf"))
        heads.append(scores.softmax(-1) @ v)
    return torch.cat(heads, dim=-1) @ attn.W_O.T


def test_attention_matches_a_loop_over_heads() -> None:
    model = build_model({"name": "transformer", "kwargs": SPECS["transformer"]})
    attn = model.blocks[0].attn
    x = torch.randn(5, 3, 16)
    torch.testing.assert_close(attn(x), reference_attention(attn, x))


def test_transformer_output_is_causal_logits_at_last_position() -> None:
    model = build_model({"name": "transformer", "kwargs": SPECS["transformer"]})
    tokens = torch.tensor([[1, 2, 7], [3, 4, 7]])
    assert model(tokens).shape == (2, 7)


def test_cnn_and_resnet_names_and_shapes() -> None:
    lenet = build_model({"name": "lenet", "kwargs": {}})
    assert {"conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight", "fc3.weight"} <= set(
        lenet.state_dict()
    )
    assert lenet(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    resnet = build_model({"name": "resnet", "kwargs": {"widths": [4, 8]}})
    state = resnet.state_dict()
    assert {"stem.conv.weight", "layer1.0.conv1.weight", "layer2.0.shortcut.conv.weight"} <= set(
        state
    )
    assert state["layer1.0.bn1.num_batches_tracked"].dtype == torch.int64
    assert resnet(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


def test_resnet_forks_drop_batchnorm_and_shortcuts() -> None:
    fork = build_model(
        {"name": "resnet", "kwargs": {"widths": [4, 8], "batchnorm": False, "residual": False}}
    )
    names = set(fork.state_dict())
    assert not any("bn" in n or "shortcut" in n for n in names)
    assert "layer1.0.conv1.bias" in names  # without BatchNorm the convolutions get a bias
    block = fork.layer1[0]
    x = torch.randn(2, 4, 8, 8)
    expected = block.relu2(block.conv2(block.relu1(block.conv1(x))))
    torch.testing.assert_close(block(x), expected)


def test_mlp_names_and_single_output() -> None:
    model = build_model({"name": "mlp", "kwargs": SPECS["mlp"]})
    assert [n for n, _ in model.named_children()] == ["fc1", "act1", "fc2", "act2", "fc3"]
    assert model(torch.zeros(4, 6)).shape == (4,)
