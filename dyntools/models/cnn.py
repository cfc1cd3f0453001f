"""LeNet-5-style CNN for small images (the 8x8 digits): ``conv1``, ``conv2``, ``fc1``..``fc3``.

Sizes for an 8x8 input: conv1 (3x3, padding 1) -> ReLU -> 2x2 max-pool -> 4x4; conv2 the same
-> 2x2; then three fully connected layers (120, 84, n_classes) as in LeNet-5. Activations and
pools are named submodules (``relu1``, ``pool1``, ...) so their outputs are hook points.
"""

from __future__ import annotations

import torch
from torch import nn

from dyntools.models import register_model


class LeNet(nn.Module):
    def __init__(
        self,
        *,
        in_channels: int = 1,
        image_size: int = 8,
        n_classes: int = 10,
        channels: tuple[int, int] | list[int] = (6, 16),
        fc_sizes: tuple[int, int] | list[int] = (120, 84),
    ) -> None:
        super().__init__()
        c1, c2 = channels
        f1, f2 = fc_sizes
        if image_size % 4:
            raise ValueError(
                f"image_size must be a multiple of 4 (two 2x2 pools), got {image_size}"
            )
        self.conv1 = nn.Conv2d(in_channels, c1, kernel_size=3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(c2 * (image_size // 4) ** 2, f1)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(f1, f2)
        self.relu4 = nn.ReLU()
        self.fc3 = nn.Linear(f2, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.flatten(self.pool2(self.relu2(self.conv2(x))))
        x = self.relu4(self.fc2(self.relu3(self.fc1(x))))
        return self.fc3(x)  # type: ignore[no-any-return]


@register_model("lenet")
def lenet(**kwargs: object) -> LeNet:
    """Registry entry: ``{"name": "lenet", "kwargs": {"in_channels": 1, "image_size": 8, ...}}``."""
    return LeNet(**kwargs)  # type: ignore[arg-type]
