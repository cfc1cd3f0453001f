"""Tensor roles of the sample models, of torch's nn.Transformer* and of real architectures (built
with transformers from a config, random weights), by name rules alone and with the modules'
types; which tensors the paper features take; and `dyntools hookpoints --roles`."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from conftest import SAMPLE_RUNS

from dyntools.cli import main
from dyntools.metrics.matrices import Cut, Fused, plan_matrices, split_fused
from dyntools.models import build_model
from dyntools.roles import Layer, Part, Role, classify
from dyntools.selection import NetworkSelection, Preset, default_cut, head_count

pytest.importorskip("transformers")
import transformers

W, B, S, SH, BUF = Part.WEIGHT, Part.BIAS, Part.SCALE, Part.SHIFT, Part.BUFFER
W_B = ("weight", "bias")


@dataclass(frozen=True)
class Info:
    name: str
    shape: tuple[int, ...]
    is_float: bool


def roles_of(model: torch.nn.Module, *, typed: bool) -> dict[str, Role]:
    tensors = [
        Info(name, tuple(t.shape), t.is_floating_point()) for name, t in model.state_dict().items()
    ]
    types = {path: type(m).__name__ for path, m in model.named_modules() if path}
    return classify(tensors, types if typed else None)


def check(model: torch.nn.Module, expected: dict[str, tuple[Layer, Part]]) -> None:
    for typed in (False, True):
        roles = roles_of(model, typed=typed)
        for name, (layer, part) in expected.items():
            assert roles[name] == Role(layer, part), (name, typed, roles[name])


def test_sample_transformer() -> None:
    spec = {"d_vocab": 8, "d_vocab_out": 7, "d_model": 16, "n_heads": 2, "d_mlp": 32}
    model = build_model({"name": "transformer", "kwargs": {**spec, "layernorm": True}})
    check(
        model,
        {
            "embed.W_E": (Layer.EMBEDDING, W),
            "pos_embed.W_pos": (Layer.POSITIONAL, W),
            "blocks.0.attn.W_Q": (Layer.ATTENTION_Q, W),
            "blocks.0.attn.W_K": (Layer.ATTENTION_K, W),
            "blocks.0.attn.W_V": (Layer.ATTENTION_V, W),
            "blocks.0.attn.W_O": (Layer.ATTENTION_OUT, W),
            "blocks.0.mlp.W_in": (Layer.LINEAR, W),
            "blocks.0.mlp.b_in": (Layer.LINEAR, B),
            "blocks.0.mlp.W_out": (Layer.LINEAR, W),
            "blocks.0.mlp.b_out": (Layer.LINEAR, B),
            "blocks.0.ln1.w": (Layer.NORM, S),
            "blocks.0.ln1.b": (Layer.NORM, SH),
            "ln_final.w": (Layer.NORM, S),
            "unembed.W_U": (Layer.UNEMBEDDING, W),
        },
    )


def test_sample_cnns_and_mlp() -> None:
    check(
        build_model({"name": "lenet", "kwargs": {}}),
        {
            "conv1.weight": (Layer.CONV, W),
            "conv1.bias": (Layer.CONV, B),
            "fc3.bias": (Layer.LINEAR, B),
        },
    )
    check(
        build_model({"name": "resnet", "kwargs": {"widths": [4, 8]}}),
        {
            "stem.conv.weight": (Layer.CONV, W),
            "stem.bn.weight": (Layer.NORM, S),
            "stem.bn.bias": (Layer.NORM, SH),
            "stem.bn.running_mean": (Layer.NORM, BUF),
            "stem.bn.num_batches_tracked": (Layer.NORM, BUF),
            "layer2.0.conv2.weight": (Layer.CONV, W),
            "layer2.0.shortcut.conv.weight": (Layer.SHORTCUT, W),
            "layer2.0.shortcut.bn.weight": (Layer.NORM, S),
            "fc.weight": (Layer.LINEAR, W),
            "fc.bias": (Layer.LINEAR, B),
        },
    )
    mlp = build_model(
        {"name": "mlp", "kwargs": {"in_features": 6, "hidden": [5], "out_features": 1}}
    )
    check(mlp, {"fc1.weight": (Layer.LINEAR, W), "fc2.bias": (Layer.LINEAR, B)})


class TorchvisionBlock(torch.nn.Module):
    """torchvision's BasicBlock names: conv1, bn1, conv2, bn2, downsample.0 (conv), .1 (BN)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(c_in, c_out, 3, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(c_out)
        self.conv2 = torch.nn.Conv2d(c_out, c_out, 3, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(c_out)
        self.downsample = torch.nn.Sequential(
            torch.nn.Conv2d(c_in, c_out, 1, bias=False), torch.nn.BatchNorm2d(c_out)
        )


class TorchvisionResNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 4, 7, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(4)
        self.layer1 = torch.nn.Sequential(TorchvisionBlock(4, 8))
        self.fc = torch.nn.Linear(8, 10)


def test_torchvision_style_resnet() -> None:
    check(
        TorchvisionResNet(),
        {
            "conv1.weight": (Layer.CONV, W),
            "bn1.weight": (Layer.NORM, S),
            "layer1.0.conv1.weight": (Layer.CONV, W),
            "layer1.0.bn2.bias": (Layer.NORM, SH),
            "layer1.0.downsample.0.weight": (Layer.SHORTCUT, W),
            "layer1.0.downsample.1.weight": (Layer.NORM, S),
            "layer1.0.downsample.1.running_var": (Layer.NORM, BUF),
            "fc.weight": (Layer.LINEAR, W),
        },
    )


def test_gpt2() -> None:
    config = transformers.GPT2Config(vocab_size=50, n_positions=16, n_embd=32, n_layer=2, n_head=4)
    check(
        transformers.GPT2LMHeadModel(config),
        {
            "transformer.wte.weight": (Layer.EMBEDDING, W),
            "transformer.wpe.weight": (Layer.POSITIONAL, W),
            "transformer.h.0.ln_1.weight": (Layer.NORM, S),
            "transformer.h.0.attn.c_attn.weight": (Layer.ATTENTION_QKV, W),
            "transformer.h.0.attn.c_attn.bias": (Layer.ATTENTION_QKV, B),
            "transformer.h.0.attn.c_proj.weight": (Layer.ATTENTION_OUT, W),
            "transformer.h.0.mlp.c_fc.weight": (Layer.LINEAR, W),
            "transformer.h.0.mlp.c_proj.weight": (Layer.LINEAR, W),
            "transformer.ln_f.bias": (Layer.NORM, SH),
            "lm_head.weight": (Layer.UNEMBEDDING, W),
        },
    )


def test_gpt_neox() -> None:
    config = transformers.GPTNeoXConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=16,
    )
    check(
        transformers.GPTNeoXForCausalLM(config),
        {
            "gpt_neox.embed_in.weight": (Layer.EMBEDDING, W),
            "gpt_neox.layers.0.input_layernorm.weight": (Layer.NORM, S),
            "gpt_neox.layers.0.attention.query_key_value.weight": (Layer.ATTENTION_QKV, W),
            "gpt_neox.layers.0.attention.query_key_value.bias": (Layer.ATTENTION_QKV, B),
            "gpt_neox.layers.0.attention.dense.weight": (Layer.ATTENTION_OUT, W),
            "gpt_neox.layers.0.mlp.dense_h_to_4h.weight": (Layer.LINEAR, W),
            "gpt_neox.layers.0.mlp.dense_4h_to_h.bias": (Layer.LINEAR, B),
            "gpt_neox.final_layer_norm.weight": (Layer.NORM, S),
            "lm_head.weight": (Layer.UNEMBEDDING, W),  # embed_out before transformers 5
        },
    )


