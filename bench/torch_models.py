"""The workloads' models in PyTorch (used by the PyTorch child and to export ONNX for ONNX
Runtime's training artifacts). Architectures as torchvision's / MindSpore's model zoo, written
out here so no torchvision is needed; ``split`` tells backbone from classifier."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(64, 32), nn.Linear(32, classes)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class LeNet5(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5, bias=False), nn.Conv2d(6, 16, 5, bias=False)
        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84,
                                                                                         classes)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class SeedNet(nn.Module):
    def __init__(self, classes=10, in_features=3 * 224 * 224):
        super().__init__()
        self.fc = nn.Linear(in_features, classes)

    def forward(self, x):
        return self.fc(torch.flatten(x, 1))


class Head(nn.Module):
    def __init__(self, classes=10, in_features=1280):
        super().__init__()
        self.fc = nn.Linear(in_features, classes)

    def forward(self, x):
        return self.fc(x)


def conv_bn(i, o, k, s=1, g=1, act=True, relu=nn.ReLU6):
    layers = [nn.Conv2d(i, o, k, s, (k - 1) // 2, groups=g, bias=False), nn.BatchNorm2d(o)]
    if act:
        layers.append(relu(inplace=True))
    return layers


class InvertedResidual(nn.Module):
    def __init__(self, i, o, s, t):
        super().__init__()
        h = i * t
        layers = conv_bn(i, h, 1) if t != 1 else []
        layers += conv_bn(h, h, 3, s, g=h) + conv_bn(h, o, 1, act=False)
        self.conv = nn.Sequential(*layers)
        self.res = s == 1 and i == o

    def forward(self, x):
        return x + self.conv(x) if self.res else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
               (6, 160, 3, 2), (6, 320, 1, 1)]
        layers, c = conv_bn(3, 32, 3, 2), 32
        for t, o, n, s in cfg:
            for k in range(n):
                layers.append(InvertedResidual(c, o, s if k == 0 else 1, t))
                c = o
        layers += conv_bn(c, 1280, 1)
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(1280, classes)

    def forward(self, x):
        return self.classifier(self.features(x))


class BasicConv(nn.Sequential):
    def __init__(self, i, o, k, s=1, p=0):
        super().__init__(nn.Conv2d(i, o, k, s, p, bias=False), nn.BatchNorm2d(o, eps=0.001),
                         nn.ReLU(inplace=True))


class Inception(nn.Module):
    def __init__(self, i, c1, c3r, c3, c5r, c5, pp):
        super().__init__()
        self.b1 = BasicConv(i, c1, 1)
        self.b2 = nn.Sequential(BasicConv(i, c3r, 1), BasicConv(c3r, c3, 3, p=1))
        self.b3 = nn.Sequential(BasicConv(i, c5r, 1), BasicConv(c5r, c5, 3, p=1))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), BasicConv(i, pp, 1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


class GoogleNet(nn.Module):
    """torchvision's GoogLeNet without the auxiliary classifiers."""

    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            BasicConv(3, 64, 7, 2, 3), nn.MaxPool2d(3, 2, ceil_mode=True),
            BasicConv(64, 64, 1), BasicConv(64, 192, 3, p=1), nn.MaxPool2d(3, 2, ceil_mode=True),
            Inception(192, 64, 96, 128, 16, 32, 32), Inception(256, 128, 128, 192, 32, 96, 64),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Inception(480, 192, 96, 208, 16, 48, 64), Inception(512, 160, 112, 224, 24, 64, 64),
            Inception(512, 128, 128, 256, 24, 64, 64), Inception(512, 112, 144, 288, 32, 64, 64),
            Inception(528, 256, 160, 320, 32, 128, 128), nn.MaxPool2d(2, 2, ceil_mode=True),
            Inception(832, 256, 160, 320, 32, 128, 128), Inception(832, 384, 192, 384, 48, 128,
                                                                   128),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(1024, classes)

    def forward(self, x):
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, i, o, s):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o)
        self.conv2, self.bn2 = nn.Conv2d(o, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o)
        self.down = None
        if s != 1 or i != o:
            self.down = nn.Sequential(nn.Conv2d(i, o, 1, s, bias=False), nn.BatchNorm2d(o))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.down is None else self.down(x)))


class ResNet18(nn.Module):
    """The ImageNet ResNet18 topology (7x7 stem, max pool) on 3x32x32 inputs."""

    def __init__(self, classes=10):
        super().__init__()
        layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                  nn.MaxPool2d(3, 2, 1)]
        c = 64
        for o, s in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            layers += [BasicBlock(c, o, s), BasicBlock(o, o, 1)]
            c = o
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(512, classes)

    def forward(self, x):
        return self.classifier(self.features(x))


MODELS = {"mlp": MLP, "lenet5": LeNet5, "seednet": SeedNet, "head": Head,
          "mobilenetv2": MobileNetV2, "googlenet": GoogleNet, "resnet18": ResNet18}


def build(w):
    """(model, trainable parameter names) for workload ``w``; a frozen backbone is put in eval
    mode (its BatchNorm uses running statistics) and has requires_grad off."""
    torch.manual_seed(1)
    model = MODELS[w.model](w.classes)
    model.train()
    if w.trains == "classifier":
        for p in model.features.parameters():
            p.requires_grad_(False)
        model.features.eval()
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    return model, names
