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
"""

from todkit.lite.config import Context, CPUDeviceInfo, ModelType, TrainCfg
from todkit.lite.model import Model
from todkit.lite.tensor import DataType, Format, Tensor

__all__ = ["CPUDeviceInfo", "Context", "DataType", "Format", "Model", "ModelType", "Tensor",
           "TrainCfg"]
