"""Inference-only export of a trained model with BatchNorm and Dropout: Dropout is removed,
BatchNorm runs on its moving statistics, and the reloaded file predicts what eval mode did."""

from __future__ import annotations

import numpy as np

import todkit as M
from todkit import lite, nn
from todkit.converter.convert import convert
from todkit.formats import ms


class Net(nn.Cell):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, pad_mode="valid", has_bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.flat = nn.Flatten()
        self.drop = nn.Dropout(p=0.5)
        self.fc = nn.Dense(4 * 6 * 6, 3)

    def construct(self, x):
        return self.fc(self.drop(self.flat(self.relu(self.bn(self.conv(x))))))


def test_inference_export_drops_dropout_and_freezes_batchnorm(tmp_path):
    M.set_seed(0)
    net = Net()
    loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    train_net = nn.TrainOneStepCell(nn.WithLossCell(net, loss),
                                    nn.Momentum(net.trainable_params(), 0.05, 0.9))
    train_net.set_train()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 1, 8, 8)).astype(np.float32)
    y = np.array([0, 1, 2, 1], np.int32)
    M.export(train_net, M.Tensor(x), M.Tensor(y), file_name=str(tmp_path / "bnd"))
    convert(str(tmp_path / "bnd.mindir"), str(tmp_path / "bnd"), train_model=True)
    train_ops = ms.read(str(tmp_path / "bnd.ms")).graph.op_counts()
    assert train_ops["Dropout"] == 1 and train_ops["BatchNormGrad"] == 1

    model = lite.Model()
    model.build_from_file(str(tmp_path / "bnd.ms"), lite.ModelType.MINDIR_LITE, lite.Context(),
                          train_cfg=lite.TrainCfg())
    data, label = model.get_inputs()
    data.set_data_from_numpy(x.transpose(0, 2, 3, 1))  # converted models take NHWC
    label.set_data_from_numpy(y)
    model.set_train_mode(True)
    for _ in range(3):
        model.run_step()
    model.set_train_mode(False)
    eval_logits = model.predict([data])[0].get_data_to_numpy()
    # eval mode is deterministic: Dropout off, BatchNorm on the moving statistics
    np.testing.assert_array_equal(eval_logits, model.predict([data])[0].get_data_to_numpy())

    model.export(str(tmp_path / "infer.ms"), export_inference_only=True)
    graph = ms.read(str(tmp_path / "infer.ms")).graph
    ops = graph.op_counts()
    assert "Dropout" not in ops and "BatchNormGrad" not in ops and "ApplyMomentum" not in ops
    assert [n.attrs["is_training"] for n in graph.nodes if n.op == "BatchNorm"] == [False]
    assert [v.name for v in graph.inputs] == ["inputs0"]

    reloaded = lite.Model()
    reloaded.build_from_file(str(tmp_path / "infer.ms"), lite.ModelType.MINDIR_LITE,
                             lite.Context())
    (rdata,) = reloaded.get_inputs()
    rdata.set_data_from_numpy(x.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(reloaded.predict([rdata])[0].get_data_to_numpy(), eval_logits)
