"""Depthwise 2-D convolution with the semantics of ``tf.nn.depthwise_conv2d`` and its gradients.

Each input channel c is convolved with its own ``channel_multiplier`` filters ``filter[:, :, c, m]``
into output channel ``c * channel_multiplier + m``.  The functions here validate and normalise
their arguments and allocate the outputs; the arithmetic is in the compiled ``_depthwise``
module (vectorised along the channel axis).
"""
import numpy as np

from fastconv import _depthwise
from fastconv._threads import MULTIPLY_ADDS_PER_THREAD, threads_for
from fastconv._validation import (
    all_finite,
    as_numeric_array,
    FilterGeometry,
    check_elements,
    check_int32,
    check_out,
    deliver,
    direct_output,
    float_dtypes,
    layout_shape,
    normalize_data_format,
    shape_argument,
    to_nhwc,
)

ACTIVATIONS = tuple(_depthwise.ACTIVATIONS)


class _DepthwiseGeometry(FilterGeometry):
    """Validated arguments of a depthwise convolution: layout, strides, dilations, padding, sizes."""

    FILTER = "filter"
    LAST_AXIS = "channel_multiplier"

    def __init__(self, fn, input_shape, filter_shape, strides, padding, data_format, dilations):
        super().__init__(fn, input_shape, filter_shape, strides, padding,
                         "NHWC" if data_format is None else data_format, dilations)

    def output_channels(self, in_channels, last):
        return in_channels * last

    def check_sizes(self, fn):
        check_int32(fn, out_channels=self.output_nhwc[3])

    def kernel_args(self):
        """(geometry tuple, depth multiplier, threads) for the _depthwise kernels."""
        kh, kw, _, multiplier = self.filter_shape
        n, oh, ow, cm = self.output_nhwc
        geom = (kh, kw, *self.strides, *self.dilations, self.pads[0], self.pads[2])
        return geom, multiplier, threads_for(n * oh * ow * cm * kh * kw, MULTIPLY_ADDS_PER_THREAD)

    def padded(self, x):
        """x (NHWC) with its padding written out as zeros, and this geometry without padding.

        TensorFlow multiplies the padding (zeros) like any input, so an infinite weight (forward)
        or gradient (filter gradient) over the padding gives NaN; the kernels skip the padding,
        so for non-finite operands the zeros are made real first.
        """
        pt, pb, pl, pr = self.pads
        if not any(self.pads):
            return x, self
        flat = object.__new__(_DepthwiseGeometry)
        flat.__dict__.update(self.__dict__, pads=(0, 0, 0, 0))
        n, h, w, c = self.input_nhwc
        flat.input_nhwc = (n, h + pt + pb, w + pl + pr, c)
        return np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0))), flat


def depthwise_conv2d(input, filter, strides, padding, data_format="NHWC", dilations=None, name=None, *,
                     bias=None, activation=None, out=None):
    """Depthwise 2-D convolution, as ``tf.nn.depthwise_conv2d``.

    Parameters
    ----------
    input : array_like, 4-D
        ``[batch, height, width, in_channels]`` (NHWC) or ``[batch, in_channels, height, width]`` (NCHW).
    filter : array_like, 4-D
        ``[filter_height, filter_width, in_channels, channel_multiplier]``.
    strides, dilations : int or list of 1, 2 or 4 ints
        As in TensorFlow (``tf.nn.depthwise_conv2d`` takes 4 strides and 2 dilations; both
        forms are accepted here, and, unlike TensorFlow, strides and dilations above 1 together).
    padding : 'SAME', 'VALID' or explicit pairs
        Explicit: ``[[0, 0], [top, bottom], [left, right], [0, 0]]`` for NHWC.
    data_format : 'NHWC' (or None) or 'NCHW'
    name : ignored (accepted for compatibility with TensorFlow code).
    bias : array_like, optional
        ``in_channels * channel_multiplier`` values added in the same pass (fastconv's extension:
        bit for bit ``bias_add(depthwise_conv2d(...), bias)``).
    activation : None, 'relu' or 'relu6'
        Applied after the bias in the same pass (``tf.nn.relu`` / ``tf.nn.relu6``: NaN stays NaN).
    out : ndarray, optional
        Where to write the result (its shape and dtype must be the result's).

    Returns
    -------
    ndarray
        ``[batch, out_height, out_width, in_channels * channel_multiplier]`` in ``data_format``;
        output channel ``c * channel_multiplier + m`` is input channel ``c`` convolved with
        ``filter[:, :, c, m]``.
    """
    fn = "depthwise_conv2d"
    x = as_numeric_array(input, fn, "input")
    w = as_numeric_array(filter, fn, "filter")
    geo = _DepthwiseGeometry(fn, x.shape, w.shape, strides, padding, data_format, dilations)
    if activation not in ACTIVATIONS:
        raise ValueError(f"{fn}: activation must be None, 'relu' or 'relu6'. Received: activation={activation!r}")
    operands = (x, w)
    cm = geo.output_nhwc[3]
    if bias is not None:
        b = as_numeric_array(bias, fn, "bias")
        if b.shape != (cm,):
            raise ValueError(f"{fn}: bias must have shape ({cm},) (in_channels * channel_multiplier of filter "
                             f"{geo.filter_shape}); received shape {b.shape}")
        operands += (b,)
    compute, result_dtype = float_dtypes(fn, *operands)
    if out is not None:
        check_out(out, fn, geo.output_shape, result_dtype)
    xc = to_nhwc(x, geo.data_format, compute)
    wc = np.ascontiguousarray(w, dtype=compute).reshape(-1)
    bc = None if bias is None else np.ascontiguousarray(b, dtype=compute)
    y = direct_output(out, geo.data_format, geo.output_nhwc, compute, operands)
    if not np.isfinite(wc).all():
        xc, geo = geo.padded(xc)
    geom, multiplier, n_threads = geo.kernel_args()
    _depthwise.forward(xc, wc, bc, y, geom, multiplier, _depthwise.ACTIVATIONS[activation], n_threads)
    return deliver(y, geo.data_format, result_dtype, out)


