"""mindspore_lite.Model with MindSpore Lite's train API in snake_case.

``Model`` is a thin layer over ``todkit.runtime.Session``: it loads the .ms file through the
codec, hands the graph to the session, and wraps the session's arrays in ``Tensor``s made
once at build (inputs share one view in both modes; outputs have one view per mode).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from todkit.core.digest import digest16, digest16_file
from todkit.core.errors import GraphFileError, NotSupportedError, ParamError, TodkitError
from todkit.ir.graph import Graph
from todkit.lite import loop
from todkit.lite.config import Context, ModelType, QuantizationType, TrainCfg
from todkit.lite.tensor import Tensor
from todkit.runtime.export import patch_original
from todkit.runtime.quant import dequantize_weights
from todkit.runtime.session import Session

DEFAULT_VERSION = "MindSpore Lite 2.0.0"


class FileStamp:
    """What a model file was at load: size, mtime and a hash of its bytes. A train export
    re-reads the file and patches the current weights into it only if it still matches
    (the model does not keep the file's bytes: 17 MB on W3, 90 MB on W6)."""

    def __init__(self, path: str, st: os.stat_result, digest: bytes):
        self.path, self.size, self.mtime_ns = path, st.st_size, st.st_mtime_ns
        self.digest = digest

    def reread(self) -> bytes | None:
        """The file's bytes if it is unchanged since load, else None."""
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                if (st.st_size, st.st_mtime_ns) != (self.size, self.mtime_ns):
                    return None
                raw = f.read()
        except OSError:
            return None
        ok = digest16(raw) == self.digest
        return raw if ok else None


def read_ms_file(path, stamp: list | None = None):
    """The codec's ``MsModel`` of a .ms file; every failure names the file. With ``stamp``
    (a list), the file's ``FileStamp`` is appended to it."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise GraphFileError(f"model file {path!r} does not exist or is not a file")
    try:
        from todkit.formats import ms
    except ImportError as e:
        raise NotSupportedError(f"cannot read {path!r}: the .ms codec (todkit.formats.ms) is "
                                f"not available ({e})") from e
    try:
        with open(path, "rb") as f:
            if stamp is not None:
                stamp.append(FileStamp(path, os.fstat(f.fileno()), digest16_file(f)))
            # Mapped, not read: the weights are read one by one into their arrays, so a
            # load peaks at the weights, not at the file plus the weights.
            raw = ms.map_file(f)
        # Weight-quantized files (Lite's kWeightQuant export) are dequantized at load.
        plain = dequantize_weights(raw, path)
        return ms.read(plain if plain is not None else raw, where=path)
    except TodkitError as e:
        if path in str(e):
            raise
        err = GraphFileError(f"model file {path!r}: {e}")
        err.code = e.code
        raise err from e
    except Exception as e:
        raise GraphFileError(f"model file {path!r} is not a valid .ms model: "
                             f"{type(e).__name__}: {e}") from e


class Model:
    def __init__(self):
        self._session: Session | None = None
        self.name = ""
        self.version = DEFAULT_VERSION
        self.context: Context | None = None
        self.train_cfg: TrainCfg | None = None
        self._ms_model = None  # the codec's view of the file this model was built from

    # -- building ------------------------------------------------------------------------
    def build_from_file(self, model_path, model_type=ModelType.MINDIR_LITE,
                        context: Context | None = None, config_path: str = "",
                        config_dict: dict | None = None, train_cfg: TrainCfg | None = None):
        if not isinstance(model_type, ModelType):
            raise ParamError(f"model_type must be a ModelType, got {model_type!r}")
        stamp: list[FileStamp] = []
        ms_model = read_ms_file(model_path, stamp)
        ms_model.raw = None  # not kept: a train export re-reads the file (FileStamp)
        name = ms_model.name or os.path.splitext(os.path.basename(os.fspath(model_path)))[0]
        self._build(ms_model.graph, context, train_cfg, name, ms_model.version or DEFAULT_VERSION,
                    where=f"model file {os.fspath(model_path)!r}")
        self._ms_model = ms_model
        self._stamp = stamp[0]

    @classmethod
    def _from_graph(cls, graph: Graph, train_cfg: TrainCfg | None = None,
                    context: Context | None = None, name: str | None = None) -> Model:
        """A model built from an in-memory IR graph (tests, the front end's tools)."""
        model = cls()
        model._build(graph, context, train_cfg, name or graph.name, DEFAULT_VERSION,
                     where=f"graph {graph.name!r}")
        model._ms_model = None
        return model

    def _build(self, graph, context, train_cfg, name, version, where):
        self.context = context or Context()
        self.train_cfg = train_cfg or TrainCfg()
        self.name, self.version = name, version
        s = Session(graph, loss_names=self.train_cfg.loss_name,
                    accumulate_gradients=self.train_cfg.accumulate_gradients, where=where,
                    nonfinite=self.train_cfg.nonfinite,
                    blas_threads=self.context.blas_threads)
        self._session = s
        self._metrics: list = []
        self._inputs = [Tensor(name=v.name, _array=s.eval.array(v), _format=v.format)
                        for v in s.inputs]
        self._wrap_outputs()

    def _wrap_outputs(self) -> None:
        s = self._session

        def wrap(executor, values):
            return [Tensor(name=v.name, _array=executor.array(v), _format=v.format,
                           _writable=False) for v in values]

        self._eval_outputs = wrap(s.eval, s.roles.eval_outputs)
        self._train_outputs = wrap(s.train, s.roles.train_outputs) if s.train else []
        # Predictions stay readable after a train step (Lite's GetPredictions).
        self._train_predictions = wrap(s.train, s.roles.eval_outputs) if s.train else []

    def _require_built(self) -> Session:
        if self._session is None:
            raise TodkitError("the model is not built: call build_from_file first")
        return self._session

    @property
    def session(self) -> Session:
        """The runtime session (plans, roles, arrays), for tools and tests."""
        return self._require_built()

    # -- tensors -------------------------------------------------------------------------
    def get_inputs(self) -> list[Tensor]:
        self._require_built()
        return list(self._inputs)

    def get_outputs(self) -> list[Tensor]:
        return list(self._train_outputs if self.get_train_mode() else self._eval_outputs)

    def get_output_tensor_names(self) -> list[str]:
        return [t.name for t in self.get_outputs()]

    def get_input_by_tensor_name(self, tensor_name: str) -> Tensor:
        for t in self.get_inputs():
            if t.name == tensor_name:
                return t
        raise ParamError(f"get_input_by_tensor_name failed, input tensor name {tensor_name!r} "
                         "does not exist")

    def get_output_by_tensor_name(self, tensor_name: str) -> Tensor:
        extra = self._train_predictions if self.get_train_mode() else []
        for t in self.get_outputs() + extra:
            if t.name == tensor_name:
                return t
        raise ParamError(f"get_output_by_tensor_name failed, output tensor name "
                         f"{tensor_name!r} does not exist")

    # -- running -------------------------------------------------------------------------
    def set_train_mode(self, train: bool) -> None:
        self.session.set_train_mode(train)

    def get_train_mode(self) -> bool:
        return self.session.train_mode

    def run_step(self, before_callback=None, after_callback=None) -> bool:
        """Train mode: forward, backward and optimizer updates in place. Eval: inference.
        Callbacks ``f(inputs, outputs, CallBackParam) -> bool`` run around each kernel.
        Returns False if a NaN/Inf loss or gradient made the step skip its update
        (TrainCfg.nonfinite)."""
        if before_callback is None and after_callback is None and self._session is not None:
            return self._session.run_step()  # the plain step: no adapter closures per call
        return self.session.run_step(*_kernel_callbacks(before_callback, after_callback))

    def predict(self, inputs, before_callback=None, after_callback=None) -> list[Tensor]:
        """Eval outputs (the logits) for ``inputs`` (Tensors or arrays: every model input, or
        only the ones inference reads), without changing the mode."""
        s = self.session
        targets = self._inputs
        if len(inputs) != len(targets):
            read = {id(v) for v in s.roles.inference_inputs}
            targets = [t for t, v in zip(self._inputs, s.inputs) if id(v) in read]
        if len(inputs) != len(targets):
            raise ParamError(f"predict takes {len(self._inputs)} inputs (or the "
                             f"{len(targets)} inference reads), got {len(inputs)}")
        for target, src in zip(targets, inputs):
            target.set_data_from_numpy(src.get_data_to_numpy() if isinstance(src, Tensor)
                                       else np.asarray(src))
        s.run_eval(*_kernel_callbacks(before_callback, after_callback))
        return [Tensor(t.get_data_to_numpy(), name=t.name) for t in self._eval_outputs]

    def resize(self, inputs, dims) -> None:
        """Give ``inputs`` (model input Tensors) the shapes ``dims`` (e.g. another batch
        size): shapes are inferred again and memory re-planned. The input and output Tensor
        objects stay valid with their new shapes; input data is reset to zeros."""
        s = self.session
        if len(inputs) != len(dims):
            raise ParamError(f"resize: {len(inputs)} inputs but {len(dims)} shapes")
        s.resize({t.name: tuple(d) for t, d in zip(inputs, dims)})
        for t, v in zip(self._inputs, s.inputs):
            t._array = s.eval.array(v)
        self._wrap_outputs()

    # -- train loop ------------------------------------------------------------------------
    def train(self, epochs: int, train_dataset, train_callbacks=()) -> None:
        """Lite's Model::Train: ``epochs`` passes over ``train_dataset`` (an iterable of
        ``(data, label)`` NumPy batches, iterated again each epoch) with the callbacks."""
        loop.train(self, epochs, train_dataset, list(train_callbacks))

    def evaluate(self, eval_dataset, eval_callbacks=()) -> list[float]:
        """Lite's Model::Evaluate: one pass in eval mode updating the metrics (init_metrics
        and any Metrics among the callbacks); returns each metric's eval()."""
        return loop.evaluate(self, eval_dataset, list(eval_callbacks))

    def init_metrics(self, metrics) -> None:
        self._metrics = list(metrics)

    def get_metrics(self) -> list:
        return list(self._metrics)

    def get_predictions(self) -> list[Tensor]:
        """The eval outputs (logits), readable in either mode (Lite's GetPredictions)."""
        return list(self._train_predictions if self.get_train_mode() else self._eval_outputs)

    @property
    def nonfinite_skipped_steps(self) -> int:
        """Train steps whose update the non-finite guard skipped so far."""
        g = self.session.guard
        return g.skipped_steps if g else 0

    # -- optimizer control ---------------------------------------------------------------
    def set_learning_rate(self, lr: float) -> None:
        self.session.set_learning_rate(float(lr))

    def get_learning_rate(self) -> float:
        return self.session.get_learning_rate()

    def setup_virtual_batch(self, virtual_batch_multiplier: int, lr: float = -1.0,
                            momentum: float = -1.0) -> None:
        """Update the weights every ``virtual_batch_multiplier`` run_steps from the summed
        gradients (lr default: current lr / multiplier); <= 1 turns it off. Trained
        BatchNorms take ``momentum`` meanwhile as Lite 2.x does (through an int: below 1,
        their moving statistics hold still); see ``Session.setup_virtual_batch``."""
        self.session.setup_virtual_batch(int(virtual_batch_multiplier), float(lr),
                                         float(momentum))

    def get_trainable_params(self) -> list[Tensor]:
        return [Tensor(v.data.copy(), name=v.name, _format=v.format)
                for v in self.session.trainable_params()]

    def get_optimizer_params(self) -> list[Tensor]:
        return [Tensor(v.data.copy(), name=v.name) for v in self.session.optimizer_params()]

    def set_optimizer_params(self, params: list[Tensor]) -> None:
        """Set scalar hyper-parameters by tensor name (1-element float tensors only)."""
        by_name = {v.name: v for v in self.session.optimizer_params()}
        for t in params:
            v = by_name.get(t.name)
            if v is None:
                raise ParamError(f"set_optimizer_params: {t.name!r} is not an optimizer "
                                 f"parameter (known: {', '.join(sorted(by_name))})")
            _check_tensor("set_optimizer_params", t, v.data, "a 1-element float")
            v.data[...] = t.get_data_to_numpy().reshape(v.data.shape)

    def get_gradients(self) -> list[Tensor]:
        """Accumulated gradients (TrainCfg(accumulate_gradients=True)), named as in the graph."""
        return [Tensor(arr.copy(), name=v.name) for v, arr in self.session.gradients()]

    def apply_gradients(self, gradients: list[Tensor] | None = None) -> None:
        """Copy ``gradients`` (by name; size and dtype must match) into the sums, then one
        optimizer update."""
        sums = {v.name: arr for v, arr in self.session.gradients()}
        for t in gradients or []:
            arr = sums.get(t.name)
            if arr is None:
                raise ParamError(f"apply_gradients: no gradient named {t.name!r} (known: "
                                 f"{', '.join(sums) or 'none: accumulate_gradients is off'})")
            _check_tensor("apply_gradients", t, arr)
        for t in gradients or []:
            sums[t.name][...] = t.get_data_to_numpy().reshape(sums[t.name].shape)
        self.session.apply_gradients()

    def get_feature_maps(self) -> list[Tensor]:
        """Every constant float32 tensor (weights, optimizer state), as Lite's GetFeatureMaps."""
        return [Tensor(c.data.copy(), name=c.name, _format=c.format)
                for c in self.session.graph.consts if c.data.dtype == np.float32]

    def update_feature_maps(self, feature_maps: list[Tensor]) -> None:
        """Copy each tensor into the constant of the same name (size and dtype must match);
        all are checked before any is copied."""
        by_name = {c.name: c for c in self.session.graph.consts}
        for t in feature_maps:
            c = by_name.get(t.name)
            if c is None:
                raise ParamError(f"update_feature_maps: no such constant tensor {t.name!r}")
            _check_tensor("update_feature_maps", t, c.data)
        for t in feature_maps:
            c = by_name[t.name]
            c.data[...] = t.get_data_to_numpy().reshape(c.data.shape)

    # -- saving --------------------------------------------------------------------------
    def export(self, path, export_inference_only: bool = False,
               quantization_type: QuantizationType = QuantizationType.NO_QUANT,
               output_tensor_names=None) -> None:
        """Lite's Serialization::ExportModel to a .ms file, written atomically (temp file,
        fsync, rename). Train export of an unchanged file patches the current weights into
        the original file (re-read, checked unchanged since load), as Lite does; otherwise
        the graph is written anew.
        ``output_tensor_names`` (inference export only, as Lite) keeps only what computes
        those tensors; ``WEIGHT_QUANT`` stores multi-dimensional weights as int8."""
        from todkit.runtime.export import export_bytes

        s, path = self.session, os.fspath(path)
        quantization_type = QuantizationType(quantization_type)
        if quantization_type == QuantizationType.FULL_QUANT:
            raise NotSupportedError("export: FULL_QUANT is not supported (NO_QUANT or "
                                    "WEIGHT_QUANT)")
        quant = quantization_type == QuantizationType.WEIGHT_QUANT
        if not export_inference_only and not quant and self._ms_model is not None:
            raw = self._stamp.reread()
            if raw is not None:
                plain = dequantize_weights(raw, self._stamp.path)
                original = dataclasses.replace(self._ms_model,
                                               raw=plain if plain is not None else raw)
                if patch_original(original, s.graph, path):
                    return
        export_bytes(s, path, inference_only=export_inference_only, quantize=quant,
                     output_names=list(output_tensor_names or []), name=self.name,
                     version=self.version)

    def describe_plan(self) -> str:
        """The arena plans (offsets, sizes, lifetimes; total vs naive sum)."""
        return self.session.describe_plans()


class CallBackParam:
    """mindspore::MSCallBackParam: which kernel a kernel callback is called for."""

    def __init__(self, node_name: str, node_type: str):
        self.node_name, self.node_type = node_name, node_type

    def __repr__(self) -> str:
        return f"CallBackParam(node_name={self.node_name!r}, node_type={self.node_type!r})"


def _kernel_callbacks(before, after):
    """Adapt user callbacks ``f(inputs, outputs, CallBackParam)`` to the session's
    ``f(node, in_arrays, out_arrays)``; tensors are read-only views of the kernel's arrays."""

    def adapt(fn):
        if fn is None:
            return None

        def call(node, ins, outs):
            wrap = [Tensor(name=v.name, _array=a, _writable=False)
                    for v, a in zip(node.inputs, ins)]
            out = [Tensor(name=v.name, _array=a, _writable=False)
                   for v, a in zip(node.outputs, outs)]
            fn(wrap, out, CallBackParam(node.name, node.op))

        return call

    return adapt(before), adapt(after)


def _check_tensor(what: str, t: Tensor, target: np.ndarray, kind: str = "") -> None:
    """``t`` must fit ``target``: same element count and dtype (Lite copies raw bytes)."""
    got = t.get_data_to_numpy()
    if got.size != target.size:
        raise ParamError(f"{what}: tensor {t.name!r} has {target.size} elements, got "
                         f"{got.size}")
    if got.dtype != target.dtype:
        raise ParamError(f"{what}: tensor {t.name!r} is {kind or target.dtype.name} "
                         f"({target.dtype.name}), got {got.dtype.name}")
