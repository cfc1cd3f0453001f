"""Module outputs of a rebuilt model: activation hook points and their capture.

The model comes from ``run.json``'s ``model`` entry (``{"name": ..., "kwargs": {...}}``) through
the model registry, from a Hugging Face ``config.json`` through transformers (architectures it
defines; never remote code), or from a factory the user names explicitly
(``package.module:function``). A factory is imported only when named; nothing in a run folder
can make dyntools import code. ``checkpoint_model`` gives the model with one checkpoint's
weights and ``capture`` records the forward output of named modules (the activation hook
points) on the probe batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from dyntools.checkpoints import CheckpointRef, open_checkpoint
from dyntools.models import build_model
from dyntools.models.hf import hf_model, is_hf_config, load_hf_checkpoint
from dyntools.models.outputs import first_tensor


@dataclass(frozen=True)
class ActivationHookPoint:
    """One named module whose forward output can be captured."""

    path: str
    module_type: str
    parameters: int
    is_leaf: bool


def can_rebuild(config: Mapping[str, Any]) -> bool:
    """Whether a run's configuration says which model it trained (run.json's ``model`` entry
    or a transformers ``config.json``)."""
    return isinstance(config.get("model"), Mapping) or is_hf_config(config)


def rebuild_model(config: Mapping[str, Any], *, factory: str | None = None) -> torch.nn.Module:
    """The model a run was trained with, from its ``run.json`` or ``config.json`` (or an explicit
    factory). A Hugging Face model comes on the meta device: its modules, without weights."""
    if factory is None and is_hf_config(config):
        return hf_model(config)
    spec = config.get("model")
    if factory is None and not isinstance(spec, Mapping):
        raise ValueError(
            "this run does not say which model it trained (no 'model' entry in run.json, no "
            "config.json): name its factory explicitly, e.g. --factory mypackage.models:make_model"
        )
    return build_model(spec if isinstance(spec, Mapping) else {}, factory=factory)


def list_modules(model: torch.nn.Module) -> list[ActivationHookPoint]:
    """Every named sub-module (the root itself is left out: its output is the model's)."""
    points = []
    for path, module in model.named_modules():
        if not path:
            continue
        points.append(
            ActivationHookPoint(
                path=path,
                module_type=type(module).__name__,
                parameters=sum(p.numel() for p in module.parameters()),
                is_leaf=not any(True for _ in module.children()),
            )
        )
    return points


def activation_hook_points(
    config: Mapping[str, Any], *, factory: str | None = None
) -> list[ActivationHookPoint]:
    """The activation hook points of a run: its rebuilt model's named modules."""
    return list_modules(rebuild_model(config, factory=factory))


@contextmanager
def capture(model: torch.nn.Module, paths: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Record the forward output of each named module (the first tensor of a tuple)."""
    captured: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    handles = []
    for path in paths:

        def hook(_m: torch.nn.Module, _i: object, output: object, path: str = path) -> None:
            tensor = first_tensor(output)
            if tensor is not None:
                captured[path] = tensor.detach()

        handles.append(modules[path].register_forward_hook(hook))
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def checkpoint_model(
    config: Mapping[str, Any], ref: CheckpointRef, *, factory: str | None = None
) -> torch.nn.Module:
    """The run's model with the weights of checkpoint ``ref``, in evaluation mode."""
    if factory is None and is_hf_config(config):
        # transformers reads its own checkpoint folders (tensor names, shards, tied weights).
        model = load_hf_checkpoint(config, ref.files[0].parent)
    else:
        model = rebuild_model(config, factory=factory)
        load_weights(model, ref)
    return model.eval()


def load_weights(model: torch.nn.Module, ref: CheckpointRef) -> None:
    """Load a checkpoint into the rebuilt model, strictly: a mismatch is a clear error."""
    with open_checkpoint(ref) as source:
        state = source.read_many(source.names())
    expected = model.state_dict()
    state = {k: v.to(expected[k].dtype) if k in expected else v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise ValueError(
            f"{ref.path} does not fit the model rebuilt from run.json ({first}); "
            "check the run's model description or name a --factory"
        ) from None
