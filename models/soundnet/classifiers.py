"""ResNet and VGG image classifiers built in the project, with torchvision's parameter names, so a
user's weights file (a torchvision-style ``state_dict``) loads as a SoundNet teacher without
torchvision (whose wheels do not match the pinned torch).

The architecture is read off the state dict: a ResNet by its ``layer1..layer4`` blocks (basic
blocks when they have no ``conv3``: ResNet-18/34; bottlenecks otherwise: ResNet-50/101/152,
stride on the 3x3 convolution as torchvision's v1.5) and ``fc``; a VGG by its ``features.N``
convolutions (with batch norm when ``features.N+1`` has running statistics; a max pool wherever
the index skips the pool's slot, and after the last convolution) and ``classifier.0/3/6``.
Shapes in docstrings: images ``(B, 3, H, W)`` float, logits ``(B, K)``.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

#: ImageNet normalisation torchvision's classifiers were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = _shortcut(cin, width, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.downsample = _shortcut(cin, width * 4, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


def _shortcut(cin: int, cout: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class ResNet(nn.Module):
    """torchvision's ResNet layout: ``blocks`` per stage, ``bottleneck`` or basic blocks."""

    def __init__(self, blocks: tuple[int, int, int, int], bottleneck: bool, num_classes: int):
        super().__init__()
        block = Bottleneck if bottleneck else BasicBlock
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for i, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512)), 1):
            stage = []
            for j in range(n):
                stage.append(block(cin, width, 2 if (j == 0 and i > 1) else 1))
                cin = width * block.expansion
            setattr(self, f"layer{i}", nn.Sequential(*stage))
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(x.mean(dim=(2, 3)))


class VGG(nn.Module):
    """torchvision's VGG layout: ``features`` (conv [BN] ReLU, max pools), 7x7 average pool,
    ``classifier`` (Linear ReLU Dropout Linear ReLU Dropout Linear)."""

    def __init__(self, convs: list[tuple[int, int, bool]], batch_norm: bool, hidden: int, num_classes: int):
        """``convs``: (in, out, max pool after) per convolution, in order."""
        super().__init__()
        layers: list[nn.Module] = []
        for cin, cout, pool in convs:
            layers.append(nn.Conv2d(cin, cout, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.ReLU(inplace=True))
            if pool:
                layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        last = convs[-1][1]
        self.classifier = nn.Sequential(nn.Linear(last * 49, hidden), nn.ReLU(True), nn.Dropout(),
                                        nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(),
                                        nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), (7, 7))
        return self.classifier(torch.flatten(x, 1))


def _resnet_from(state: Mapping[str, torch.Tensor]) -> tuple[ResNet, str]:
    blocks = []
    for i in range(1, 5):
        ids = {int(m.group(1)) for k in state if (m := re.match(rf"layer{i}\.(\d+)\.", k))}
        blocks.append(max(ids) + 1 if ids else 0)
    if min(blocks) < 1:
        raise ValueError(f"ResNet weights: expected blocks in layer1..layer4, found {blocks}")
    bottleneck = "layer1.0.conv3.weight" in state
    depth = (sum(blocks) * (3 if bottleneck else 2)) + 2
    return ResNet(tuple(blocks), bottleneck, state["fc.weight"].shape[0]), f"resnet{depth}"


def _vgg_from(state: Mapping[str, torch.Tensor]) -> tuple[VGG, str]:
    conv_ids = sorted(int(m.group(1)) for k in state if (m := re.match(r"features\.(\d+)\.weight$", k))
                      and state[k].ndim == 4)
    batch_norm = f"features.{conv_ids[0] + 1}.running_mean" in state
    slot = 3 if batch_norm else 2  # modules per conv before a pool: conv [BN] ReLU
    convs = []
    for n, i in enumerate(conv_ids):
        nxt = conv_ids[n + 1] if n + 1 < len(conv_ids) else None
        w = state[f"features.{i}.weight"]
        convs.append((w.shape[1], w.shape[0], nxt is None or nxt - i > slot))
    model = VGG(convs, batch_norm, state["classifier.0.weight"].shape[0], state["classifier.6.weight"].shape[0])
    return model, f"vgg{len(convs) + 3}{'_bn' if batch_norm else ''}"


def classifier_from_state_dict(state: Mapping[str, torch.Tensor]) -> tuple[nn.Module, str]:
    """(the network with the weights loaded, in eval mode, its name such as ``resnet50``).

    Raises:
        ValueError: keys of neither a torchvision ResNet nor a VGG, or weights that do not fit
            the architecture read off them (the message names what was found).
    """
    state = {k.removeprefix("module."): v for k, v in state.items()}  # DataParallel checkpoints
    if "fc.weight" in state and "layer1.0.conv1.weight" in state:
        model, name = _resnet_from(state)
    elif "features.0.weight" in state and "classifier.6.weight" in state:
        model, name = _vgg_from(state)
    else:
        raise ValueError(f"teacher weights: expected a torchvision ResNet (conv1, layer1..4, fc) or VGG (features, "
                         f"classifier) state dict, found keys {sorted(state)[:6]}")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"teacher weights: they do not fit the {name} read off their keys: "
                         f"{str(e).splitlines()[0]}") from None
    return model.eval(), name
