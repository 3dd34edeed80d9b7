"""MobileNetV2 (Sandler et al. 2018) as the MindSpore model zoo's official/cv/MobileNet/
mobilenetv2: ``MobileNetV2Backbone`` (``features``: ConvBNReLU with ReLU6, InvertedResidual
blocks with depthwise 3x3 convolutions in 'pad' mode, channels rounded to multiples of 8 by
the width multiplier) and ``MobileNetV2Head`` (global mean pooling, optional Dropout, Dense
``dense``), joined by ``MobileNetV2Combine`` without a name prefix, so parameter names are
``features.*`` and ``dense.*`` as in MindSpore's checkpoints.

Weights as the zoo sets them: convolutions N(0, sqrt(2 / (k*k*out))), BatchNorm gamma 1 and
beta 0, the Dense N(0, 0.01) with zero bias.
"""

from __future__ import annotations

import numpy as np

from todkit import nn
from todkit.frontend.initializer import get_rng
from todkit.ops import operations as P


def _make_divisible(v, divisor, min_value=None):
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:  # rounding down must not lose more than 10 %
        new_v += divisor
    return new_v


class GlobalAvgPooling(nn.Cell):
    def __init__(self):
        super().__init__()
        self.mean = P.ReduceMean(keep_dims=False)

    def construct(self, x):
        return self.mean(x, (2, 3))


class ConvBNReLU(nn.Cell):
    def __init__(self, in_planes, out_planes, kernel_size=3, stride=1, groups=1):
        super().__init__()
        padding = (kernel_size - 1) // 2
        if groups == 1:
            conv = nn.Conv2d(in_planes, out_planes, kernel_size, stride, pad_mode="pad",
                             padding=padding)
        else:  # depthwise
            conv = nn.Conv2d(in_planes, in_planes, kernel_size, stride, pad_mode="pad",
                             padding=padding, group=in_planes)
        self.features = nn.SequentialCell([conv, nn.BatchNorm2d(out_planes), nn.ReLU6()])

    def construct(self, x):
        return self.features(x)


class InvertedResidual(nn.Cell):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual: stride must be 1 or 2, got {stride}")
        hidden_dim = round(inp * expand_ratio)
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(inp, hidden_dim, kernel_size=1))
        layers += [ConvBNReLU(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim),
                   nn.Conv2d(hidden_dim, oup, kernel_size=1, stride=1, has_bias=False),
                   nn.BatchNorm2d(oup)]
        self.conv = nn.SequentialCell(layers)
        self.add = P.Add()

    def construct(self, x):
        if self.use_res_connect:
            return self.add(x, self.conv(x))
        return self.conv(x)


class MobileNetV2Backbone(nn.Cell):
    def __init__(self, width_mult=1.0, inverted_residual_setting=None, round_nearest=8,
                 input_channel=32, last_channel=1280):
        super().__init__()
        self.cfgs = inverted_residual_setting or [
            # t (expansion), c (channels), n (repeats), s (first stride)
            [1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2],
            [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]
        input_channel = _make_divisible(input_channel * width_mult, round_nearest)
        self.out_channels = _make_divisible(last_channel * max(1.0, width_mult), round_nearest)
        features = [ConvBNReLU(3, input_channel, stride=2)]
        for t, c, n, s in self.cfgs:
            output_channel = _make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel,
                                                 s if i == 0 else 1, expand_ratio=t))
                input_channel = output_channel
        features.append(ConvBNReLU(input_channel, self.out_channels, kernel_size=1))
        self.features = nn.SequentialCell(features)
        self._initialize_weights()

    def construct(self, x):
        return self.features(x)

    def _initialize_weights(self):
        rng = get_rng()
        for _, m in self.cells_and_names():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.set_data(rng.normal(0, np.sqrt(2.0 / n), m.weight.shape))
                if m.has_bias:
                    m.bias.set_data(np.zeros(m.bias.shape))
            elif isinstance(m, nn.BatchNorm2d):
                m.gamma.set_data(np.ones(m.gamma.shape))
                m.beta.set_data(np.zeros(m.beta.shape))

    @property
    def get_features(self):
        return self.features


class MobileNetV2Head(nn.Cell):
    def __init__(self, input_channel=1280, num_classes=1000, has_dropout=False,
                 activation="None"):
        super().__init__()
        head = [GlobalAvgPooling()] + ([nn.Dropout(p=0.8)] if has_dropout else [])
        self.head = nn.SequentialCell(head)
        self.dense = nn.Dense(input_channel, num_classes, has_bias=True)
        self.need_activation = activation in ("Sigmoid", "Softmax")
        if activation == "Sigmoid":
            self.activation = P.Sigmoid()
        elif activation == "Softmax":
            self.activation = P.Softmax()
        rng = get_rng()
        self.dense.weight.set_data(rng.normal(0, 0.01, self.dense.weight.shape))
        self.dense.bias.set_data(np.zeros(self.dense.bias.shape))

    def construct(self, x):
        x = self.dense(self.head(x))
        return self.activation(x) if self.need_activation else x


class MobileNetV2Combine(nn.Cell):
    def __init__(self, backbone, head):
        super().__init__(auto_prefix=False)
        self.backbone = backbone
        self.head = head

    def construct(self, x):
        return self.head(self.backbone(x))


def mobilenet_v2(backbone, head):
    return MobileNetV2Combine(backbone, head)


def MobileNetV2(num_classes=1000, width_mult=1.0, has_dropout=False, activation="None"):
    """Backbone and head joined (the zoo's ``mobilenet_v2(backbone, head)``)."""
    backbone = MobileNetV2Backbone(width_mult=width_mult)
    head = MobileNetV2Head(backbone.out_channels, num_classes, has_dropout, activation)
    return MobileNetV2Combine(backbone, head)
