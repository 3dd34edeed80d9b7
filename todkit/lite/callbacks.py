"""MindSpore Lite's train callbacks and metrics (include/api/callback/*.h, metrics/*.h;
src/train/{loss_monitor,train_accuracy,accuracy_metrics,ckpt_saver,lr_scheduler}.cc), with
the lines they print. Numbers print as C++ ``std::cout << float`` does (6 significant
digits, ``%g``).
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from todkit.core.errors import TodkitError

INT_MAX = 2**31 - 1
METRICS_CLASSIFICATION, METRICS_MULTILABEL = 0, 1
DONT_UPDATE_LR, UPDATE_LR = 0, 1


class RetValue(enum.IntEnum):
    """mindspore::CallbackRetValue: what ``epoch_end`` tells the loop."""

    CONTINUE = 0
    STOP_TRAINING = 1
    EXIT = 2


@dataclass
class TrainCallBackData:
    """mindspore::TrainCallBackData: mode, epoch and step (both from 0), the model."""

    train_mode: bool
    epoch: int
    step: int
    model: Any


def fmt(x: float) -> str:
    """A float as ``std::cout`` prints it by default."""
    return f"{float(x):g}"


class TrainCallBack:
    """Base class: every hook does nothing; ``epoch_end`` returns CONTINUE."""

    def begin(self, cb_data: TrainCallBackData) -> None: ...
    def end(self, cb_data: TrainCallBackData) -> None: ...
    def epoch_begin(self, cb_data: TrainCallBackData) -> None: ...

    def epoch_end(self, cb_data: TrainCallBackData) -> RetValue:
        return RetValue.CONTINUE

    def step_begin(self, cb_data: TrainCallBackData) -> None: ...
    def step_end(self, cb_data: TrainCallBackData) -> None: ...


class LossMonitor(TrainCallBack):
    """Sums the loss (the first 1-element output) per epoch; prints
    ``<epoch>.<step>:\\tLoss is <loss>`` every ``print_every_n_steps`` steps and
    ``Epoch (<epoch>):\\tLoss is <average>`` at each epoch end."""

    def __init__(self, print_every_n_steps: int = INT_MAX):
        self.print_every_n = int(print_every_n_steps)
        self.losses: list[tuple[int, float]] = []

    def begin(self, cb_data):
        if cb_data.epoch == 0:
            self.losses = []

    def epoch_begin(self, cb_data):
        self.losses.append((cb_data.epoch, 0.0))

    def step_end(self, cb_data):
        for t in cb_data.model.get_outputs():
            if t.element_num == 1:
                loss = float(t.get_data_to_numpy().reshape(-1)[0])
                epoch, total = self.losses[-1]
                self.losses[-1] = (epoch, total + loss)
                if self.print_every_n > 0 and (cb_data.step + 1) % self.print_every_n == 0:
                    print(f"{cb_data.epoch + 1}.{cb_data.step + 1}:\tLoss is {fmt(loss)}")
                return

    def epoch_end(self, cb_data):
        epoch, total = self.losses[-1]
        if cb_data.step > 0:
            total /= cb_data.step + 1
        self.losses[-1] = (epoch, total)
        if self.print_every_n > 0:
            print(f"Epoch ({cb_data.epoch + 1}):\tLoss is {fmt(total)}")
        return RetValue.CONTINUE

    def get_loss_points(self) -> list[tuple[int, float]]:
        return list(self.losses)


def _sparse_accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    if labels.ndim != 1 or predictions.ndim != 2:
        return 0.0  # Lite warns and counts 0
    return float(np.mean(np.argmax(predictions, axis=1) == labels))


def _one_hot_accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    if labels.ndim != 2 or predictions.shape != labels.shape:
        return 0.0
    return float(np.mean(np.argmax(predictions, axis=1) == np.argmax(labels, axis=1)))


def classification_accuracy(label, prediction) -> float:
    """Lite's CalculateSparseClassification (int32 labels) / CalculateOneHotClassification."""
    labels = label.get_data_to_numpy()
    predictions = prediction.get_data_to_numpy()
    if labels.dtype == np.int32:
        return _sparse_accuracy(labels, predictions)
    return _one_hot_accuracy(labels, predictions)


def _pairs_accuracy(inputs, outputs, input_indexes, output_indexes) -> float | None:
    total = 0.0
    for i, o in zip(input_indexes, output_indexes):
        if i >= len(inputs) or o >= len(outputs):
            return None  # Lite: "indices ... is outside of input/output range"
        total += classification_accuracy(inputs[i], outputs[o])
    return total


