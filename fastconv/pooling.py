"""Max and average pooling and their gradients, with the semantics of TensorFlow's ops.

``max_pool2d`` / ``avg_pool2d`` as ``tf.nn.max_pool2d`` / ``tf.nn.avg_pool2d``; the gradients as
the raw ops ``MaxPoolGrad`` and ``AvgPoolGrad``; ``max_pool_with_argmax`` and
``max_pool2d_grad_with_argmax`` as ``tf.nn.max_pool_with_argmax`` and ``MaxPoolGradWithArgmax``,
the training path that keeps the forward's argmax instead of searching the windows again.
NCHW is accepted too (TensorFlow's CPU kernels take only NHWC); it is transposed to NHWC.
"""
import numpy as np

from fastconv import _buffers, _pooling
from fastconv._threads import ELEMENTS_PER_THREAD, threads_for
from fastconv._validation import (
    as_numeric_array,
    check_elements,
    check_out,
    deliver,
    direct_output,
    float_dtypes,
    layout_shape,
    nhwc_shape,
    normalize_data_format,
    normalize_padding,
    normalize_spatial,
    shape_argument,
    to_nhwc,
    window_geometry,
)


class _PoolGeometry:
    """Validated pooling arguments and the output size; ``plan`` is what the kernels take."""

    def __init__(self, fn, input_shape, ksize, strides, padding, data_format, allow_explicit):
        self.data_format = fmt = normalize_data_format(data_format, fn)
        if len(input_shape) != 4:
            raise ValueError(f"{fn}: input must be 4-D ({fmt}); received shape {tuple(input_shape)}")
        self.ksize = normalize_spatial(ksize, fn, "ksize", fmt)
        self.strides = normalize_spatial(strides, fn, "strides", fmt)
        self.padding = normalize_padding(padding, fn, fmt, allow_explicit=allow_explicit)
        n, h, w, c = nhwc_shape(tuple(input_shape), fmt)
        if not isinstance(self.padding, str):
            for (before, after), k, axis in zip(self.padding, self.ksize, ("height", "width")):
                if before >= k or after >= k:
                    raise ValueError(
                        f"{fn}: explicit padding along the {axis} must be smaller than the window "
                        f"(ksize {self.ksize}). Received: padding={padding!r}"
                    )
        oh, pt, _ = window_geometry(h, self.ksize[0], self.strides[0], 1, self.padding, 0)
        ow, pl, _ = window_geometry(w, self.ksize[1], self.strides[1], 1, self.padding, 1)
        if oh < 1 or ow < 1:
            raise ValueError(
                f"{fn}: the window (ksize {self.ksize}) does not fit the input "
                f"(shape {tuple(input_shape)} in {fmt}, padding {padding!r})"
            )
        self.input_nhwc = (n, h, w, c)
        self.output_nhwc = (n, oh, ow, c)
        check_elements(fn, "the input", self.input_nhwc)
        check_elements(fn, "the result", self.output_nhwc, f" (padding={padding!r}, strides {self.strides})")
        self.plan = _pooling.PoolPlan(self.input_nhwc, self.output_nhwc, self.ksize, self.strides, (pt, pl),
                                      threads_for(n * h * w * c, ELEMENTS_PER_THREAD))

    @property
    def output_shape(self):
        return layout_shape(self.output_nhwc, self.data_format)

    @property
    def input_shape(self):
        return layout_shape(self.input_nhwc, self.data_format)


def _check_argmax_size(fn, geo):
    """The kernels keep argmax as int32 (half the memory traffic of int64): one image must have
    fewer than 2**31 elements."""
    n, h, w, c = geo.input_nhwc
    if h * w * c >= 2**31:
        raise ValueError(f"{fn}: one image of {h}x{w}x{c} = {h * w * c} elements is too large for the argmax "
                         f"of max pooling (at most 2**31 - 1 elements per image); max_pool2d itself has no limit")


def _pool(fn, input, ksize, strides, padding, data_format, out, kind):
    x = as_numeric_array(input, fn, "input")
    geo = _PoolGeometry(fn, x.shape, ksize, strides, padding, data_format, allow_explicit=kind == "max")
    compute, result_dtype = float_dtypes(fn, x)
    if out is not None:
        check_out(out, fn, geo.output_shape, result_dtype)
    xc = to_nhwc(x, geo.data_format, compute)
    y = direct_output(out, geo.data_format, geo.output_nhwc, compute, (x,))
    if kind == "max":
        _pooling.max_pool(geo.plan, xc, y)
    else:
        _pooling.avg_pool(geo.plan, xc, y)
    return deliver(y, geo.data_format, result_dtype, out)


