"""PyTorch eager (CPU): model, CrossEntropyLoss, torch.optim; one step = zero_grad, forward,
backward, step."""

from __future__ import annotations

import numpy as np
from workloads import MOMENTUM, batch_arrays


def prepare(w, cache, fw):
    return {}


def setup(w, threads, cache, fw):
    import torch
    import torch_models

    torch.set_num_threads(threads)
    model, _ = torch_models.build(w)
    params = [p for p in model.parameters() if p.requires_grad]
    if w.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=w.lr)
    elif w.optimizer == "momentum":
        opt = torch.optim.SGD(params, lr=w.lr, momentum=MOMENTUM)
    else:
        opt = torch.optim.SGD(params, lr=w.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y = batch_arrays(w, np)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xt), yt)
        loss.backward()
        opt.step()
        return loss.item()
    return step, {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}
