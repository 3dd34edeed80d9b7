"""Model.train / Model.evaluate: MindSpore Lite's TrainLoop (src/train/train_loop.cc).

Train: train mode; ``begin`` on every callback; per epoch ``epoch_begin``, then per batch:
load it into the inputs, ``step_begin``, run_step, ``step_end``; then ``epoch_end`` on every
callback: STOP_TRAINING ends the loop after this epoch, EXIT is an error; finally ``end``.
Evaluate: eval mode; metrics cleared; ``begin``, ``epoch_begin``; per batch load,
``step_begin`` (step counted from 1 there, as Lite), run, ``step_end``, metrics updated with
the predictions; ``epoch_end``, ``end``.
"""

from __future__ import annotations

import numpy as np

from todkit.core.errors import RET_ERROR, InputTensorError, ParamError, TodkitError
from todkit.lite.callbacks import Metrics, RetValue, TrainCallBackData


def load_batch(model, batch) -> None:
    """Copy one ``(data, label, ...)`` batch into the model's inputs, in input order (a
    model with its own ``load_batch``, the transfer model's feature cache, does it itself)."""
    own = getattr(model, "load_batch", None)
    if own is not None:
        own(batch)
        return
    inputs = model.get_inputs()
    if len(batch) != len(inputs):
        raise InputTensorError(f"a dataset batch has {len(batch)} arrays but the model has "
                               f"{len(inputs)} inputs ({', '.join(t.name for t in inputs)})")
    for t, arr in zip(inputs, batch):
        t.set_data_from_numpy(np.ascontiguousarray(arr))


def _check_callbacks(callbacks) -> None:
    for cb in callbacks:
        if cb is None:
            raise ParamError("callback cannot be None")


def train(model, epochs: int, dataset, callbacks) -> None:
    if epochs < 0:
        raise ParamError(f"train: epochs must be >= 0, got {epochs}")
    _check_callbacks(callbacks)
    if epochs > 1 and iter(dataset) is dataset:
        # A generator or other one-shot iterator would be empty from the second epoch on.
        raise ParamError(f"train: the dataset is a one-shot iterator ({type(dataset).__name__})"
                         f" and cannot be read for {epochs} epochs; pass a re-iterable "
                         "dataset such as lite.ArrayDataset or a list of batches")
    model.set_train_mode(True)
    data = TrainCallBackData(train_mode=True, epoch=0, step=0, model=model)
    for cb in callbacks:
        cb.begin(data)
    for epoch in range(epochs):
        data.epoch, data.step = epoch, 0
        for cb in callbacks:
            cb.epoch_begin(data)
        batches = (model.epoch_batches(dataset) if hasattr(model, "epoch_batches")
                   else dataset)
        for step, batch in enumerate(batches):
            load_batch(model, batch)
            data.step = step
            for cb in callbacks:
                cb.step_begin(data)
            model.run_step()
            for cb in callbacks:
                cb.step_end(data)
        stop = False
        for cb in callbacks:
            ret = cb.epoch_end(data)
            if ret == RetValue.EXIT:
                raise TodkitError(f"Error in TrainLoop callback: {type(cb).__name__} "
                                  f"returned EXIT at epoch {epoch + 1}", RET_ERROR)
            stop = stop or ret == RetValue.STOP_TRAINING
        if stop:
            break
    for cb in callbacks:
        cb.end(data)


def evaluate(model, dataset, callbacks) -> list[float]:
    _check_callbacks(callbacks)
    metrics = [m for m in model.get_metrics()]
    metrics += [cb for cb in callbacks if isinstance(cb, Metrics) and cb not in metrics]
    callbacks = [cb for cb in callbacks if not isinstance(cb, Metrics)]
    model.set_train_mode(False)
    for m in metrics:
        m.clear()
    data = TrainCallBackData(train_mode=False, epoch=0, step=0, model=model)
    for cb in callbacks:
        cb.begin(data)
    for cb in callbacks:
        cb.epoch_begin(data)
    for step, batch in enumerate(dataset, start=1):
        load_batch(model, batch)
        data.step = step
        for cb in callbacks:
            cb.step_begin(data)
        model.run_step()
        for cb in callbacks:
            cb.step_end(data)
        inputs, predictions = model.get_inputs(), model.get_predictions()
        for m in metrics:
            m.update(inputs, predictions)
    for cb in callbacks:
        cb.epoch_end(data)
    for cb in callbacks:
        cb.end(data)
    return [m.eval() for m in metrics]
