"""The workloads of issue 6, as plain data every framework's child reads (standard library only).

Every framework trains the same model on the same batch (``batch_arrays``: fixed seed, float32
data, int32 class labels in [0, 10)), with sparse softmax cross entropy (mean over the batch)
and the optimizer named here. ``steps`` / ``warmup`` are per framework and thread count; a
child also stops timing after ``budget_s`` seconds (at least ``min_steps`` timed steps).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Workload:
    id: str
    title: str
    model: str                  # key the framework modules dispatch on
    input_shape: tuple          # one sample, without the batch axis
    batch: int
    optimizer: str              # "adam" | "momentum" | "sgd"
    trains: str                 # "all" | "classifier" | "head"
    classes: int = 10
    lr: float = 0.01
    warmup: int = 5
    steps: int = 50
    min_steps: int = 5
    budget_s: float = 8.0
    overrides: dict = field(default_factory=dict)  # framework -> {warmup, steps, ...}

    def for_framework(self, fw: str) -> Workload:
        """This workload with ``fw``'s repetition overrides (slow peers take fewer steps)."""
        from dataclasses import replace

        return replace(self, **self.overrides.get(fw, {}))


WORKLOADS = {w.id: w for w in [
    Workload("W1", "MLP 64-32-10", "mlp", (64,), 32, "adam", "all", lr=1e-3,
             warmup=50, steps=2000, min_steps=200, budget_s=3.0),
    Workload("W2", "LeNet5 1x32x32", "lenet5", (1, 32, 32), 32, "momentum", "all",
             warmup=5, steps=200, min_steps=20, budget_s=6.0),
    Workload("W3", "seed MyNet, Dense over 3x224x224", "seednet", (3, 224, 224), 32, "adam",
             "all", lr=1e-3, warmup=3, steps=60, min_steps=10, budget_s=6.0),
    Workload("W4", "MobileNetV2 1.0 224x224, classifier only", "mobilenetv2", (3, 224, 224), 16,
             "sgd", "classifier", warmup=1, steps=8, min_steps=3, budget_s=10.0),
    Workload("W5", "GoogleNet 224x224, classifier only", "googlenet", (3, 224, 224), 16, "sgd",
             "classifier", warmup=1, steps=3, min_steps=2, budget_s=10.0),
    Workload("W6", "ResNet18 3x32x32", "resnet18", (3, 32, 32), 32, "momentum", "all",
             warmup=2, steps=20, min_steps=4, budget_s=8.0,
             overrides={"mindspore": {"warmup": 1, "min_steps": 2, "budget_s": 4.0}}),
    Workload("W7", "head of W4 on cached features (Dense 1280-10)", "head", (1280,), 16, "sgd",
             "head", warmup=50, steps=2000, min_steps=200, budget_s=3.0),
]}

MOMENTUM = 0.9


def batch_arrays(w: Workload, np):
    """The one batch every framework trains on (NumPy passed in: this module imports none)."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((w.batch, *w.input_shape), dtype=np.float32)
    y = rng.integers(0, w.classes, size=(w.batch,), dtype=np.int32)
    return x, y
