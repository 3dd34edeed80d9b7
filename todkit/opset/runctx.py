"""The run context handed to every kernel."""

from __future__ import annotations

import numpy as np


class RunContext:
    """``training``: train-mode behaviour (Dropout active, BatchNorm batch statistics).
    ``rng``: the generator for random ops, seeded so runs repeat. It is made on first use:
    ``numpy.random`` costs a model without random ops 2 MB of resident memory."""

    __slots__ = ("_rng", "seed", "training")

    def __init__(self, training: bool = True, seed: int = 0):
        self.training = training
        self.seed = seed
        self._rng = None

    @property
    def rng(self) -> np.random.Generator:
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        return self._rng

    @rng.setter
    def rng(self, generator: np.random.Generator) -> None:
        self._rng = generator
