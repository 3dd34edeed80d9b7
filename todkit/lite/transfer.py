"""Transfer learning as MindSpore Lite does it (TransferSession / Model::BuildTransferLearning):
an inference backbone .ms (converted with --trainModel=false) feeds a trainable head .ms;
only the head trains. The model's inputs are the backbone's data input and the head's
label input(s); a step runs the backbone, copies its output into the head's data input and
runs the head.

Beyond Lite: ``feature_cache=True``. The backbone is frozen, so when it is also
deterministic (no Dropout or other random op) its output for a sample never changes: each
sample's features are computed once, keyed by a hash of the sample's bytes (so shuffling
and re-batching still hit), and later epochs run only the head. Trained through ``train`` on
a ``lite.ArrayDataset``, the cache is kept per sample index instead (the dataset's arrays
are taken as fixed): a batch whose samples all have features never touches the image data
(no gather, no copy, no hash), so a later epoch costs the head's steps and a gather of the
cached rows.
"""

from __future__ import annotations

import os

import numpy as np

from todkit.core.digest import digest16
from todkit.core.errors import ParamError
from todkit.ir.graph import Graph
from todkit.lite import loop
from todkit.lite.config import Context, ModelType, QuantizationType, TrainCfg
from todkit.lite.dataset import ArrayDataset
from todkit.lite.model import Model
from todkit.lite.tensor import Tensor
from todkit.runtime.export import copy_subgraph, write_ms

RANDOM_OPS = frozenset({"Dropout", "DropoutGenMask", "DropoutDoMask", "UniformReal",
                        "StandardNormal", "RandomChoiceWithMask"})


def build_transfer_learning(backbone, head, context: Context | None = None,
                            train_cfg: TrainCfg | None = None,
                            feature_cache: bool = False) -> TransferModel:
    """Load ``backbone`` (inference .ms path) and ``head`` (train .ms path) as one model."""
    bb, hd = Model(), Model()
    bb.build_from_file(backbone, ModelType.MINDIR_LITE, context)
    hd.build_from_file(head, ModelType.MINDIR_LITE, context, train_cfg=train_cfg)
    return TransferModel(bb, hd, feature_cache=feature_cache,
                         where=f"{os.fspath(backbone)!r} + {os.fspath(head)!r}")


