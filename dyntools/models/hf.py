"""Hugging Face models rebuilt from their ``config.json`` with ``transformers`` (the optional
extra ``dyntools[hf]``), for activations of Trainer runs and hub suites.

Only architectures ``transformers`` itself defines are built: ``trust_remote_code`` is never
enabled, so nothing in a checkpoint folder can make dyntools run code. A checkpoint is loaded
with ``from_pretrained`` from its own folder, offline: transformers knows how its checkpoints
name their tensors (GPT-NeoX's ``embed_out`` is the model's ``lm_head``), which shards to read
and which weights are tied.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import torch

from dyntools.models import register_model

# Keys of a run's configuration that are dyntools' own (the hub layout adds them), not the
# model's.
OWN_KEYS: Final = frozenset({"task", "seed", "hub_repo"})
INSTALL: Final = "pip install 'dyntools[hf]'"


def is_hf_config(config: Mapping[str, Any]) -> bool:
    """Whether a run's configuration is a transformers ``config.json`` (and not run.json)."""
    return isinstance(config.get("model_type"), str) and "model" not in config


def _transformers() -> ModuleType:
    try:
        return importlib.import_module("transformers")
    except ImportError:
        raise ValueError(
            f"this run is a Hugging Face model: rebuilding it needs transformers ({INSTALL})"
        ) from None


def _resolve(config: Mapping[str, Any]) -> tuple[type[torch.nn.Module], Any]:
    """The model class and the transformers config object of a ``config.json``."""
    transformers = _transformers()
    model_type = str(config["model_type"])
    architectures = config.get("architectures") or []
    name = architectures[0] if architectures and isinstance(architectures[0], str) else None
    remote = "auto_map" in config
    config_class = None
    with contextlib.suppress(KeyError):
        config_class = transformers.CONFIG_MAPPING[model_type]
    model_class = getattr(transformers, name, None) if name else None
    if config_class is None or (name is not None and model_class is None):
        what = name or model_type
        why = (
            "its code comes with the checkpoint (trust_remote_code), which dyntools never runs"
            if remote
            else f"transformers {transformers.__version__} does not define it"
        )
        raise ValueError(
            f"cannot rebuild the model {what!r}: {why}; name a factory that builds it "
            "(--factory package.module:function) for activations"
        )
    settings = {k: v for k, v in config.items() if k not in OWN_KEYS}
    # No key-value cache: the forward pass is captured once, never continued.
    settings["use_cache"] = False
    hf_config = config_class.from_dict(settings)
    if model_class is None:
        model_class = transformers.AutoModel._model_mapping[config_class]
    return model_class, hf_config


def hf_model(config: Mapping[str, Any]) -> torch.nn.Module:
    """The model of a ``config.json``, on the meta device: its modules and their types,
    without allocating (or initialising) any weights."""
    model_class, hf_config = _resolve(config)
    with torch.device("meta"), _quiet():
        return model_class(hf_config)


@register_model("transformers")
def transformers_model(**config: Any) -> torch.nn.Module:
    """A transformers model from its configuration (``model.config.to_dict()`` with
    ``architectures``), on the CPU: run.json's ``{"name": "transformers", "kwargs": CONFIG}``,
    which dyntools' Trainer callback writes. Its checkpoints hold ``state_dict()`` names, which
    ``load_state_dict`` takes as they are (``from_pretrained`` wants a transformers folder)."""
    if not isinstance(config.get("model_type"), str):
        raise ValueError("a 'transformers' model needs its configuration, with its model_type")
    model_class, hf_config = _resolve(config)
    with _quiet():
        return model_class(hf_config)


def load_hf_checkpoint(config: Mapping[str, Any], folder: Path) -> torch.nn.Module:
    """The model with the weights of the checkpoint in ``folder`` (a Trainer ``checkpoint-N``
    or a hub snapshot), in float32, read from disk only."""
    model_class, hf_config = _resolve(config)
    with _quiet():
        loaded = model_class.from_pretrained(  # type: ignore[attr-defined]
            str(folder),
            config=hf_config,
            local_files_only=True,
            trust_remote_code=False,
            dtype=torch.float32,
        )
    if not isinstance(loaded, torch.nn.Module):
        raise TypeError(f"{folder}: transformers returned {type(loaded).__name__}, not a model")
    return loaded


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No progress bars or notices of transformers on the console (they would interleave with
    dyntools' own progress); restored afterwards."""
    logging = _transformers().utils.logging
    was_enabled = logging.is_progress_bar_enabled()
    verbosity = logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if was_enabled:
            logging.enable_progress_bar()
