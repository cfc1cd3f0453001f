"""Imports every built-in model module so that each registers itself."""

from dyntools.models import cnn, mlp, resnet, transformer

__all__ = ["cnn", "mlp", "resnet", "transformer"]
