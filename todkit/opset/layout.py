"""Image layouts shared by convolution, pooling and normalisation: NCHW (MindSpore's) and
NHWC (what the MindSpore Lite converter writes for train and inference models).

A ``Layout`` answers the few questions the kernels ask: where the channels and the spatial
axes are, how to pad the spatial axes, the strided view of one kernel tap over every window,
and how a per-channel vector broadcasts. Convolution weights follow the data layout: OIHW
``[O, C/g, kh, kw]`` with NCHW, KHWC ``[O, kh, kw, C/g]`` with NHWC (the Lite file's weight
format KHWC).
"""

from __future__ import annotations

import numpy as np

FORMATS = ("NCHW", "NHWC")


class Layout:
    __slots__ = ("name", "nhwc")

    def __init__(self, fmt: str):
        name = str(fmt).upper()
        if name not in FORMATS:
            raise ValueError(f"format {fmt!r} is not supported (NCHW or NHWC)")
        self.name = name
        self.nhwc = name == "NHWC"

    # -- shapes ---------------------------------------------------------------------------
    @property
    def channel_axis(self) -> int:
        return 3 if self.nhwc else 1

    def channels(self, shape) -> int:
        return int(shape[self.channel_axis])

    def hw(self, shape) -> tuple[int, int]:
        return (int(shape[1]), int(shape[2])) if self.nhwc else (int(shape[2]), int(shape[3]))

    def shape(self, n: int, c: int, h: int, w: int) -> tuple[int, int, int, int]:
        return (n, h, w, c) if self.nhwc else (n, c, h, w)

    def from_nchw(self, nchw) -> tuple[int, ...]:
        """A shape given in NCHW order (MindSpore Lite stores conv-gradient sizes so) in this
        layout; weights: OIHW -> KHWC."""
        n, c, h, w = (int(d) for d in nchw)
        return self.shape(n, c, h, w)

    def to_nchw(self, shape) -> tuple[int, ...]:
        n, c = int(shape[0]), self.channels(shape)
        return (n, c, *self.hw(shape))

    # weights: OIHW (NCHW) or KHWC (NHWC)
    def weight_kernel(self, w_shape) -> tuple[int, int]:
        return (int(w_shape[1]), int(w_shape[2])) if self.nhwc else (int(w_shape[2]),
                                                                    int(w_shape[3]))

    def weight_in_channels(self, w_shape) -> int:
        return int(w_shape[3] if self.nhwc else w_shape[1])

    # -- array views ----------------------------------------------------------------------
    def pad(self, x: np.ndarray, pads, value=0.0) -> np.ndarray:
        t, b, l, r = pads
        if not (t or b or l or r):
            return x
        spec = ((0, 0), (t, b), (l, r), (0, 0)) if self.nhwc else ((0, 0), (0, 0), (t, b), (l, r))
        return np.pad(x, spec, constant_values=value)

    def crop(self, xp: np.ndarray, pads, hw) -> np.ndarray:
        """The unpadded part of ``xp``."""
        t, l = pads[0], pads[2]
        h, w = hw
        return xp[:, t:t + h, l:l + w] if self.nhwc else xp[:, :, t:t + h, l:l + w]

    def tap(self, i: int, j: int, ohw, stride, dilation=(1, 1)) -> tuple:
        """Index of the (N, C, OH, OW)-shaped (or NHWC) strided view holding, for every
        window, the element at kernel position (i, j)."""
        (oh, ow), (sh, sw), (dh, dw) = ohw, stride, dilation
        rows = slice(i * dh, i * dh + (oh - 1) * sh + 1, sh)
        cols = slice(j * dw, j * dw + (ow - 1) * sw + 1, sw)
        return (slice(None), rows, cols) if self.nhwc else (slice(None), slice(None), rows, cols)

    def channel_slice(self, start: int, stop: int) -> tuple:
        return (Ellipsis, slice(start, stop)) if self.nhwc else (slice(None), slice(start, stop))

    def per_channel(self, v: np.ndarray) -> np.ndarray:
        """A [C] vector shaped to broadcast against a 4-D tensor of this layout."""
        return v if self.nhwc else v.reshape(-1, 1, 1)

    def reduce_axes(self, ndim: int = 4) -> tuple[int, ...]:
        """Every axis but the channel axis."""
        return tuple(a for a in range(ndim) if a != self.channel_axis)


def layout(fmt) -> Layout:
    return Layout(fmt)
