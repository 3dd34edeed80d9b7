"""ONNX Runtime on-device training (onnxruntime-training 1.19.2, onnx 1.17.0).

``prepare`` (own process, needs torch in the same venv) exports the PyTorch model of the
workload to ONNX (TorchScript exporter, opset 17) and generates the training artifacts with
``onnxruntime.training.artifacts`` (CrossEntropyLoss; AdamW with weight decay 0 for Adam; plain
SGD for SGD and, since ORT's artifacts have no momentum optimizer, for Momentum too; frozen
backbone parameters for classifier-only workloads). ``setup`` imports only onnxruntime.
"""

from __future__ import annotations

import os

import numpy as np
from workloads import batch_arrays


def _dir(w, cache):
    return os.path.join(cache, f"ort_{w.id}")


def prepare(w, cache, fw):
    import onnx
    import torch
    import torch_models
    from onnxruntime.training import artifacts, onnxblock

    model, trainable = torch_models.build(w)
    x, _ = batch_arrays(w, np)
    out = _dir(w, cache)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "model.onnx")
    mode = torch.onnx.TrainingMode.TRAINING if w.trains == "all" else torch.onnx.TrainingMode.EVAL
    torch.onnx.export(model, (torch.from_numpy(x),), path, dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"], training=mode,
                      do_constant_folding=False, export_params=True)
    proto = onnx.load(path)
    all_names = {i.name for i in proto.graph.initializer}
    requires_grad = [n for n in trainable if n in all_names]
    frozen = sorted(all_names - set(requires_grad))
    opt = (onnxblock.optim.AdamW(eps=1e-8, weight_decay=0.0) if w.optimizer == "adam"
           else artifacts.OptimType.SGD)
    artifacts.generate_artifacts(proto, requires_grad=requires_grad, frozen_params=frozen,
                                 loss=artifacts.LossType.CrossEntropyLoss, optimizer=opt,
                                 artifact_directory=out)
    note = "SGD without momentum (ORT artifacts have no Momentum)" \
        if w.optimizer == "momentum" else None
    return {"trainable": len(requires_grad), "frozen": len(frozen), "note": note}


def _import_training_api():
    """onnxruntime-training's ``import onnxruntime`` and its ``onnxruntime.training`` package
    import torch (ORTModule, amp, optim: about 230 MB of RSS) though the on-device training
    API does not use it. Block torch and skip that package's __init__, so the peak RSS is the
    training runtime's own, as on a device without torch."""
    import sys
    import types

    sys.modules.setdefault("torch", None)
    import onnxruntime as ort

    pkg = types.ModuleType("onnxruntime.training")
    pkg.__path__ = [os.path.join(os.path.dirname(ort.__file__), "training")]
    sys.modules["onnxruntime.training"] = pkg
    from onnxruntime.training import api
    return ort, api


def setup(w, threads, cache, fw):
    ort, api = _import_training_api()
    CheckpointState, Module, Optimizer = api.CheckpointState, api.Module, api.Optimizer

    d = _dir(w, cache)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    state = CheckpointState.load_checkpoint(os.path.join(d, "checkpoint"))
    # No eval model: only training is timed (and the eval graph of a TRAINING-mode export
    # keeps BatchNormalization's extra outputs, which its loader rejects).
    module = Module(os.path.join(d, "training_model.onnx"), state, None, device="cpu",
                    session_options=so)
    opt = Optimizer(os.path.join(d, "optimizer_model.onnx"), module)
    opt.set_learning_rate(w.lr)
    module.train()
    x, y = batch_arrays(w, np)
    y = y.astype(np.int64)

    def step():
        loss = module(x, y)
        opt.step()
        module.lazy_reset_grad()
        return loss
    info = {"ort": ort.__version__}
    if w.optimizer == "momentum":
        info["note"] = "ORT: plain SGD (no Momentum in its artifacts)"
    if w.optimizer == "adam":
        info["note"] = "ORT: AdamW with weight_decay 0"
    return step, info
