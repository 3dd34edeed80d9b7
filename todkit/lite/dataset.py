"""Datasets for Model.train / evaluate: any iterable of ``(data, label)`` NumPy batches,
iterated once per epoch. ``ArrayDataset`` batches (and optionally shuffles) NumPy arrays."""

from __future__ import annotations

import numpy as np

from todkit.core.errors import ParamError


class ArrayDataset:
    """Batches of ``arrays`` (same length along axis 0) of ``batch_size`` rows; a new
    shuffle each epoch when ``shuffle``; the last partial batch is dropped by default, as
    a model's batch size is fixed at export (Lite's ``Batch(bs, drop_remainder=true)``)."""

    def __init__(self, *arrays, batch_size: int, shuffle: bool = False, seed: int = 0,
                 drop_remainder: bool = True):
        if not arrays:
            raise ParamError("ArrayDataset needs at least one array")
        n = len(arrays[0])
        if any(len(a) != n for a in arrays):
            raise ParamError(f"ArrayDataset: arrays of different lengths "
                             f"{[len(a) for a in arrays]}")
        if batch_size <= 0:
            raise ParamError(f"ArrayDataset: batch_size must be > 0, got {batch_size}")
        self.arrays = [np.ascontiguousarray(a) for a in arrays]
        self.batch_size, self.shuffle, self.drop_remainder = batch_size, shuffle, drop_remainder
        self.rng = np.random.default_rng(seed)

    @property
    def num_samples(self) -> int:
        return len(self.arrays[0])

    def __len__(self) -> int:
        full, rest = divmod(self.num_samples, self.batch_size)
        return full + (1 if rest and not self.drop_remainder else 0)

    def iter_indices(self):
        """The sample indices of each batch of one epoch (a new shuffle per call, as
        ``__iter__``, which takes its batches from here)."""
        order = (self.rng.permutation(self.num_samples) if self.shuffle
                 else np.arange(self.num_samples))
        for k in range(len(self)):
            yield order[k * self.batch_size:(k + 1) * self.batch_size]

    def __iter__(self):
        for idx in self.iter_indices():
            yield tuple(a[idx] for a in self.arrays)


def batches(*arrays, batch_size: int, shuffle: bool = False, seed: int = 0,
            drop_remainder: bool = True) -> ArrayDataset:
    return ArrayDataset(*arrays, batch_size=batch_size, shuffle=shuffle, seed=seed,
                        drop_remainder=drop_remainder)