def max_pool2d(input, ksize, strides, padding, data_format="NHWC", name=None, *, out=None):
    """Max pooling, as ``tf.nn.max_pool2d``.

    ``ksize`` and ``strides``: an int or a list of 1, 2 or 4 ints; ``padding``: 'SAME', 'VALID'
    or explicit pairs (each smaller than the window).  Padded positions never win; NaN is
    ignored and ties go to the first element in row-major order, as in TensorFlow.
    """
    return _pool("max_pool2d", input, ksize, strides, padding, data_format, out, "max")


def avg_pool2d(input, ksize, strides, padding, data_format="NHWC", name=None, *, out=None):
    """Average pooling, as ``tf.nn.avg_pool2d``: each window's mean over its real (non-padded)
    elements.  ``padding`` is 'SAME' or 'VALID'."""
    return _pool("avg_pool2d", input, ksize, strides, padding, data_format, out, "avg")


def max_pool_with_argmax(input, ksize, strides, padding, data_format="NHWC", output_dtype=np.int64,
                         include_batch_in_index=False, name=None):
    """Max pooling and the flat index of each maximum, as ``tf.nn.max_pool_with_argmax`` (NHWC).

    The index of input element (b, y, x, c) is ``(y * width + x) * channels + c``, plus
    ``b * height * width * channels`` when ``include_batch_in_index``.  Pass it to
    :func:`max_pool2d_grad_with_argmax` for the gradient without searching the windows again.
    """
    fn = "max_pool_with_argmax"
    x = as_numeric_array(input, fn, "input")
    geo = _PoolGeometry(fn, x.shape, ksize, strides, padding, data_format, allow_explicit=False)
    if geo.data_format != "NHWC":
        raise ValueError(f"{fn}: only data_format='NHWC' is supported (as in TensorFlow)")
    output_dtype = np.dtype(output_dtype)
    if output_dtype not in (np.int32, np.int64):
        raise TypeError(f"{fn}: output_dtype must be int32 or int64. Received: output_dtype={output_dtype}")
    _check_argmax_size(fn, geo)
    n, h, w, c = geo.input_nhwc
    if output_dtype == np.int32 and include_batch_in_index and n * h * w * c >= 2**31:
        raise ValueError(f"{fn}: indices up to {n * h * w * c} do not fit output_dtype int32; use int64")
    compute, result_dtype = float_dtypes(fn, x)
    xc = to_nhwc(x, "NHWC", compute)
    y = _buffers.empty(geo.output_nhwc, compute)
    argmax = _buffers.empty(geo.output_nhwc, np.int32)
    _pooling.max_pool(geo.plan, xc, y, argmax)
    argmax = argmax.astype(output_dtype, copy=False)
    if include_batch_in_index:
        argmax += (np.arange(n, dtype=output_dtype) * (h * w * c)).reshape(n, 1, 1, 1)
    return y.astype(result_dtype, copy=False), argmax


def max_pool2d_grad_with_argmax(input_shape, grad, argmax, ksize, strides, padding,
                                include_batch_in_index=False, name=None, *, out=None):
    """Gradient of max pooling from the argmax of :func:`max_pool_with_argmax` (NHWC).

    ``input_shape`` is the shape of the pooled input (TensorFlow's op takes the input itself:
    an array is accepted too and only its shape is used).  Each element of ``grad`` goes to
    the input element its argmax names; overlapping windows accumulate.
    """
    fn = "max_pool2d_grad_with_argmax"
    shape = (tuple(np.shape(input_shape)) if np.ndim(input_shape) > 1
             else shape_argument(input_shape, fn, "input_shape", None))
    geo = _PoolGeometry(fn, shape, ksize, strides, padding, "NHWC", allow_explicit=False)
    g = as_numeric_array(grad, fn, "grad")
    a = np.asarray(argmax)
    for arr, nm in ((g, "grad"), (a, "argmax")):
        if arr.shape != geo.output_nhwc:
            raise ValueError(f"{fn}: {nm} has shape {arr.shape}; max pooling of an input of shape "
                             f"{shape} with ksize {geo.ksize}, strides {geo.strides} gives {geo.output_nhwc}")
    if a.dtype.kind not in "iu":
        raise TypeError(f"{fn}: argmax must hold integers; received dtype {a.dtype}")
    n, h, w, c = geo.input_nhwc
    if include_batch_in_index:
        a = a.astype(np.int64) - (np.arange(n, dtype=np.int64) * (h * w * c)).reshape(n, 1, 1, 1)
    _check_argmax_size(fn, geo)
    compute, result_dtype = float_dtypes(fn, g)
    if out is not None:
        check_out(out, fn, geo.input_nhwc, result_dtype)
    gc = np.ascontiguousarray(g, dtype=compute)
    a32 = a if a.dtype == np.int32 else a.clip(-1, 2**31 - 1).astype(np.int32)
    dx = direct_output(out, "NHWC", geo.input_nhwc, compute, (g, a))
    # The kernel counts the argmax entries that name an element of their own window: a genuine
    # argmax (from max_pool_with_argmax with these arguments) has all of them.
    matched = _pooling.pool_backward(geo.plan, gc, np.ascontiguousarray(a32), dx)
    if matched != gc.size:
        raise ValueError(f"{fn}: {gc.size - matched} of the {gc.size} argmax entries do not name an element of "
                         f"their window: argmax does not come from max_pool_with_argmax of an input of shape "
                         f"{shape} with ksize {geo.ksize}, strides {geo.strides}, padding {padding!r} "
                         f"(include_batch_in_index={include_batch_in_index})")
    return deliver(dx, "NHWC", result_dtype, out)


