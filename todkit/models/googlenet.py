"""GoogLeNet (Szegedy et al. 2015, Inception v1) as the MindSpore model zoo's
official/cv/googlenet: every convolution is a ``Conv2dBlock`` (Conv2d without bias,
TruncatedNormal(0.02) weights, BatchNorm2d(eps=1e-3), ReLU); the '5x5' branch uses a 3x3
kernel as the zoo does; global mean pooling (ReduceMean over H, W), Flatten and a Dense
``classifier`` (1024 -> num_classes). The unused ``dropout`` attribute is kept: MindSpore's
network has it, and it holds no parameters."""

from __future__ import annotations

from todkit import nn
from todkit.common.initializer import TruncatedNormal
from todkit.ops import operations as P


def weight_variable():
    return TruncatedNormal(0.02)


class Conv2dBlock(nn.Cell):
    def __init__(self, in_channels, out_channels, kernel_size=1, stride=1, padding=0,
                 pad_mode="same"):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, stride=stride,
                              padding=padding, pad_mode=pad_mode, weight_init=weight_variable())
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)
        self.relu = nn.ReLU()

    def construct(self, x):
        return self.relu(self.bn(self.conv(x)))


class Inception(nn.Cell):
    def __init__(self, in_channels, n1x1, n3x3red, n3x3, n5x5red, n5x5, pool_planes):
        super().__init__()
        self.b1 = Conv2dBlock(in_channels, n1x1, kernel_size=1)
        self.b2 = nn.SequentialCell([Conv2dBlock(in_channels, n3x3red, kernel_size=1),
                                     Conv2dBlock(n3x3red, n3x3, kernel_size=3)])
        self.b3 = nn.SequentialCell([Conv2dBlock(in_channels, n5x5red, kernel_size=1),
                                     Conv2dBlock(n5x5red, n5x5, kernel_size=3)])
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=1, pad_mode="same")
        self.b4 = Conv2dBlock(in_channels, pool_planes, kernel_size=1)
        self.concat = P.Concat(axis=1)

    def construct(self, x):
        return self.concat((self.b1(x), self.b2(x), self.b3(x), self.b4(self.maxpool(x))))


class GoogleNet(nn.Cell):
    def __init__(self, num_classes, include_top=True):
        super().__init__()
        self.conv1 = Conv2dBlock(3, 64, kernel_size=7, stride=2)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="same")
        self.conv2 = Conv2dBlock(64, 64, kernel_size=1)
        self.conv3 = Conv2dBlock(64, 192, kernel_size=3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="same")
        self.block3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.block3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="same")
        self.block4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.block4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.block4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.block4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.block4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(kernel_size=2, stride=2, pad_mode="same")
        self.block5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.block5b = Inception(832, 384, 192, 384, 48, 128, 128)
        self.dropout = nn.Dropout(keep_prob=0.8)
        self.include_top = include_top
        if self.include_top:
            self.mean = P.ReduceMean(keep_dims=True)
            self.flatten = nn.Flatten()
            self.classifier = nn.Dense(1024, num_classes, weight_init=weight_variable(),
                                       bias_init=weight_variable())

    def construct(self, x):
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.block3b(self.block3a(x)))
        x = self.block4c(self.block4b(self.block4a(x)))
        x = self.maxpool4(self.block4e(self.block4d(x)))
        x = self.block5b(self.block5a(x))
        if not self.include_top:
            return x
        x = self.flatten(self.mean(x, (2, 3)))
        return self.classifier(x)
