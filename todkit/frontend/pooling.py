"""``AvgPool2d`` and ``AdaptiveAvgPool2d`` (MindSpore 2.x nn/layer/pooling.py). MaxPool2d is
in layers.py."""

from __future__ import annotations

from todkit.frontend import primitives as P
from todkit.frontend.cell import Cell
from todkit.frontend.primitives import Primitive


class AvgPool2d(Cell):
    """``AvgPool2d(kernel_size=1, stride=1, pad_mode='valid')``: the ``AvgPool`` primitive.
    The padding/ceil_mode/count_include_pad/divisor_override variant (AvgPool3D) is not
    supported."""

    def __init__(self, kernel_size=1, stride=1, pad_mode="valid", padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None, data_format="NCHW"):
        super().__init__()
        if pad_mode.lower() == "pad" or padding != 0 or ceil_mode or not count_include_pad \
                or divisor_override is not None:
            raise NotImplementedError("AvgPool2d with pad_mode='pad', padding, ceil_mode, "
                                      "count_include_pad=False or divisor_override (AvgPool3D "
                                      "in MindSpore) is not supported")
        self.avg_pool = P.AvgPool(kernel_size=kernel_size, strides=stride, pad_mode=pad_mode,
                                  data_format=data_format)

    def construct(self, x):
        if len(x.shape) != 4:
            raise ValueError(f"AvgPool2d: the input must be [N, C, H, W], got {list(x.shape)}")
        return self.avg_pool(x)


class AdaptiveAvgPool2D(Primitive):
    """``AdaptiveAvgPool2D(output_size)``: MindSpore's primitive. Lite has no kernel for it (nor
    for its gradient), so the opset lacks it and calling it fails with ``unsupported op
    AdaptiveAvgPool2D``; ``nn.AdaptiveAvgPool2d`` avoids it where it can."""

    def __init__(self, output_size):
        size = (output_size, output_size) if isinstance(output_size, int) else tuple(
            output_size)
        super().__init__(output_size=tuple(-1 if s is None else int(s) for s in size))


class AdaptiveAvgPool2d(Cell):
    """Output size 1: ``ReduceMean(keep_dims=True)`` over H, W, as the model zoo pools
    globally. An output size dividing the input evenly: ``AvgPool`` with kernel = stride =
    input / output, the same windows. Otherwise the AdaptiveAvgPool2D primitive (unsupported)."""

    def __init__(self, output_size):
        super().__init__()
        self.adaptive_avgpool2d = AdaptiveAvgPool2D(output_size)
        self.output_size = self.adaptive_avgpool2d.attrs["output_size"]
        self.mean = P.ReduceMean(keep_dims=True)

    def construct(self, x):
        if len(x.shape) != 4:
            raise ValueError(f"AdaptiveAvgPool2d: the input must be [N, C, H, W], got "
                             f"{list(x.shape)}")
        h, w = x.shape[2:]
        oh, ow = (d if o == -1 else o for o, d in zip(self.output_size, (h, w)))
        if (oh, ow) == (1, 1):
            return self.mean(x, (2, 3))
        if (oh, ow) == (h, w):
            return x
        if h % oh == 0 and w % ow == 0:
            window = (h // oh, w // ow)
            return P.AvgPool(kernel_size=window, strides=window)(x)
        return self.adaptive_avgpool2d(x)
