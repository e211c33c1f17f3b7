"""Element-wise operations of a CNN layer: adding a bias along the channel axis (``tf.nn.bias_add``)
and its gradient (``BiasAddGrad``), and the gradient of a ReLU (``ReluGrad``)."""
import numpy as np

from fastconv import _buffers, _elementwise
from fastconv._threads import ELEMENTS_PER_THREAD, threads_for
from fastconv._validation import as_numeric_array, float_dtypes

_CHANNELS_FIRST = ("NCHW", "NCW", "NCDHW", "NC...", "CHANNELS_FIRST")
_CHANNELS_LAST = ("NHWC", "NWC", "NDHWC", "N...C", "CHANNELS_LAST")


def _channel_axis(data_format, ndim, fn):
    if data_format is None:
        return ndim - 1
    if not isinstance(data_format, str) or data_format.upper() not in _CHANNELS_FIRST + _CHANNELS_LAST:
        raise ValueError(f"{fn}: data_format must be None, 'NHWC', 'NCHW', 'N...C' or 'NC...'. "
                         f"Received: data_format={data_format!r}")
    return 1 if data_format.upper() in _CHANNELS_FIRST else ndim - 1


def _as_3d(arr, axis):
    """(outer, channels, inner) view of a C-contiguous array around its channel axis."""
    outer = int(np.prod(arr.shape[:axis]))
    inner = int(np.prod(arr.shape[axis + 1:]))
    return arr.reshape(outer, arr.shape[axis], inner)


def bias_add(value, bias, data_format=None, name=None, *, relu=False):
    """``value + bias`` along the channel axis, as ``tf.nn.bias_add``.

    ``value`` has rank >= 2; ``bias`` is 1-D with one entry per channel.  The channel axis is
    the last one (``data_format`` None or channels-last) or axis 1 ('NCHW', 'NC...').
    ``relu=True`` applies ``max(., 0)`` in the same pass (the fused epilogue of a Conv2D).
    """
    fn = "bias_add"
    x = as_numeric_array(value, fn, "value")
    b = as_numeric_array(bias, fn, "bias")
    if x.ndim < 2:
        raise ValueError(f"{fn}: value must have rank >= 2; received shape {x.shape}")
    if b.ndim != 1:
        raise ValueError(f"{fn}: bias must be 1-D; received shape {b.shape}")
    axis = _channel_axis(data_format, x.ndim, fn)
    if b.shape[0] != x.shape[axis]:
        raise ValueError(f"{fn}: bias has {b.shape[0]} entries but value has {x.shape[axis]} channels "
                         f"on axis {axis} (value shape {x.shape}, data_format={data_format!r})")
    compute, result_dtype = float_dtypes(fn, x, b)
    xc = np.ascontiguousarray(x, dtype=compute)
    y = _buffers.empty(x.shape, compute)
    _elementwise.bias_add(_as_3d(xc, axis), np.ascontiguousarray(b, dtype=compute), _as_3d(y, axis),
                          relu, threads_for(x.size, ELEMENTS_PER_THREAD))
    return y.astype(result_dtype, copy=False)


def bias_add_grad(out_backprop, data_format=None, name=None):
    """Gradient of :func:`bias_add` with respect to the bias: ``out_backprop`` summed over every
    axis but the channel axis (TensorFlow's ``BiasAddGrad``)."""
    fn = "bias_add_grad"
    dy = as_numeric_array(out_backprop, fn, "out_backprop")
    if dy.ndim < 2:
        raise ValueError(f"{fn}: out_backprop must have rank >= 2; received shape {dy.shape}")
    axis = _channel_axis(data_format, dy.ndim, fn)
    compute, result_dtype = float_dtypes(fn, dy)
    d3 = _as_3d(np.ascontiguousarray(dy, dtype=compute), axis)
    db = np.empty(d3.shape[1], dtype=compute)
    partials = np.empty((max(_elementwise.slices(d3.shape[0]), 1), d3.shape[1]), dtype=compute)
    _elementwise.bias_grad(d3, partials, db, threads_for(dy.size, ELEMENTS_PER_THREAD))
    return db.astype(result_dtype, copy=False)


def relu_grad(gradients, features, name=None):
    """Gradient of a ReLU, as TensorFlow's raw op ``ReluGrad``: ``gradients * (features > 0)``.

    ``features`` is the ReLU's input or its output (both are positive at the same places).
    A NaN in ``gradients`` stays NaN everywhere (NaN * 0 is NaN), as in TensorFlow.
    """
    fn = "relu_grad"
    g = as_numeric_array(gradients, fn, "gradients")
    f = as_numeric_array(features, fn, "features")
    if g.shape != f.shape:
        raise ValueError(f"{fn}: gradients has shape {g.shape} but features has shape {f.shape}")
    compute, result_dtype = float_dtypes(fn, g, f)
    gc = np.ascontiguousarray(g, dtype=compute).reshape(-1)
    fc_ = np.ascontiguousarray(f, dtype=compute).reshape(-1)
    out = _buffers.empty(g.shape, compute)
    _elementwise.relu_grad(gc, fc_, out.reshape(-1), threads_for(out.size, ELEMENTS_PER_THREAD))
    return out.astype(result_dtype, copy=False)
