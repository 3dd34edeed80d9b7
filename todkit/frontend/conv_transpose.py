"""MindSpore 2.x ``nn.Conv2dTranspose``: the input gradient of the convolution it transposes,
the IR's ``Conv2DBackpropInput`` (MindSpore exports it as ``Conv2DTranspose``, which todkit's
reader takes as that op). Weight [in_channels, out_channels / group, kh, kw] from
HeUniform(sqrt(5)), bias U(+-1/sqrt(fan_in)), no bias by default; the output's extent per
pad_mode: 'same' in * stride, 'valid' (in - 1) * stride + dilation * (k - 1) + 1, 'pad' that
minus the two paddings."""

from __future__ import annotations

import numbers

from todkit.core import dtypes
from todkit.frontend.cell import Cell
from todkit.frontend.layers import conv_parameters
from todkit.frontend.primitives import run, same_pads


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, numbers.Integral) else tuple(int(d) for d in v)


class Conv2dTranspose(Cell):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, pad_mode="same",
                 padding=0, output_padding=0, dilation=1, group=1, has_bias=False,
                 weight_init=None, bias_init=None, dtype=dtypes.float32):
        super().__init__()
        if in_channels % group or out_channels % group:
            raise ValueError(f"channels ({in_channels}, {out_channels}) must divide by group "
                             f"{group}")
        pad_mode = pad_mode.lower()
        if pad_mode not in ("same", "valid", "pad"):
            raise ValueError(f"pad_mode must be 'same', 'valid' or 'pad', got {pad_mode!r}")
        if output_padding:
            raise NotImplementedError("Conv2dTranspose: output_padding is not supported")
        pad = (int(padding),) * 4 if isinstance(padding, numbers.Integral) else \
            tuple(int(p) for p in padding)
        if len(pad) != 4 or (pad_mode != "pad" and any(pad)):
            raise ValueError(f"padding must be 0 unless pad_mode is 'pad' (then an int or "
                             f"4 ints), got {padding!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.dilation, self.group = _pair(dilation), int(group)
        self.pad_mode, self.pad, self.has_bias = pad_mode, pad, bool(has_bias)
        conv_parameters(self, [in_channels, out_channels // group, *self.kernel_size],
                        out_channels, weight_init, bias_init, dtype)

    def _extent(self, size: int, axis: int) -> int:
        k, s, d = self.kernel_size[axis], self.stride[axis], self.dilation[axis]
        if self.pad_mode == "same":
            return size * s
        out = (size - 1) * s + d * (k - 1) + 1
        return out - sum(self.pad[2 * axis:2 * axis + 2]) if self.pad_mode == "pad" else out

    def construct(self, x):
        n, _, h, w = x.shape
        oh, ow = self._extent(h, 0), self._extent(w, 1)
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        pads = same_pads(oh, kh, sh, dh) + same_pads(ow, kw, sw, dw) \
            if self.pad_mode == "same" else self.pad
        out = run("Conv2DBackpropInput", [x, self.weight], {
            "out_channel": self.in_channels, "kernel_size": self.kernel_size, "mode": 1,
            "pad_mode": self.pad_mode, "pad_list": pads, "stride": self.stride,
            "dilation": self.dilation, "group": self.group, "format": "NCHW",
            "input_sizes": (n, self.out_channels, oh, ow)})
        if self.has_bias:
            out = self.bias_add(out, self.bias)
        return out

    def extend_repr(self) -> str:
        return (f"input_channels={self.in_channels}, output_channels={self.out_channels}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, "
                f"pad_mode={self.pad_mode}")