def max_pool2d_grad(orig_input, orig_output, grad, ksize, strides, padding, data_format="NHWC",
                    name=None, *, out=None):
    """Gradient of :func:`max_pool2d`, as TensorFlow's raw op ``MaxPoolGrad``.

    Finds each window's maximum in ``orig_input`` again (first of equal maxima wins, as in
    TensorFlow) and sends ``grad`` to it; ``orig_output`` is checked for its shape only.
    """
    fn = "max_pool2d_grad"
    x = as_numeric_array(orig_input, fn, "orig_input")
    g = as_numeric_array(grad, fn, "grad")
    y0 = np.asarray(orig_output)
    geo = _PoolGeometry(fn, x.shape, ksize, strides, padding, data_format, allow_explicit=True)
    for arr, nm in ((y0, "orig_output"), (g, "grad")):
        if arr.shape != geo.output_shape:
            raise ValueError(f"{fn}: {nm} has shape {arr.shape}; max pooling of orig_input (shape {x.shape}) "
                             f"with ksize {geo.ksize}, strides {geo.strides} gives {geo.output_shape}")
    compute, result_dtype = float_dtypes(fn, x, g)
    if out is not None:
        check_out(out, fn, geo.input_shape, result_dtype)
    xc = to_nhwc(x, geo.data_format, compute)
    gc = to_nhwc(g, geo.data_format, compute)
    _check_argmax_size(fn, geo)
    argmax = _buffers.empty(geo.output_nhwc, np.int32)
    _pooling.max_pool(geo.plan, xc, _buffers.empty(geo.output_nhwc, compute), argmax)
    dx = direct_output(out, geo.data_format, geo.input_nhwc, compute, (x, g))
    _pooling.pool_backward(geo.plan, gc, argmax, dx)
    return deliver(dx, geo.data_format, result_dtype, out)


def avg_pool2d_grad(orig_input_shape, grad, ksize, strides, padding, data_format="NHWC", name=None, *,
                    out=None):
    """Gradient of :func:`avg_pool2d`, as TensorFlow's raw op ``AvgPoolGrad``: each element of
    ``grad`` is spread evenly over the real elements of its window."""
    fn = "avg_pool2d_grad"
    shape = shape_argument(orig_input_shape, fn, "orig_input_shape", None)
    g = as_numeric_array(grad, fn, "grad")
    geo = _PoolGeometry(fn, shape, ksize, strides, padding, data_format, allow_explicit=False)
    if g.shape != geo.output_shape:
        raise ValueError(f"{fn}: grad has shape {g.shape}; average pooling of an input of shape {shape} "
                         f"with ksize {geo.ksize}, strides {geo.strides} gives {geo.output_shape}")
    compute, result_dtype = float_dtypes(fn, g)
    if out is not None:
        check_out(out, fn, geo.input_shape, result_dtype)
    gc = to_nhwc(g, geo.data_format, compute)
    dx = direct_output(out, geo.data_format, geo.input_nhwc, compute, (g,))
    _pooling.pool_backward(geo.plan, gc, None, dx)
    return deliver(dx, geo.data_format, result_dtype, out)