def test_bert() -> None:
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=16,
    )
    check(
        transformers.BertForMaskedLM(config),
        {
            "bert.embeddings.word_embeddings.weight": (Layer.EMBEDDING, W),
            "bert.embeddings.position_embeddings.weight": (Layer.POSITIONAL, W),
            "bert.embeddings.token_type_embeddings.weight": (Layer.EMBEDDING, W),
            "bert.embeddings.LayerNorm.weight": (Layer.NORM, S),
            "bert.encoder.layer.0.attention.self.query.weight": (Layer.ATTENTION_Q, W),
            "bert.encoder.layer.0.attention.self.key.bias": (Layer.ATTENTION_K, B),
            "bert.encoder.layer.0.attention.self.value.weight": (Layer.ATTENTION_V, W),
            "bert.encoder.layer.0.attention.output.dense.weight": (Layer.ATTENTION_OUT, W),
            "bert.encoder.layer.0.attention.output.LayerNorm.bias": (Layer.NORM, SH),
            "bert.encoder.layer.0.intermediate.dense.weight": (Layer.LINEAR, W),
            "bert.encoder.layer.0.output.dense.bias": (Layer.LINEAR, B),
        },
    )


def test_llama() -> None:
    config = transformers.LlamaConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=16,
    )
    check(
        transformers.LlamaForCausalLM(config),
        {
            "model.embed_tokens.weight": (Layer.EMBEDDING, W),
            "model.layers.0.self_attn.q_proj.weight": (Layer.ATTENTION_Q, W),
            "model.layers.0.self_attn.k_proj.weight": (Layer.ATTENTION_K, W),
            "model.layers.0.self_attn.v_proj.weight": (Layer.ATTENTION_V, W),
            "model.layers.0.self_attn.o_proj.weight": (Layer.ATTENTION_OUT, W),
            "model.layers.0.mlp.gate_proj.weight": (Layer.LINEAR, W),
            "model.layers.0.input_layernorm.weight": (Layer.NORM, S),
            "model.norm.weight": (Layer.NORM, S),
            "lm_head.weight": (Layer.UNEMBEDDING, W),
        },
    )


