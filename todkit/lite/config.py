"""Build-time configuration, shaped like mindspore_lite's Context and the train API's TrainCfg."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from todkit.runtime.roles import DEFAULT_LOSS_NAMES


class ModelType(enum.IntEnum):
    """mindspore_lite.ModelType. Both load a .ms file here: MindSpore Lite's C++ API loads
    .ms models as kMindIR as well as kMindIR_Lite."""

    MINDIR = 0
    MINDIR_LITE = 4


@dataclass
class CPUDeviceInfo:
    """``thread_num``: the threads a step uses (``Context.blas_threads``): BLAS's, and with
    more than one, large calls split into pieces on a worker pool (runtime/rewrite_parallel.py);
    0 (Lite's "default") means 1. The other fields are recorded only."""

    thread_num: int = 0
    thread_affinity_mode: int = 0
    inter_op_parallel_num: int = 0
    precision_mode: str = "preferred_fp32"


class Context:
    """mindspore_lite.Context: ``target`` devices and per-device settings; ``thread_num`` sets
    the threads of a step (default 1), the rest is recorded."""

    def __init__(self, thread_num: int | None = None):
        self.target: list[str] = ["cpu"]
        self.cpu = CPUDeviceInfo()
        if thread_num is not None:
            self.cpu.thread_num = int(thread_num)

    @property
    def thread_num(self) -> int:
        return self.cpu.thread_num

    @thread_num.setter
    def thread_num(self, n: int) -> None:
        self.cpu.thread_num = int(n)

    @property
    def blas_threads(self) -> int:
        """Threads a step runs with (``Session(blas_threads=)``: BLAS's, and the worker pool
        that splits large calls when more than one): ``thread_num``, or 1 when it is 0
        (unset). One is the default because the kernels are many small products: on the
        2-core bench machine a second thread made W2 (LeNet) 63.7 ms per step against 9.7
        on one, and W3's 32x150528 by 10 products 8-16 ms against 2.0-2.6 (bench/README.md)."""
        n = self.cpu.thread_num
        return n if n > 0 else 1

    def __repr__(self) -> str:
        return f"Context(target={self.target}, cpu={self.cpu})"


@dataclass
class TrainCfg:
    """mindspore::TrainCfg: the substrings that name the loss node, gradient accumulation;
    plus ``nonfinite``, what a NaN/Inf loss or gradient does: "skip" (default: warn, skip
    the update, as Lite's loss-scale overflow check), "raise" (an error) or "ignore"."""

    loss_name: list[str] = field(default_factory=lambda: list(DEFAULT_LOSS_NAMES))
    accumulate_gradients: bool = False
    optimization_level: str = "O0"  # recorded; mixed precision is not implemented
    nonfinite: str = "skip"


class QuantizationType(enum.IntEnum):
    """mindspore::QuantizationType (include/api/types.h)."""

    NO_QUANT = 0
    WEIGHT_QUANT = 1
    FULL_QUANT = 2
