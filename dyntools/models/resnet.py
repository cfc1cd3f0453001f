"""Small ResNet with a CIFAR-style stem (3x3 conv, no max-pool), for the 8x8 digits.

Names: ``stem.conv``, ``stem.bn``, ``layer1.0.conv1``, ``layer1.0.bn1``, ``layer1.0.conv2``,
``layer1.0.bn2``, ``layer2.0.shortcut.conv`` (where the shape changes), ``fc``.

``batchnorm=False`` replaces every BatchNorm by an identity (the convolutions then get a bias)
and ``residual=False`` drops the skip connections: together these are the paper's "forks"
setting. BatchNorm's ``num_batches_tracked`` is an integer buffer kept in the checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dyntools.models import register_model


def _norm(channels: int, batchnorm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batchnorm else nn.Identity()


class ConvBN(nn.Module):
    def __init__(self, c_in: int, c_out: int, *, kernel: int, stride: int, batchnorm: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=not batchnorm
        )
        self.bn = _norm(c_out, batchnorm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))  # type: ignore[no-any-return]


class BasicBlock(nn.Module):
    def __init__(
        self, c_in: int, c_out: int, *, stride: int, batchnorm: bool, residual: bool
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=not batchnorm)
        self.bn1 = _norm(c_out, batchnorm)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=not batchnorm)
        self.bn2 = _norm(c_out, batchnorm)
        self.relu2 = nn.ReLU()
        self.residual = residual
        self.shortcut: nn.Module | None = None
        if residual and (stride != 1 or c_in != c_out):
            self.shortcut = ConvBN(c_in, c_out, kernel=1, stride=stride, batchnorm=batchnorm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        if self.residual:
            out = out + (x if self.shortcut is None else self.shortcut(x))
        return self.relu2(out)  # type: ignore[no-any-return]


class ResNet(nn.Module):
    def __init__(
        self,
        *,
        in_channels: int = 1,
        n_classes: int = 10,
        widths: Sequence[int] = (16, 32, 64),
        blocks_per_stage: int = 1,
        batchnorm: bool = True,
        residual: bool = True,
    ) -> None:
        super().__init__()
        widths = list(widths)
        if not widths or blocks_per_stage < 1:
            raise ValueError(
                f"a ResNet needs at least one stage and one block, got widths {widths}, "
                f"blocks_per_stage {blocks_per_stage}"
            )
        self.stem = ConvBN(in_channels, widths[0], kernel=3, stride=1, batchnorm=batchnorm)
        self.stem_relu = nn.ReLU()
        c_in = widths[0]
        for stage, width in enumerate(widths):
            blocks = []
            for index in range(blocks_per_stage):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(
                    BasicBlock(c_in, width, stride=stride, batchnorm=batchnorm, residual=residual)
                )
                c_in = width
            self.add_module(f"layer{stage + 1}", nn.Sequential(*blocks))
        self.n_stages = len(widths)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c_in, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_relu(self.stem(x))
        for stage in range(1, self.n_stages + 1):
            x = getattr(self, f"layer{stage}")(x)
        return self.fc(self.flatten(self.pool(x)))  # type: ignore[no-any-return]


@register_model("resnet")
def resnet(**kwargs: object) -> ResNet:
    """Registry entry: ``{"name": "resnet", "kwargs": {"widths": [16, 32, 64], ...}}``."""
    return ResNet(**kwargs)  # type: ignore[arg-type]