def test_unknown_tensors_are_other_and_masks_are_buffers() -> None:
    tensors = [
        Info("thing.matrix", (3, 4), True),
        Info("layer.scale_vector", (4,), True),
        Info("h.0.attn.bias", (1, 1, 8, 8), True),  # GPT-2's causal mask in old checkpoints
        Info("h.0.attn.masked_bias", (), True),
        Info("layer.ids", (4,), False),
        Info("embed_out.weight", (50, 32), True),  # published Pythia checkpoints' name
    ]
    roles = classify(tensors)
    assert roles["thing.matrix"].layer is Layer.OTHER
    assert roles["layer.scale_vector"].layer is Layer.OTHER
    assert {roles[n].part for n in ("h.0.attn.bias", "h.0.attn.masked_bias", "layer.ids")} == {BUF}
    assert roles["embed_out.weight"] == Role(Layer.UNEMBEDDING, W)


def test_module_types_name_torch_convolutions_and_hf_conv1d() -> None:
    shapes = {"c.weight": (4, 3, 3, 3), "h.weight": (8, 4)}
    tensors = [Info(name, shape, True) for name, shape in shapes.items()]
    roles = classify(tensors, {"c": "Conv2d", "h": "Conv1D"})
    assert roles["c.weight"] == Role(Layer.CONV, Part.WEIGHT)
    assert roles["h.weight"] == Role(Layer.LINEAR, Part.WEIGHT)  # Hugging Face's Conv1D


def test_normalization_layers_cannot_be_selected() -> None:
    with pytest.raises(ValueError, match="normalization layers cannot enter the paper features"):
        NetworkSelection(Preset.CUSTOM, layers=(Layer.NORM,))


