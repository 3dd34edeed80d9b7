"""ResNet (He et al. 2016) as the MindSpore model zoo's official/cv/ResNet.

ResNet50: bottleneck ``ResidualBlock``s (expansion 4), 'same'-padded convolutions with
kaiming-normal (fan_out, relu) weights, BatchNorm2d(eps=1e-4, momentum=0.9), a 'same' 3x3/2
max pool. ResNet18 (``res_base``): ``ResidualBlockBase`` with ``bn1d``/``bn2d``, 'pad'-mode
convolutions, BatchNorm2d(eps=1e-5, momentum=0.1) on the stem and the down-sampling branches,
and ``nn.Pad`` before a 'valid' max pool. Both end in ReduceMean over H, W, Flatten and the
Dense ``end_point`` (kaiming-uniform(sqrt 5) weights, zero bias).
"""

from __future__ import annotations

import math

from todkit import nn
from todkit.common.initializer import HeNormal, HeUniform
from todkit.frontend.padding import Pad
from todkit.ops import operations as P


def _conv(in_channel, out_channel, kernel, stride, res_base):
    weight = HeNormal(mode="fan_out", nonlinearity="relu")
    if res_base:
        return nn.Conv2d(in_channel, out_channel, kernel_size=kernel, stride=stride,
                         padding=kernel // 2, pad_mode="pad", weight_init=weight)
    return nn.Conv2d(in_channel, out_channel, kernel_size=kernel, stride=stride, padding=0,
                     pad_mode="same", weight_init=weight)


def _bn(channel, res_base=False):
    if res_base:
        return nn.BatchNorm2d(channel, eps=1e-5, momentum=0.1, gamma_init=1, beta_init=0,
                              moving_mean_init=0, moving_var_init=1)
    return nn.BatchNorm2d(channel, eps=1e-4, momentum=0.9, gamma_init=1, beta_init=0,
                          moving_mean_init=0, moving_var_init=1)


def _fc(in_channel, out_channel):
    return nn.Dense(in_channel, out_channel, has_bias=True,
                    weight_init=HeUniform(negative_slope=math.sqrt(5)), bias_init=0)


class ResidualBlock(nn.Cell):
    """Bottleneck: 1x1 -> 3x3 (stride) -> 1x1 (x4 channels), projection when shapes change."""

    expansion = 4

    def __init__(self, in_channel, out_channel, stride=1):
        super().__init__()
        channel = out_channel // self.expansion
        self.conv1 = _conv(in_channel, channel, 1, 1, False)
        self.bn1 = _bn(channel)
        self.conv2 = _conv(channel, channel, 3, stride, False)
        self.bn2 = _bn(channel)
        self.conv3 = _conv(channel, out_channel, 1, 1, False)
        self.bn3 = _bn(out_channel)
        self.relu = nn.ReLU()
        self.down_sample = stride != 1 or in_channel != out_channel
        self.down_sample_layer = None
        if self.down_sample:
            self.down_sample_layer = nn.SequentialCell([
                _conv(in_channel, out_channel, 1, stride, False), _bn(out_channel)])

    def construct(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.down_sample:
            identity = self.down_sample_layer(identity)
        return self.relu(out + identity)


class ResidualBlockBase(nn.Cell):
    """Basic block: two 3x3 convolutions, projection when shapes change."""

    def __init__(self, in_channel, out_channel, stride=1, res_base=True):
        super().__init__()
        self.res_base = res_base
        self.conv1 = _conv(in_channel, out_channel, 3, stride, res_base)
        self.bn1d = _bn(out_channel)
        self.conv2 = _conv(out_channel, out_channel, 3, 1, res_base)
        self.bn2d = _bn(out_channel)
        self.relu = nn.ReLU()
        self.down_sample = stride != 1 or in_channel != out_channel
        self.down_sample_layer = None
        if self.down_sample:
            self.down_sample_layer = nn.SequentialCell([
                _conv(in_channel, out_channel, 1, stride, res_base), _bn(out_channel, res_base)])

    def construct(self, x):
        identity = x
        out = self.relu(self.bn1d(self.conv1(x)))
        out = self.bn2d(self.conv2(out))
        if self.down_sample:
            identity = self.down_sample_layer(identity)
        return self.relu(out + identity)


class ResNet(nn.Cell):
    def __init__(self, block, layer_nums, in_channels, out_channels, strides, num_classes,
                 res_base=False):
        super().__init__()
        if not len(layer_nums) == len(in_channels) == len(out_channels) == len(strides) == 4:
            raise ValueError("ResNet: layer_nums, in_channels, out_channels and strides must "
                             "each have 4 entries")
        self.res_base = res_base
        self.conv1 = _conv(3, 64, 7, 2, res_base)
        self.bn1 = _bn(64, res_base)
        self.relu = P.ReLU()
        if res_base:
            self.pad = Pad(paddings=((0, 0), (0, 0), (1, 1), (1, 1)))
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="valid")
        else:
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="same")
        for i in range(4):
            setattr(self, f"layer{i + 1}", self._make_layer(
                block, layer_nums[i], in_channels[i], out_channels[i], strides[i]))
        self.mean = P.ReduceMean(keep_dims=True)
        self.flatten = nn.Flatten()
        self.end_point = _fc(out_channels[3], num_classes)

    @staticmethod
    def _make_layer(block, layer_num, in_channel, out_channel, stride):
        layers = [block(in_channel, out_channel, stride=stride)]
        layers += [block(out_channel, out_channel, stride=1) for _ in range(1, layer_num)]
        return nn.SequentialCell(layers)

    def construct(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        if self.res_base:
            x = self.pad(x)
        x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.flatten(self.mean(x, (2, 3)))
        return self.end_point(x)


def resnet18(class_num=10):
    return ResNet(ResidualBlockBase, [2, 2, 2, 2], [64, 64, 128, 256], [64, 128, 256, 512],
                  [1, 2, 2, 2], class_num, res_base=True)


def resnet50(class_num=10):
    return ResNet(ResidualBlock, [3, 4, 6, 3], [64, 256, 512, 1024], [256, 512, 1024, 2048],
                  [1, 2, 2, 2], class_num)


def ResNet18(num_classes=10):
    return resnet18(num_classes)


def ResNet50(num_classes=10):
    return resnet50(num_classes)
