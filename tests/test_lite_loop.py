"""Model.train / evaluate: Lite's callback order, the lines its callbacks print, LR
schedulers, checkpoints, datasets."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_runtime_graphs import BATCH, IN, OUT, train_graph
from todkit import lite
from todkit.core.errors import InputTensorError, ParamError, TodkitError


def data(n=8, seed=3):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, IN)).astype(np.float32),
            rng.integers(0, OUT, n).astype(np.int32))


class Recorder(lite.TrainCallBack):
    def __init__(self, log, tag, stop_at=None, ret=lite.RetValue.STOP_TRAINING):
        self.log, self.tag, self.stop_at, self.ret = log, tag, stop_at, ret

    def begin(self, d):
        self.log.append((self.tag, "begin", d.epoch, d.step))

    def epoch_begin(self, d):
        self.log.append((self.tag, "epoch_begin", d.epoch, d.step))

    def step_begin(self, d):
        self.log.append((self.tag, "step_begin", d.epoch, d.step))

    def step_end(self, d):
        self.log.append((self.tag, "step_end", d.epoch, d.step))

    def epoch_end(self, d):
        self.log.append((self.tag, "epoch_end", d.epoch, d.step))
        return self.ret if d.epoch == self.stop_at else lite.RetValue.CONTINUE

    def end(self, d):
        self.log.append((self.tag, "end", d.epoch, d.step))


def test_callback_order_and_stop():
    model = lite.Model._from_graph(train_graph("sgd"))
    log = []
    ds = lite.ArrayDataset(*data(4), batch_size=BATCH)
    model.train(5, ds, [Recorder(log, "a", stop_at=1), Recorder(log, "b")])
    want = [("a", "begin", 0, 0), ("b", "begin", 0, 0)]
    for e in range(2):  # "a" stops training after epoch 2 (index 1)
        want += [("a", "epoch_begin", e, 0), ("b", "epoch_begin", e, 0)]
        for s in range(2):
            want += [("a", "step_begin", e, s), ("b", "step_begin", e, s),
                     ("a", "step_end", e, s), ("b", "step_end", e, s)]
        want += [("a", "epoch_end", e, 1), ("b", "epoch_end", e, 1)]
    want += [("a", "end", 1, 1), ("b", "end", 1, 1)]
    assert log == want
    assert model.get_train_mode()


def test_exit_from_a_callback_is_an_error():
    model = lite.Model._from_graph(train_graph("sgd"))
    with pytest.raises(TodkitError, match="Error in TrainLoop callback.*epoch 1"):
        model.train(3, lite.ArrayDataset(*data(4), batch_size=BATCH),
                    [Recorder([], "a", stop_at=0, ret=lite.RetValue.EXIT)])


def test_loss_monitor_and_train_accuracy_print_as_lite(capsys):
    model = lite.Model._from_graph(train_graph("momentum", lr=0.1))
    x, y = data(8)
    lm, acc = lite.LossMonitor(2), lite.TrainAccuracy(1)
    model.train(2, lite.ArrayDataset(x, y, batch_size=BATCH), [lm, acc])
    lines = capsys.readouterr().out.splitlines()
    # Per epoch: step lines every 2 steps, then the epoch average, then accuracy.
    assert [ln.split(":")[0] for ln in lines] == ["1.2", "1.4", "Epoch (1)", "Epoch (1)",
                                                  "2.2", "2.4", "Epoch (2)", "Epoch (2)"]
    assert lines[0].startswith("1.2:\tLoss is ") and "\tTraining Accuracy is " in lines[3]
    (e0, avg0), (e1, avg1) = lm.get_loss_points()
    assert (e0, e1) == (0, 1) and lines[2] == f"Epoch (1):\tLoss is {avg0:g}"
    assert avg1 < avg0
    # The average accuracy equals the accuracy of the predictions step by step.
    ref = lite.Model._from_graph(train_graph("momentum", lr=0.1))
    accs = []
    for k in range(4):
        ref.get_inputs()[0].set_data_from_numpy(x[2 * k:2 * k + 2])
        ref.get_inputs()[1].set_data_from_numpy(y[2 * k:2 * k + 2])
        ref.run_step()
        pred = ref.get_predictions()[0].get_data_to_numpy()
        accs.append(np.mean(pred.argmax(1) == y[2 * k:2 * k + 2]))
    assert acc.get_accuracy_points()[0] == (0, pytest.approx(np.mean(accs)))
    assert lines[3] == f"Epoch (1):\tTraining Accuracy is {np.float32(np.mean(accs)):g}"


def test_lr_schedulers():
    model = lite.Model._from_graph(train_graph("sgd", lr=0.1))
    ds = lite.ArrayDataset(*data(2), batch_size=BATCH)
    model.train(4, ds, [lite.LRScheduler(lite.step_lr_lambda, lite.StepLRLambda(2, 0.5))])
    assert model.get_learning_rate() == pytest.approx(0.1 * 0.5 ** 2)
    model.train(3, ds, [lite.LRScheduler(lite.MultiplicativeLRLambda(0.1))])
    assert model.get_learning_rate() == pytest.approx(0.025 * 0.1 ** 3)
    seen = []

    def user(lr, epoch, data):
        seen.append((round(lr, 8), epoch, data))
        return 0.5 if epoch == 1 else None

    model.train(4, ds, [lite.LRScheduler(user, "ctx", step=2)])
    assert [(e, d) for _, e, d in seen] == [(1, "ctx"), (3, "ctx")]
    assert model.get_learning_rate() == pytest.approx(0.5)
    with pytest.raises(TodkitError, match="EXIT"):  # a negative lr cannot be set
        model.train(1, ds, [lite.LRScheduler(lambda lr, e, d: -1.0)])


def test_ckpt_saver_writes_loadable_checkpoints(tmp_path):
    model = lite.Model._from_graph(train_graph("adam"))
    prefix = str(tmp_path / "tiny")
    saver = lite.CkptSaver(2, prefix)
    model.train(4, lite.ArrayDataset(*data(4), batch_size=BATCH), [saver])
    assert saver.saved == [f"{prefix}_trained_2.ms", f"{prefix}_trained_4.ms"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny_trained_2.ms",
                                                          "tiny_trained_4.ms"]
    back = lite.Model()
    back.build_from_file(saver.saved[-1], lite.ModelType.MINDIR_LITE, lite.Context(),
                         lite.TrainCfg())
    np.testing.assert_array_equal(back.session.graph.value("fc.weight").data,
                                  model.session.graph.value("fc.weight").data)


def test_evaluate_with_accuracy_metrics():
    model = lite.Model._from_graph(train_graph("momentum", lr=0.2))
    x, y = data(8)
    ds = lite.ArrayDataset(x, y, batch_size=BATCH)
    model.train(3, ds, [])
    log = []
    metric = lite.AccuracyMetrics()
    model.init_metrics([metric])
    (acc,) = model.evaluate(ds, [Recorder(log, "r")])
    assert not model.get_train_mode()
    logits = np.concatenate([model.predict([x[k:k + 2]])[0].get_data_to_numpy()
                             for k in range(0, 8, 2)])
    assert acc == pytest.approx(np.mean(logits.argmax(1) == y)) and metric.eval() == acc
    assert [e[1] for e in log[:2]] == ["begin", "epoch_begin"]
    assert [e[3] for e in log if e[1] == "step_begin"] == [1, 2, 3, 4]  # from 1, as Lite
    assert [e[1] for e in log[-2:]] == ["epoch_end", "end"]


def test_datasets_batch_shuffle_and_errors():
    x = np.arange(10, dtype=np.float32).reshape(5, 2)
    y = np.arange(5, dtype=np.int32)
    ds = lite.ArrayDataset(x, y, batch_size=2)
    assert len(ds) == 2 and [b[1].tolist() for b in ds] == [[0, 1], [2, 3]]
    assert len(lite.batches(x, y, batch_size=2, drop_remainder=False)) == 3
    shuffled = lite.ArrayDataset(x, y, batch_size=5, shuffle=True, seed=1)
    e1, e2 = (next(iter(shuffled))[1].tolist() for _ in range(2))
    assert sorted(e1) == [0, 1, 2, 3, 4] and e1 != e2  # a new order each epoch
    assert all((bx[:, 0] / 2 == by).all() for bx, by in shuffled)  # rows stay paired
    model = lite.Model._from_graph(train_graph("sgd"))
    with pytest.raises(InputTensorError, match="inputs0.*shape"):
        model.train(1, [(np.zeros((3, IN), np.float32), np.zeros(3, np.int32))], [])
    with pytest.raises(InputTensorError, match="1 arrays but the model has 2 inputs"):
        model.train(1, [(np.zeros((BATCH, IN), np.float32),)], [])
    one_shot = ((np.zeros((BATCH, IN), np.float32), np.zeros(BATCH, np.int32)) for _ in range(2))
    with pytest.raises(ParamError, match="one-shot iterator"):
        model.train(2, one_shot, [])  # a generator would be empty from epoch 2 on
    model.train(1, one_shot, [])  # one epoch of a generator is fine
