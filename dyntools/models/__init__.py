"""Model definitions and their registry (name -> constructor).

They stand apart from the training loop because activation analysis rebuilds models too:
``build_model(run_json["model"])`` gives back the architecture a run was trained with.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

import torch

ModelFactory = Callable[..., torch.nn.Module]

MODEL_REGISTRY: dict[str, ModelFactory] = {}


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator: make a model constructor buildable by name from ``run.json``."""

    def decorate(factory: ModelFactory) -> ModelFactory:
        if name in MODEL_REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        MODEL_REGISTRY[name] = factory
        return factory

    return decorate


def _import_factory(reference: str) -> ModelFactory:
    # Only ever called with a factory the user named explicitly ("package.module:function").
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"model factory {reference!r} must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(
            f"cannot import {module_name!r} for factory {reference!r}: {error}"
        ) from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ValueError(f"{reference!r}: {module_name} has no callable {attribute!r}")
    return factory  # type: ignore[no-any-return]


def build_model(spec: Mapping[str, Any], *, factory: str | None = None) -> torch.nn.Module:
    """Rebuild a model from a ``run.json`` model spec ``{"name": ..., "kwargs": {...}}``.

    ``factory`` ("package.module:function") overrides the registry for models that are not
    built in; it is imported only when given.
    """
    _ensure_builtin_models_registered()
    kwargs = dict(spec.get("kwargs", {}))
    if factory is not None:
        return _import_factory(factory)(**kwargs)
    name = spec.get("name")
    if name not in MODEL_REGISTRY:
        known = ", ".join(sorted(MODEL_REGISTRY)) or "none"
        raise ValueError(
            f"unknown model {name!r}; known models: {known}. For your own model, name its "
            "factory explicitly ('package.module:function')"
        )
    return MODEL_REGISTRY[name](**kwargs)


def _ensure_builtin_models_registered() -> None:
    # Importing the modules runs their @register_model decorators.
    importlib.import_module("dyntools.models.builtin")
