"""todkit.lite: the device API, shaped like mindspore_lite plus the train API in snake_case.

    model = lite.Model()
    model.build_from_file("lenet_tod.ms", lite.ModelType.MINDIR_LITE, lite.Context(),
                          train_cfg=lite.TrainCfg())
    data, label = model.get_inputs()
    data.set_data_from_numpy(x); label.set_data_from_numpy(y)
    model.run_step()                      # forward + backward + optimizer update
    loss = model.get_outputs()[0].get_data_to_numpy()
    model.set_train_mode(False); logits = model.predict([data])
    model.export("trained.ms"); model.export("infer.ms", export_inference_only=True)
    model.train(5, lite.ArrayDataset(x, y, batch_size=32, shuffle=True),
                [lite.LossMonitor(100), lite.TrainAccuracy(1)])
"""

from todkit.lite.callbacks import (
    DONT_UPDATE_LR,
    METRICS_CLASSIFICATION,
    METRICS_MULTILABEL,
    UPDATE_LR,
    AccuracyMetrics,
    CkptSaver,
    LossMonitor,
    LRScheduler,
    Metrics,
    MultiplicativeLRLambda,
    RetValue,
    StepLRLambda,
    TimeMonitor,
    TrainAccuracy,
    TrainCallBack,
    TrainCallBackData,
    multiplicative_lr_lambda,
    step_lr_lambda,
)
from todkit.lite.config import Context, CPUDeviceInfo, ModelType, QuantizationType, TrainCfg
from todkit.lite.dataset import ArrayDataset, batches
from todkit.lite.model import CallBackParam, Model
from todkit.lite.tensor import DataType, Format, Tensor
from todkit.lite.transfer import TransferModel, build_transfer_learning
from todkit.runtime.guard import NonFiniteError, NonFiniteWarning

__all__ = [
    "DONT_UPDATE_LR", "METRICS_CLASSIFICATION", "METRICS_MULTILABEL", "UPDATE_LR",
    "AccuracyMetrics", "ArrayDataset", "CPUDeviceInfo", "CallBackParam", "CkptSaver", "Context",
    "DataType", "Format", "LRScheduler", "LossMonitor", "Metrics", "Model", "ModelType",
    "MultiplicativeLRLambda", "NonFiniteError", "NonFiniteWarning", "QuantizationType",
    "RetValue", "StepLRLambda", "Tensor", "TimeMonitor", "TrainAccuracy", "TrainCallBack",
    "TrainCallBackData", "TrainCfg", "TransferModel", "batches", "build_transfer_learning",
    "multiplicative_lr_lambda", "step_lr_lambda",
]