class TransferModel:
    def __init__(self, backbone: Model, head: Model, feature_cache: bool = False,
                 where: str = "transfer model"):
        self.backbone, self.head = backbone, head
        bs, hs = backbone.session, head.session
        if not bs.roles.is_inference_model:
            raise ParamError(f"{where}: the backbone must be an inference model "
                             "(converted with --trainModel=false)")
        (feat,) = bs.roles.eval_outputs if len(bs.roles.eval_outputs) == 1 else (None,)
        data_inputs = hs.roles.inference_inputs
        if feat is None or len(data_inputs) != 1:
            raise ParamError(f"{where}: the backbone needs one output and the head one data "
                             "input")
        self._head_data = head.get_input_by_tensor_name(data_inputs[0].name)
        if tuple(self._head_data.shape) != feat.type.shape:
            raise ParamError(f"{where}: backbone output {feat.name!r} has shape "
                             f"{list(feat.type.shape)} but head input {self._head_data.name!r} "
                             f"takes {self._head_data.shape}")
        random_ops = sorted({n.op for n in bs.graph.nodes} & RANDOM_OPS)
        if feature_cache and random_ops:
            raise ParamError(f"{where}: feature_cache needs a deterministic backbone; it has "
                             f"{', '.join(random_ops)}")
        self.feature_cache = feature_cache
        self._cache: dict[bytes, np.ndarray] = {}
        self.backbone_runs = 0  # backbone batches computed (the cache saves the others)
        self._bb_input = backbone.get_inputs()[0]
        self._labels = [t for t in head.get_inputs() if t.name != self._head_data.name]
        self._metrics: list = []
        # Per ArrayDataset (by id; the dataset is held so the id stays its own): features
        # by sample index and which indices have them.
        self._by_index: dict[int, tuple[ArrayDataset, np.ndarray, np.ndarray]] = {}
        self._loaded: tuple | None = None  # what load_batch left for run_step

    # -- the Model API the train loop and users need ----------------------------------------
    def get_inputs(self) -> list[Tensor]:
        return [self._bb_input, *self._labels]

    def get_outputs(self) -> list[Tensor]:
        return self.head.get_outputs()

    def get_predictions(self) -> list[Tensor]:
        return self.head.get_predictions()

    def set_train_mode(self, train: bool) -> None:
        self.head.set_train_mode(train)

    def get_train_mode(self) -> bool:
        return self.head.get_train_mode()

    def set_learning_rate(self, lr: float) -> None:
        self.head.set_learning_rate(lr)

    def get_learning_rate(self) -> float:
        return self.head.get_learning_rate()

    def init_metrics(self, metrics) -> None:
        self._metrics = list(metrics)

    def get_metrics(self) -> list:
        return list(self._metrics)

    def _features(self) -> np.ndarray:
        x = self._bb_input.get_data_to_numpy()
        if not self.feature_cache:
            self.backbone_runs += 1
            return self.backbone.predict([x])[0].get_data_to_numpy()
        keys = [digest16(row.tobytes()) for row in x]
        if all(k in self._cache for k in keys):
            return np.stack([self._cache[k] for k in keys])
        self.backbone_runs += 1
        feats = self.backbone.predict([x])[0].get_data_to_numpy()
        for k, f in zip(keys, feats):
            self._cache[k] = f
        return feats

    def run_step(self, before_callback=None, after_callback=None) -> bool:
        loaded, self._loaded = self._loaded, None
        if loaded is None or loaded[0] != "cached":
            if loaded is not None:  # ("index", state, idx): compute and keep per index
                _, (_, feats, have), idx = loaded
                self.backbone_runs += 1
                out = self.backbone.predict([self._bb_input.get_data_to_numpy()])[0]
                out = out.get_data_to_numpy()
                feats[idx], have[idx] = out, True
            else:
                out = self._features()
            self._head_data.set_data_from_numpy(out)
        return self.head.run_step(before_callback, after_callback)

    # -- the train loop's hooks (todkit/lite/loop.py) -----------------------------------------
    def epoch_batches(self, dataset):
        """One epoch of ``dataset``'s batches; with the feature cache and an ArrayDataset,
        batches whose samples all have cached features come as their features."""
        if not (self.feature_cache and isinstance(dataset, ArrayDataset)
                and len(dataset.arrays) == 1 + len(self._labels)):
            yield from dataset
            return
        state = self._by_index.get(id(dataset))
        if state is None:
            n = dataset.num_samples
            shape = (n, *self._head_data.shape[1:])
            state = (dataset, np.zeros(shape, self._head_data._array.dtype), np.zeros(n, bool))
            self._by_index[id(dataset)] = state
        _, feats, have = state
        data, *labels = dataset.arrays
        for idx in dataset.iter_indices():
            if have[idx].all():
                yield _Batch(("cached",), [feats[idx], *(a[idx] for a in labels)])
            else:
                yield _Batch(("index", state, idx), [data[idx], *(a[idx] for a in labels)])

    def load_batch(self, batch) -> None:
        """Fill the inputs from one batch (``loop.load_batch`` defers to this)."""
        from todkit.lite.loop import load_batch

        tag = getattr(batch, "tag", None)
        if tag is None or tag[0] != "cached":
            load_batch(_Inputs(self.get_inputs()), batch)
            self._loaded = tag
            return
        self._head_data.set_data_from_numpy(batch[0])
        for t, arr in zip(self._labels, batch[1:]):
            t.set_data_from_numpy(arr)
        self._loaded = tag

    def predict(self, inputs) -> list[Tensor]:
        x = inputs[0].get_data_to_numpy() if isinstance(inputs[0], Tensor) else inputs[0]
        feats = self.backbone.predict([np.asarray(x)])[0].get_data_to_numpy()
        return self.head.predict([feats])

    def train(self, epochs: int, train_dataset, train_callbacks=()) -> None:
        loop.train(self, epochs, train_dataset, list(train_callbacks))

    def evaluate(self, eval_dataset, eval_callbacks=()) -> list[float]:
        return loop.evaluate(self, eval_dataset, list(eval_callbacks))

    def export(self, path, export_inference_only: bool = False,
               quantization_type=QuantizationType.NO_QUANT, output_tensor_names=None) -> None:
        """Train export: the head's train model (as Lite's TransferSession). Inference
        export: backbone and head inference joined into one model."""
        if not export_inference_only:
            self.head.export(path, False, quantization_type, output_tensor_names)
            return
        write_ms(self.joined_inference_graph(), path, name=self.head.name,
                 version=self.head.version)

    def joined_inference_graph(self) -> Graph:
        bs, hs = self.backbone.session, self.head.session
        bb = copy_subgraph(bs.graph, bs.roles.inference_nodes, bs.roles.eval_outputs)
        hd = copy_subgraph(hs.graph, hs.roles.inference_nodes, hs.roles.eval_outputs)
        g = Graph(f"{bb.name}+{hd.name}")
        new = {}
        for v in bb.inputs:
            new[id(v)] = g.add_input(v.name, v.type)
        new[id(hd.inputs[0])] = None  # filled by the backbone output below
        for src in (bb, hd):
            for c in src.consts:
                new[id(c)] = g.add_const(c.name, c.data, param=c.param, dtype=c.type.dtype,
                                         unique=True)
                new[id(c)].format = c.format
            for n in src.nodes:
                ins = [new[id(v)] for v in n.inputs]
                copy = g.add_node(n.op, ins, n.attrs, [v.type for v in n.outputs], name=n.name,
                                  out_names=[g.unique_name(v.name) for v in n.outputs])
                for old, v in zip(n.outputs, copy.outputs):
                    v.format = old.format
                    new[id(old)] = v
            if src is bb:
                new[id(hd.inputs[0])] = new[id(bb.outputs[0])]
        g.outputs = [new[id(v)] for v in hd.outputs]
        return g


class _Batch(tuple):
    """A batch with a ``tag`` saying where it came from (the feature cache's bookkeeping)."""

    def __new__(cls, tag, arrays):
        b = super().__new__(cls, arrays)
        b.tag = tag
        return b


class _Inputs:
    """Input tensors shaped as a model for ``loop.load_batch``."""

    def __init__(self, inputs):
        self._inputs = inputs

    def get_inputs(self):
        return self._inputs