def test_bert_mlm_head_bias_is_the_unembeddings() -> None:
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=16,
    )
    model = transformers.BertForMaskedLM(config)
    check(
        model,
        {
            # The decoder's bias, tied to it (the only one a saved checkpoint keeps).
            "cls.predictions.bias": (Layer.UNEMBEDDING, B),
            "cls.predictions.decoder.bias": (Layer.UNEMBEDDING, B),
            "cls.predictions.decoder.weight": (Layer.UNEMBEDDING, W),
            "cls.predictions.transform.dense.weight": (Layer.LINEAR, W),
            "cls.predictions.transform.LayerNorm.weight": (Layer.NORM, S),
        },
    )
    layer_tensors = [
        f"bert.encoder.layer.{layer}.{module}.{part}"
        for layer in range(2)
        for module in (
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
            "intermediate.dense",
            "output.dense",
        )
        for part in ("weight", "bias")
    ]
    head = ["cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias"]
    for typed in (False, True):
        roles = roles_of(model, typed=typed)
        selected = {name for name, role in roles.items() if NetworkSelection().includes(name, role)}
        assert selected == {*layer_tensors, *head}, typed
    # A classifier's pooler and head are linear layers: both enter.
    classifier = transformers.BertForSequenceClassification(config)
    check(
        classifier,
        {
            "bert.pooler.dense.weight": (Layer.LINEAR, W),
            "bert.pooler.dense.bias": (Layer.LINEAR, B),
            "classifier.weight": (Layer.LINEAR, W),
        },
    )


def test_torch_multihead_attention_is_fused_qkv_in_blocks() -> None:
    layer = torch.nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64)
    encoder = torch.nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
    expected = {
        "layers.0.self_attn.in_proj_weight": (Layer.ATTENTION_QKV, W),
        "layers.0.self_attn.in_proj_bias": (Layer.ATTENTION_QKV, B),
        "layers.0.self_attn.out_proj.weight": (Layer.ATTENTION_OUT, W),
        "layers.0.self_attn.out_proj.bias": (Layer.ATTENTION_OUT, B),
        "layers.1.linear1.weight": (Layer.LINEAR, W),
        "layers.1.linear2.bias": (Layer.LINEAR, B),
        "layers.1.norm1.weight": (Layer.NORM, S),
        "layers.1.norm2.bias": (Layer.NORM, SH),
    }
    check(encoder, expected)
    for typed in (False, True):
        roles = roles_of(encoder, typed=typed)
        selected = {name for name, role in roles.items() if NetworkSelection().includes(name, role)}
        assert selected == {
            f"layers.{i}.{module}.{part}"
            for i in range(2)
            for module, part in [
                ("self_attn", "in_proj_weight"),
                ("self_attn", "in_proj_bias"),
                *((m, p) for m in ("self_attn.out_proj", "linear1", "linear2") for p in W_B),
            ]
        }
    # torch stacks q, k and v along dim 0: the blocks layout, per head with a head count (nn.
    # Transformer*'s nhead, MultiheadAttention's num_heads), else q, k and v whole.
    name = "layers.0.self_attn.in_proj_weight"
    role = Role(Layer.ATTENTION_QKV, W)
    assert head_count({"model": {"kwargs": {"nhead": 4}}}) == 4
    assert default_cut(name, (96, 32), role, 4, split_heads=True) == Cut(4, Fused.BLOCKS)
    whole = default_cut(name, (96, 32), role, None, split_heads=True)
    assert whole == Cut(1, Fused.BLOCKS)
    matrices, why = plan_matrices(name, (96, 32), "layers.0.self_attn", whole, 0)
    assert why is None and [(m.component, m.shape) for m in matrices] == [
        (c, (32, 32)) for c in "qkv"
    ]
    weight = encoder.layers[0].self_attn.in_proj_weight.detach()
    for got, want in zip(split_fused(weight, 1, Fused.BLOCKS), weight.chunk(3), strict=True):
        assert torch.equal(got, want)


class Mixer(torch.nn.Module):
    """A MultiheadAttention under a name no attention rule knows, and one with its own kdim."""

    def __init__(self) -> None:
        super().__init__()
        self.mha = torch.nn.MultiheadAttention(16, 2)
        self.cross = torch.nn.MultiheadAttention(16, 2, kdim=8, vdim=8)


