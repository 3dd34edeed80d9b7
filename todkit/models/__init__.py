"""Model zoo: networks with the structure and attribute names of MindSpore's model zoo
(mindspore-ai/models, official/cv), so their parameter names and shapes match MindSpore's and
MindSpore checkpoints load into them. Weights are initialized as the zoo initializes them
(the same distributions; the draws differ, see todkit.frontend.initializer)."""

from todkit.models.googlenet import GoogleNet
from todkit.models.lenet import LeNet5
from todkit.models.mobilenetv2 import (
    MobileNetV2,
    MobileNetV2Backbone,
    MobileNetV2Combine,
    MobileNetV2Head,
    mobilenet_v2,
)
from todkit.models.resnet import ResNet, ResNet18, ResNet50, resnet18, resnet50

__all__ = ["GoogleNet", "LeNet5", "MobileNetV2", "MobileNetV2Backbone", "MobileNetV2Combine",
           "MobileNetV2Head", "ResNet", "ResNet18", "ResNet50", "mobilenet_v2", "resnet18",
           "resnet50"]
