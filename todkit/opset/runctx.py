"""The run context handed to every kernel."""

from __future__ import annotations

import numpy as np


class RunContext:
    """``training``: train-mode behaviour (Dropout active, BatchNorm batch statistics).
    ``rng``: the generator for random ops, seeded so runs repeat."""

    __slots__ = ("rng", "training")

    def __init__(self, training: bool = True, seed: int = 0):
        self.training = training
        self.rng = np.random.default_rng(seed)