def test_multihead_attention_out_proj_by_module_type() -> None:
    roles = {typed: roles_of(Mixer(), typed=typed) for typed in (False, True)}
    for typed in (False, True):
        assert roles[typed]["mha.in_proj_weight"] == Role(Layer.ATTENTION_QKV, W)
        assert roles[typed]["cross.q_proj_weight"] == Role(Layer.ATTENTION_Q, W)
        assert roles[typed]["cross.v_proj_weight"] == Role(Layer.ATTENTION_V, W)
        assert roles[typed]["cross.in_proj_bias"] == Role(Layer.ATTENTION_QKV, B)
    # Its class says what out_proj is; its name alone does not (a linear layer: it still enters).
    assert roles[True]["mha.out_proj.weight"] == Role(Layer.ATTENTION_OUT, W)
    assert roles[False]["mha.out_proj.weight"] == Role(Layer.LINEAR, W)
    decoder = torch.nn.TransformerDecoderLayer(d_model=16, nhead=2, dim_feedforward=32)
    check(
        decoder,
        {
            "multihead_attn.in_proj_weight": (Layer.ATTENTION_QKV, W),
            "multihead_attn.out_proj.weight": (Layer.ATTENTION_OUT, W),
        },
    )


def test_mamba_in_proj_is_no_fused_attention() -> None:
    config = transformers.MambaConfig(
        vocab_size=50, hidden_size=16, state_size=4, num_hidden_layers=1, expand=2, conv_kernel=4
    )
    model = transformers.MambaForCausalLM(config)
    mixer = "backbone.layers.0.mixer"
    check(
        model,
        {
            "backbone.embeddings.weight": (Layer.EMBEDDING, W),
            "backbone.layers.0.norm.weight": (Layer.NORM, S),
            f"{mixer}.in_proj.weight": (Layer.LINEAR, W),
            f"{mixer}.conv1d.weight": (Layer.CONV, W),
            f"{mixer}.conv1d.bias": (Layer.CONV, B),
            f"{mixer}.x_proj.weight": (Layer.LINEAR, W),
            f"{mixer}.dt_proj.bias": (Layer.LINEAR, B),
            f"{mixer}.out_proj.weight": (Layer.LINEAR, W),
            f"{mixer}.A_log": (Layer.OTHER, W),
            f"{mixer}.D": (Layer.OTHER, W),
            "lm_head.weight": (Layer.UNEMBEDDING, W),
        },
    )
    for typed in (False, True):
        roles = roles_of(model, typed=typed)
        selected = {name for name, role in roles.items() if NetworkSelection().includes(name, role)}
        assert selected == {
            f"{mixer}.{module}.{part}"
            for module, part in [
                ("in_proj", "weight"),
                ("x_proj", "weight"),
                ("out_proj", "weight"),
                *((m, p) for m in ("conv1d", "dt_proj") for p in W_B),
            ]
        }
        in_proj = roles[f"{mixer}.in_proj.weight"]
        assert default_cut(f"{mixer}.in_proj.weight", (64, 16), in_proj, 4, True) == Cut()


def test_a_bias_without_a_weight_matrix_is_other() -> None:
    roles = classify([Info("head.bias", (4,), True), Info("scaler.bias", (4,), True)])
    assert roles["head.bias"] == Role(Layer.OTHER, B)
    assert not NetworkSelection().includes("head.bias", roles["head.bias"])


def test_hookpoints_roles_lists_non_float_tensors(capsys: pytest.CaptureFixture[str]) -> None:
    run = SAMPLE_RUNS / "digits-resnet" / "seed0"
    assert main(["hookpoints", str(run), "--roles", "--json"]) == 0
    rows = {t["name"]: t for t in json.loads(capsys.readouterr().out)["tensors"]}
    counter = rows["stem.bn.num_batches_tracked"]
    assert (counter["dtype"], counter["layer"], counter["part"]) == ("int64", "norm", "buffer")
    assert counter["network"] is False
    assert main(["hookpoints", str(run), "--roles"]) == 0
    text = capsys.readouterr().out
    (line,) = [row for row in text.splitlines() if row.startswith("stem.bn.num_batches_tracked")]
    assert line.split()[1:4] == ["norm", "buffer", "-"]
    assert f"of {len(rows)} tensors enter the paper features" in text
