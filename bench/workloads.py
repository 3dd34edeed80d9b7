"""The workloads of issue 6, as plain data every framework's child reads (standard library only).

Every framework trains the same model on the same batch (``batch_arrays``: fixed, float32
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
             "sgd", "classifier", warmup=1, steps=8, min_steps=3, budget_s=10.0,
             overrides={"mindspore": {"min_steps": 2, "budget_s": 1.0}}),
    Workload("W5", "GoogleNet 224x224, classifier only", "googlenet", (3, 224, 224), 16, "sgd",
             "classifier", warmup=1, steps=3, min_steps=2, budget_s=10.0,
             overrides={"mindspore": {"budget_s": 1.0}}),
    Workload("W6", "ResNet18 3x32x32", "resnet18", (3, 32, 32), 32, "momentum", "all",
             warmup=2, steps=20, min_steps=4, budget_s=8.0,
             overrides={"mindspore": {"warmup": 1, "min_steps": 2, "budget_s": 4.0}}),
    Workload("W7", "head of W4 on cached features (Dense 1280-10)", "head", (1280,), 16, "sgd",
             "head", warmup=50, steps=2000, min_steps=200, budget_s=3.0),
]}

MOMENTUM = 0.9


def batch_arrays(w: Workload, np):
    """The one batch every framework trains on (NumPy passed in: this module imports none).

    Uniform values of unit variance from a counter hash, not ``numpy.random``: that module
    imports ``secrets`` -> ``hashlib`` -> OpenSSL, 5.8 MB of resident memory every
    framework's process would carry for the harness's sake and the peak-RSS column would
    charge to the framework. Made in chunks so no temporary is larger than 1 MB."""
    x = np.empty((w.batch, *w.input_shape), dtype=np.float32)
    flat = x.reshape(-1)
    chunk = 1 << 18
    for start in range(0, flat.size, chunk):
        bits = _hash32(np, start, min(chunk, flat.size - start), seed=6)
        u = np.multiply(bits, np.float32(2.0 ** -32), dtype=np.float32)
        np.multiply(u - np.float32(0.5), np.float32(12 ** 0.5), out=flat[start:start + u.size])
    y = (_hash32(np, 0, w.batch, seed=7) % np.uint32(w.classes)).astype(np.int32)
    return x, y


def _hash32(np, start: int, n: int, seed: int):
    """lowbias32 (Chris Wellons' integer hash) of the counters start..start+n-1, mixed with
    ``seed``: well-spread 32-bit values, the same on every machine."""
    h = np.arange(start, start + n, dtype=np.uint32)
    h ^= np.uint32((seed * 0x9E3779B9) & 0xFFFFFFFF)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x7FEB352D)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x846CA68B)
    h ^= h >> np.uint32(16)
    return h