class TrainAccuracy(TrainCallBack):
    """Classification accuracy of the predictions during training; prints
    ``Epoch (<epoch>):\\tTraining Accuracy is <average>`` every ``print_every_n`` epochs."""

    def __init__(self, print_every_n: int = INT_MAX, accuracy_metrics=METRICS_CLASSIFICATION,
                 input_indexes=(1,), output_indexes=(0,)):
        self.print_every_n = int(print_every_n)
        self.input_indexes, self.output_indexes = list(input_indexes), list(output_indexes)
        self.accuracies: list[tuple[int, float]] = []

    def begin(self, cb_data):
        if cb_data.epoch == 0:
            self.accuracies = []

    def epoch_begin(self, cb_data):
        self.accuracies.append((cb_data.epoch, 0.0))

    def step_end(self, cb_data):
        m = cb_data.model
        acc = _pairs_accuracy(m.get_inputs(), m.get_predictions(), self.input_indexes,
                              self.output_indexes)
        if acc is not None:
            epoch, total = self.accuracies[-1]
            self.accuracies[-1] = (epoch, total + acc)

    def epoch_end(self, cb_data):
        epoch, total = self.accuracies[-1]
        if cb_data.step > 0:
            total /= cb_data.step + 1
        self.accuracies[-1] = (epoch, total)
        if (cb_data.epoch + 1) % self.print_every_n == 0:
            print(f"Epoch ({cb_data.epoch + 1}):\tTraining Accuracy is {fmt(total)}")
        return RetValue.CONTINUE

    def get_accuracy_points(self) -> list[tuple[int, float]]:
        return list(self.accuracies)


class Metrics:
    """mindspore::Metrics: ``clear``, ``update(inputs, outputs)``, ``eval``."""

    def clear(self) -> None: ...
    def update(self, inputs, outputs) -> None: ...

    def eval(self) -> float:
        return 0.0


class AccuracyMetrics(Metrics):
    """Mean classification accuracy over the evaluated batches (prints nothing)."""

    def __init__(self, accuracy_metrics=METRICS_CLASSIFICATION, input_indexes=(1,),
                 output_indexes=(0,)):
        self.input_indexes, self.output_indexes = list(input_indexes), list(output_indexes)
        self.total_accuracy = self.total_steps = 0.0

    def clear(self):
        self.total_accuracy = self.total_steps = 0.0

    def update(self, inputs, outputs):
        for i, o in zip(self.input_indexes, self.output_indexes):
            acc = _pairs_accuracy(inputs, outputs, [i], [o])
            if acc is None:
                return
            self.total_accuracy += acc
            self.total_steps += 1.0

    def eval(self) -> float:
        return self.total_accuracy / self.total_steps if self.total_steps else 0.0


class CkptSaver(TrainCallBack):
    """Exports the train model as ``<prefix>_trained_<epoch>.ms`` every ``save_every_n``
    epochs (atomically: a crash leaves the previous checkpoint intact)."""

    def __init__(self, save_every_n: int, filename_prefix: str):
        self.save_every_n, self.prefix = int(save_every_n), str(filename_prefix)
        self.saved: list[str] = []

    def epoch_end(self, cb_data):
        if (cb_data.epoch + 1) % self.save_every_n == 0:
            path = f"{self.prefix}_trained_{cb_data.epoch + 1}.ms"
            cb_data.model.export(path)
            self.saved.append(path)
        return RetValue.CONTINUE


def step_lr_lambda(lr: float, epoch: int, data) -> float | None:
    """Lite's StepLRLambda: ``lr * gamma`` when ``(epoch + 1) % step_size == 0``."""
    if data.step_size <= 0:
        return None  # Lite: "lr data step size need bigger than 0."
    return lr * data.gamma if (epoch + 1) % data.step_size == 0 else None


def multiplicative_lr_lambda(lr: float, epoch: int, data) -> float | None:
    """Lite's MultiplicativeLRLambda: ``lr * factor`` every time."""
    return lr * float(data)


@dataclass
class StepLRLambda:
    """Lite's StepLRLambda struct; also callable as the lambda itself."""

    step_size: int
    gamma: float

    def __call__(self, lr: float, epoch: int, data=None) -> float | None:
        return step_lr_lambda(lr, epoch, self)


@dataclass
class MultiplicativeLRLambda:
    factor: float

    def __call__(self, lr: float, epoch: int, data=None) -> float | None:
        return multiplicative_lr_lambda(lr, epoch, self.factor)


class LRScheduler(TrainCallBack):
    """Every ``step`` epochs at epoch end: ``new = lambda_func(lr, epoch, lr_cb_data)``; a
    float sets the learning rate, None (DONT_UPDATE_LR) keeps it. A failing set is EXIT."""

    def __init__(self, lambda_func, lr_cb_data=None, step: int = 1):
        self.lambda_func, self.data, self.step = lambda_func, lr_cb_data, int(step)

    def epoch_end(self, cb_data):
        if (cb_data.epoch + 1) % self.step == 0:
            model = cb_data.model
            new = self.lambda_func(model.get_learning_rate(), cb_data.epoch, self.data)
            if new is not None:
                try:
                    model.set_learning_rate(float(new))
                except TodkitError:
                    return RetValue.EXIT
        return RetValue.CONTINUE


class TimeMonitor(TrainCallBack):
    """Epoch and step timing (seconds)."""

    def __init__(self):
        self.epoch_seconds: list[float] = []
        self._t0 = 0.0

    def epoch_begin(self, cb_data):
        self._t0 = time.perf_counter()

    def epoch_end(self, cb_data):
        self.epoch_seconds.append(time.perf_counter() - self._t0)
        return RetValue.CONTINUE
