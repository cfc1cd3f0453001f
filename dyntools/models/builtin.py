"""Imports every built-in model module so that each registers itself."""

from dyntools.models import cnn, hf, mlp, resnet, transformer

__all__ = ["cnn", "hf", "mlp", "resnet", "transformer"]
