"""Data for ``todkit train`` / ``todkit eval``: scikit-learn's digits or an .npz file, shaped
to the model's data input and its label input."""

from __future__ import annotations

import numpy as np

from todkit.core.errors import ParamError

DATA_HELP = ("'digits' (scikit-learn's 8x8 digits, 1797 samples, last quarter held out for "
             "eval; shaped to the model's input: 4-D inputs get the image upscaled by nearest "
             "neighbour to HxW and copied to every channel, NHWC or NCHW by the input's "
             "format; 2-D inputs of width 64 get it flattened; pixels scaled to [0, 1]) or "
             "FILE.npz with arrays x and y (optional x_test, y_test)")


def fit_images(images: np.ndarray, shape, channels_last: bool) -> np.ndarray:
    """(n, 8, 8) images -> (n, *shape[1:]) float32 for the model's data input."""
    n = len(images)
    if len(shape) == 2:
        if shape[1] != images[0].size:
            raise ParamError(f"digits: a 2-D input must have width {images[0].size}, the model "
                             f"takes {list(shape)}")
        return images.reshape(n, -1).astype(np.float32)
    if len(shape) != 4:
        raise ParamError(f"digits: cannot shape 8x8 images to input shape {list(shape)}")
    h, w, c = (shape[1], shape[2], shape[3]) if channels_last else (shape[2], shape[3], shape[1])
    rows = (np.arange(h) * images.shape[1]) // h
    cols = (np.arange(w) * images.shape[2]) // w
    up = images[:, rows][:, :, cols].astype(np.float32)
    out = np.repeat(up[..., None], c, axis=3)  # n, h, w, c
    return out if channels_last else out.transpose(0, 3, 1, 2).copy()


def labels_for(y: np.ndarray, label_shape, label_dtype) -> np.ndarray:
    if np.dtype(label_dtype) == np.int32:
        return y.astype(np.int32)
    classes = label_shape[1] if len(label_shape) == 2 else int(y.max()) + 1
    return np.eye(classes, dtype=np.float32)[y]


def load(source: str, data_input, label_input=None):
    """``(x_train, y_train, x_test, y_test)`` for the model's inputs (Tensors)."""
    shape, channels_last = data_input.shape, data_input.format.name == "NHWC"
    if source == "digits":
        try:
            from sklearn.datasets import load_digits
        except ImportError as e:
            raise ParamError("--data digits needs scikit-learn (pip install 'todkit[demo]')") \
                from e
        d = load_digits()
        x = fit_images(d.images / 16.0, shape, channels_last)
        y = d.target.astype(np.int64)
        cut = len(x) * 3 // 4
        xs, ys = (x[:cut], x[cut:]), (y[:cut], y[cut:])
    else:
        try:
            f = np.load(source, allow_pickle=False)  # never unpickle a file
        except (OSError, ValueError) as e:
            raise ParamError(f"--data {source!r}: cannot read it as .npz: {e}") from e
        if "x" not in f or "y" not in f:
            raise ParamError(f"--data {source!r}: needs arrays 'x' and 'y', has {list(f)}")
        xs = (f["x"].astype(np.float32), f["x_test"].astype(np.float32) if "x_test" in f
              else f["x"][:0].astype(np.float32))
        ys = (f["y"], f["y_test"] if "y_test" in f else f["y"][:0])
        if xs[0].shape[1:] != tuple(shape[1:]):
            raise ParamError(f"--data {source!r}: x has rows of shape {list(xs[0].shape[1:])}, "
                             f"the model's input {data_input.name!r} takes {shape[1:]}")
    if label_input is None:
        return xs[0], ys[0], xs[1], ys[1]
    conv = [labels_for(y, label_input.shape, label_input.get_data_to_numpy().dtype)
            for y in ys]
    return xs[0], conv[0], xs[1], conv[1]