def depthwise_conv2d_backprop_input(input_sizes, filter, out_backprop, strides, padding, data_format="NHWC",
                                    dilations=None, name=None, *, out=None):
    """Gradient of :func:`depthwise_conv2d` with respect to its input, as
    ``tf.compat.v1.nn.depthwise_conv2d_native_backprop_input``.

    ``input_sizes`` is the shape of the forward input (4 ints in ``data_format`` order, or its 2
    spatial sizes); ``filter`` the forward filter ``[kh, kw, in_channels, channel_multiplier]``;
    ``out_backprop`` the gradient of the forward output.  Each input pixel gathers the outputs
    whose windows saw it, so rows and columns that no window saw get zero.
    """
    fn = "depthwise_conv2d_backprop_input"
    w = as_numeric_array(filter, fn, "filter")
    dy = as_numeric_array(out_backprop, fn, "out_backprop")
    fmt = normalize_data_format("NHWC" if data_format is None else data_format, fn)
    sizes = shape_argument(input_sizes, fn, "input_sizes", (2, 4))
    if dy.ndim != 4:
        raise ValueError(f"{fn}: out_backprop must be 4-D ({fmt}); received shape {dy.shape}")
    if len(sizes) == 2:
        if w.ndim != 4:
            raise ValueError(f"{fn}: filter must be 4-D; received shape {w.shape}")
        sizes = layout_shape((dy.shape[0], *sizes, w.shape[2]), fmt)
        check_elements(fn, "input_sizes", sizes)
    geo = _DepthwiseGeometry(fn, sizes, w.shape, strides, padding, fmt, dilations)
    if dy.shape != geo.output_shape:
        raise ValueError(
            f"{fn}: out_backprop has shape {dy.shape}, but depthwise_conv2d of an input of shape {sizes} "
            f"with a filter of shape {geo.filter_shape}, strides {geo.strides}, dilations {geo.dilations} "
            f"and padding {padding!r} gives {geo.output_shape}"
        )
    compute, result_dtype = float_dtypes(fn, w, dy)
    if out is not None:
        check_out(out, fn, sizes, result_dtype)
    dyc = to_nhwc(dy, fmt, compute)
    wc = np.ascontiguousarray(w, dtype=compute).reshape(-1)
    dx = direct_output(out, fmt, geo.input_nhwc, compute, (w, dy))
    geom, multiplier, n_threads = geo.kernel_args()
    _depthwise.backprop_input(dyc, wc, dx, geom, multiplier, n_threads)
    return deliver(dx, fmt, result_dtype, out)


def depthwise_conv2d_backprop_filter(input, filter_sizes, out_backprop, strides, padding, data_format="NHWC",
                                     dilations=None, name=None, *, out=None):
    """Gradient of :func:`depthwise_conv2d` with respect to its filter, as
    ``tf.compat.v1.nn.depthwise_conv2d_native_backprop_filter``.

    ``filter_sizes`` is the filter shape ``[kh, kw, in_channels, channel_multiplier]``.  The sum
    over the batch's output rows is split into a fixed number of slices, each summed by one
    thread, then added in order: the same bits for any number of threads.
    """
    fn = "depthwise_conv2d_backprop_filter"
    x = as_numeric_array(input, fn, "input")
    dy = as_numeric_array(out_backprop, fn, "out_backprop")
    fshape = shape_argument(filter_sizes, fn, "filter_sizes", (4,))
    geo = _DepthwiseGeometry(fn, x.shape, fshape, strides, padding, data_format, dilations)
    if dy.shape != geo.output_shape:
        raise ValueError(
            f"{fn}: out_backprop has shape {dy.shape}, but depthwise_conv2d of the input (shape {x.shape}) "
            f"with a filter of shape {fshape}, strides {geo.strides}, dilations {geo.dilations} and padding "
            f"{padding!r} gives {geo.output_shape}"
        )
    compute, result_dtype = float_dtypes(fn, x, dy)
    if out is not None:
        check_out(out, fn, fshape, result_dtype)
    xc = to_nhwc(x, geo.data_format, compute)
    dyc = to_nhwc(dy, geo.data_format, compute)
    size = int(np.prod(fshape))
    n, oh = geo.output_nhwc[:2]
    if size == 0 or dyc.size == 0:
        dw = np.zeros(size, dtype=compute)
    else:
        if not all_finite(dyc):
            xc, geo = geo.padded(xc)
        geom, multiplier, n_threads = geo.kernel_args()
        partials = np.empty((_depthwise.filter_grad_slices(n * oh, size, compute.itemsize), size), dtype=compute)
        dw = np.empty(size, dtype=compute)
        _depthwise.backprop_filter(xc, dyc, partials, dw, geom, multiplier, n_threads)
    dw = dw.reshape(fshape)
    if out is None:
        return dw.astype(result_dtype, copy=False)
    np.copyto(out, dw, casting="same_kind")
    return out
