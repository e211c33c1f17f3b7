"""2-D convolution with the semantics of ``tf.nn.conv2d``, its gradients and its transpose.

The functions here validate and normalise their arguments, choose an algorithm, pack the filters
for the micro-kernel and allocate the outputs; the arithmetic is in the compiled ``_conv`` module.
"""
import operator

import numpy as np

from fastconv import _conv
from fastconv._threads import MULTIPLY_ADDS_PER_THREAD, threads_for
from fastconv._validation import (
    as_numeric_array,
    check_int32,
    check_out,
    deliver,
    direct_output,
    float_dtypes,
    layout_shape,
    normalize_data_format,
    normalize_padding,
    normalize_spatial,
    to_nhwc,
    window_geometry,
)

ALGORITHMS = ("auto", "direct", "im2col", "winograd")

def _check_algorithm(algorithm, fn, geo=None):
    if algorithm not in ALGORITHMS:
        raise ValueError(f"{fn}: algorithm must be one of {ALGORITHMS}. Received: algorithm={algorithm!r}")
    if algorithm == "winograd" and geo is not None and not winograd_applies(geo.filter_shape[:2], geo.strides,
                                                                             geo.dilations):
        raise ValueError(f"{fn}: algorithm='winograd' needs 3x3 filters, strides 1 and dilations 1; received "
                         f"filters {geo.filter_shape}, strides {geo.strides}, dilations {geo.dilations}")


def winograd_applies(kernel_hw, strides, dilations):
    """Winograd F(2x2, 3x3) computes 3x3 filters at stride 1 without dilation."""
    return tuple(kernel_hw) == (3, 3) and tuple(strides) == (1, 1) and tuple(dilations) == (1, 1)


PASSES = ("forward", "input_gradient", "filter_gradient")


def select_algorithm(pass_, geometry, requested="auto", finite_filters=True):
    """The kernel that computes one pass of a convolution, and the one that takes over when it
    cannot: ``(algorithm, fallback)``, ``fallback`` None or the algorithm to run when the Winograd
    kernel meets an infinity or NaN in its input (it then returns without a reliable result).

    ``pass_`` is "forward", "input_gradient" (which convolves the output gradient: its input
    channels are the forward's output channels, its output the forward's input) or
    "filter_gradient"; ``geometry`` a :class:`ConvGeometry`; ``requested`` the caller's
    ``algorithm`` argument (validated: Winograd only where :func:`winograd_applies`).  Every
    decision is here; the rules and the measurements behind them (timings of every pass on the
    benchmark suite, benchmarks/report.py, and of the layers named, on the default threads):

    Forward and input gradient, ``requested="auto"``:

    - 3x3 filters at stride 1 with many channels on both sides (>= 16): Winograd F(2x2, 3x3),
      which does 16 multiplications per 2x2 outputs where the others do 36, when there are
      enough 2x2 output tiles: at least 256, and at least one per 512 filter pairs (in x out),
      since every block of tiles streams all 16 transformed filter matrices (with 512 channels
      and 512 tiles it only breaks even);
    - strided convolutions of many channels (>= 32 in): im2col, which streams packed patches
      through the micro-kernel in one long reduction instead of one short, gapped one per tap;
    - everything else: direct, which reads the input in place and needs no workspace (also for
      few output channels from many input channels: 1.1-1.5x faster than im2col, measured on
      3x3 and 5x5 layers of 16-128 -> 1-6 channels with the narrow micro-kernel).

    Overrides, whatever was requested:

    - forward with a non-finite filter: im2col.  TensorFlow multiplies the padding (zeros) by
      the filters, so an infinite weight over the padding gives NaN; only the im2col kernel
      multiplies the padding;
    - input gradient by Winograd with a padding wider than 2: direct (the gradient is Winograd's
      convolution of dY padded by 2 - pad, which must not be negative);
    - Winograd: fallback direct, for inputs holding an infinity or NaN (the transforms would mix
      it into NaNs that the direct convolution does not produce).

    Filter gradient (``requested`` "auto" or "winograd", which has no filter-gradient kernel and
    is accepted for symmetry with the other passes): at stride 1, direct for wide inputs (>= 64
    channels: the input channels of a tap fill many tiles and the rows of pixels are read in
    place) and for thin ones (< 8 channels: im2col's patch rows of kh kw cin values cost more to
    build than the products they feed: direct is 1.1-1.7x faster, measured with 1 and 2
    threads); im2col in between and for strided convolutions, whose direct kernel reads the
    input with gaps.
    """
    if pass_ not in PASSES:
        raise ValueError(f"select_algorithm: pass_ must be one of {PASSES}. Received: pass_={pass_!r}")
    if requested not in ALGORITHMS:
        raise ValueError(f"select_algorithm: requested must be one of {ALGORITHMS}. Received: requested={requested!r}")
    kh, kw, cin, cout = geometry.filter_shape
    strides, dilations = tuple(geometry.strides), tuple(geometry.dilations)
    if pass_ == "filter_gradient":
        if requested in ("auto", "winograd"):
            thin_or_wide = cin >= 64 or cin < 8
            return ("direct" if strides == (1, 1) and thin_or_wide else "im2col"), None
        return requested, None
    if pass_ == "forward" and not finite_filters:
        return "im2col", None
    algorithm = requested
    if algorithm == "auto":
        channels_in, channels_out = (cin, cout) if pass_ == "forward" else (cout, cin)
        n, oh, ow, _ = geometry.output_nhwc if pass_ == "forward" else geometry.input_nhwc
        tiles = n * -(-oh // 2) * -(-ow // 2)
        if (winograd_applies((kh, kw), strides, dilations) and channels_in >= 16 and channels_out >= 16
                and tiles >= 256 and tiles * 512 >= channels_in * channels_out):
            algorithm = "winograd"
        elif max(strides) > 1 and channels_in >= 32:
            algorithm = "im2col"
        else:
            algorithm = "direct"
    if algorithm == "winograd":
        if pass_ == "input_gradient" and max(geometry.pads) > 2:
            return "direct", None
        return "winograd", "direct"
    return algorithm, None


def _panel_width(n_cols, dtype):
    """nr: the columns of one packed panel of the micro-kernel chosen for ``n_cols`` columns."""
    return _conv.kernel_shape(np.dtype(dtype).itemsize, n_cols)[1]


def _panels(taps, rows, n_cols, dtype):
    """An empty buffer for filters packed as the micro-kernel's panels [n_cols / nr, taps, rows, nr]
    (the last panel zero padded by the packing), and the panel width nr."""
    nr = _panel_width(n_cols, dtype)
    return np.empty(-(-n_cols // nr) * taps * rows * nr, dtype=dtype), nr


def _pack(arr3d):
    """Filters as the micro-kernel's panels: arr3d[t, k, j] -> [j // nr, t, k, j % nr]."""
    t, k, j = arr3d.shape
    packed, nr = _panels(t, k, j, arr3d.dtype)
    _conv.pack_panels(arr3d, packed, nr)
    return packed


def _pad_bias(bias, n_cols, dtype):
    nr = _panel_width(n_cols, dtype)
    padded = np.zeros(-(-n_cols // nr) * nr, dtype=dtype)
    padded[:n_cols] = bias
    return padded


def _conv_threads(geo):
    """Threads for one pass (forward or a gradient): each costs the forward's multiply-adds."""
    n, oh, ow, cout = geo.output_nhwc
    kh, kw, cin, _ = geo.filter_shape
    return threads_for(n * oh * ow * cout * kh * kw * cin, MULTIPLY_ADDS_PER_THREAD)


class ConvGeometry:
    """Validated arguments of a convolution: layouts, strides, dilations, padding, output size."""

    def __init__(self, fn, input_shape, filter_shape, strides, padding, data_format, dilations):
        self.data_format = fmt = normalize_data_format(data_format, fn)
        if len(input_shape) != 4:
            raise ValueError(f"{fn}: input must be 4-D ({fmt}); received shape {tuple(input_shape)}")
        if len(filter_shape) != 4:
            raise ValueError(
                f"{fn}: filters must be 4-D [filter_height, filter_width, in_channels, out_channels]; "
                f"received shape {tuple(filter_shape)}"
            )
        self.strides = normalize_spatial(strides, fn, "strides", fmt)
        self.dilations = normalize_spatial(dilations, fn, "dilations", fmt)
        self.padding = normalize_padding(padding, fn, fmt)
        n, h, w, c = input_shape if fmt == "NHWC" else (input_shape[0], *input_shape[2:], input_shape[1])
        kh, kw, cin, cout = filter_shape
        if cin != c:
            raise ValueError(
                f"{fn}: filters have {cin} input channels but the input has {c} "
                f"(input shape {tuple(input_shape)} in {fmt}, filters shape {tuple(filter_shape)})"
            )
        if kh < 1 or kw < 1:
            raise ValueError(f"{fn}: filter height and width must be positive; received filters shape {tuple(filter_shape)}")
        self.input_nhwc = (n, h, w, c)
        self.filter_shape = (kh, kw, cin, cout)
        oh, pt, pb = window_geometry(h, kh, self.strides[0], self.dilations[0], self.padding, 0)
        ow, pl, pr = window_geometry(w, kw, self.strides[1], self.dilations[1], self.padding, 1)
        if oh < 1 or ow < 1:
            raise ValueError(
                f"{fn}: the filter (effective size {(kh - 1) * self.dilations[0] + 1}x{(kw - 1) * self.dilations[1] + 1} "
                f"with dilations {self.dilations}) does not fit the padded input "
                f"(input shape {tuple(input_shape)} in {fmt}, padding {padding!r})"
            )
        self.pads = (pt, pb, pl, pr)
        self.output_nhwc = (n, oh, ow, cout)
        check_int32(fn, reduction_length=kh * kw * cin, out_channels=cout)

    @property
    def output_shape(self):
        return layout_shape(self.output_nhwc, self.data_format)


def conv2d(input, filters, strides, padding, data_format="NHWC", dilations=None, name=None, *,
           algorithm="auto", out=None, bias=None, activation=None):
    """2-D convolution (cross-correlation), as ``tf.nn.conv2d``.

    Parameters
    ----------
    input : array_like, 4-D
        ``[batch, height, width, channels]`` (NHWC) or ``[batch, channels, height, width]`` (NCHW).
    filters : array_like, 4-D
        ``[filter_height, filter_width, in_channels, out_channels]``.
    strides, dilations : int or list of 1, 2 or 4 ints
        As in TensorFlow; in the 4-int form the batch and channel entries must be 1.
    padding : 'SAME', 'VALID' or explicit pairs
        Explicit: ``[[0, 0], [top, bottom], [left, right], [0, 0]]`` for NHWC
        (``[[0, 0], [0, 0], [top, bottom], [left, right]]`` for NCHW). SAME pads as TensorFlow,
        the odd row or column at the bottom or right.
    data_format : 'NHWC' or 'NCHW'
    name : ignored (accepted for compatibility with TensorFlow code).
    algorithm : 'auto', 'direct', 'im2col' or 'winograd'
        'auto' picks by shape (see :func:`select_algorithm`). All give the same results up to
        the rounding of a different summation order ('winograd': 3x3 filters, stride 1, no
        dilation only; within about 1e-5 relative of the others in float32).
    out : ndarray, optional
        Where to write the result (its shape and dtype must be the result's).
    bias : array_like, optional
        One value per output channel, added in the same pass (fastconv's extension: the
        result equals ``bias_add(conv2d(...), bias)`` bit for bit).
    activation : None or 'relu'
        Applied after the bias in the same pass (``tf.nn.relu`` semantics: NaN stays NaN).

    Returns
    -------
    ndarray
        ``[batch, out_height, out_width, out_channels]`` in ``data_format``; float32 when both
        operands are float32, float64 when either is float64 or both are integers or bools.
    """
    fn = "conv2d"
    x = as_numeric_array(input, fn, "input")
    w = as_numeric_array(filters, fn, "filters")
    _check_algorithm(algorithm, fn)
    geo = ConvGeometry(fn, x.shape, w.shape, strides, padding, data_format, dilations)
    _check_algorithm(algorithm, fn, geo)
    if activation not in (None, "relu"):
        raise ValueError(f"{fn}: activation must be None or 'relu'. Received: activation={activation!r}")
    operands = (x, w)
    if bias is not None:
        b = as_numeric_array(bias, fn, "bias")
        if b.shape != (geo.filter_shape[3],):
            raise ValueError(f"{fn}: bias must have shape ({geo.filter_shape[3]},) (one value per output "
                             f"channel of filters {geo.filter_shape}); received shape {b.shape}")
        operands += (b,)
    compute, result_dtype = float_dtypes(fn, *operands)
    if out is not None:
        check_out(out, fn, geo.output_shape, result_dtype)
    xc = to_nhwc(x, geo.data_format, compute)
    wc = np.ascontiguousarray(w, dtype=compute)
    bc = None if bias is None else np.ascontiguousarray(b, dtype=compute)
    y = direct_output(out, geo.data_format, geo.output_nhwc, compute, operands)
    _forward(xc, wc, y, geo, algorithm, bc, activation == "relu")
    return deliver(y, geo.data_format, result_dtype, out)


def _winograd(x, w, y, pt, pl, bias, relu, n_threads):
    """x (N, H, W, cin) * w (3, 3, cin, cout) -> y by Winograd F(2x2, 3x3); False if x is not finite.

    The filter transform U = G w G^T (4 x 4 per channel pair) is computed in double by the kernel
    module and packed as the micro-kernel's panels [jb, xi, cin, 0:nr] for the 16 positions xi.
    """
    cin, cout = w.shape[2], w.shape[3]
    packed, nr = _panels(16, cin, cout, x.dtype)
    _conv.pack_winograd_filters(w.astype(x.dtype, copy=False), packed, nr)
    b = np.zeros(cout, dtype=x.dtype) if bias is None else bias
    return _conv.winograd_forward(x, packed, y, pt, pl, b, relu, n_threads)


def _forward(x, w, y, geo, algorithm, bias=None, relu=False):
    """Run the forward kernel: x (NHWC, contiguous) * w -> y (NHWC, contiguous), + bias, ReLU."""
    kh, kw, cin, cout = geo.filter_shape
    sh, sw = geo.strides
    dh, dw = geo.dilations
    pt, _, pl, _ = geo.pads
    if y.size == 0:
        return
    if cin == 0:
        y[...] = 0 if bias is None else np.maximum(bias, 0) if relu else bias
        return
    algorithm, fallback = select_algorithm("forward", geo, algorithm, bool(np.isfinite(w).all()))
    n_threads = _conv_threads(geo)
    if algorithm == "winograd":
        if _winograd(x, w, y, pt, pl, bias, relu, n_threads):
            return
        algorithm = fallback
    # Both kernels read the filters as panels [jb, (kh, kw, cin), 0:nr].
    packed = _pack(w.reshape(1, kh * kw * cin, cout))
    bias_p = None if bias is None else _pad_bias(bias, cout, x.dtype)
    if algorithm == "direct":
        _conv.direct(x, packed, y, (kh, sh, 1, -pt, dh), (kw, sw, 1, -pl, dw), bias_p, relu, n_threads)
    else:
        _conv.im2col_forward(x, packed, y, (kh, kw, sh, sw, dh, dw, pt, pl), bias_p, relu, n_threads)


def _shape_argument(value, fn, name, length_options):
    """A shape argument (list, tuple, array of ints) as a tuple of non-negative ints."""
    try:
        shape = tuple(int(operator.index(v)) for v in np.asarray(value).ravel().tolist())
    except TypeError:
        raise TypeError(f"{fn}: {name} must be a list of ints. Received: {name}={value!r}") from None
    if len(shape) not in length_options or any(v < 0 for v in shape):
        raise ValueError(
            f"{fn}: {name} must be {' or '.join(map(str, length_options))} non-negative ints. "
            f"Received: {name}={value!r}"
        )
    return shape


def conv2d_backprop_input(input_sizes, filters, out_backprop, strides, padding, data_format="NHWC",
                          dilations=None, name=None, *, algorithm="auto", out=None):
    """Gradient of :func:`conv2d` with respect to its input, as ``tf.compat.v1.nn.conv2d_backprop_input``.

    ``input_sizes`` is the shape of the forward input (4 ints in ``data_format`` order, or its 2
    spatial sizes); ``filters`` the forward filters ``[kh, kw, in_channels, out_channels]``;
    ``out_backprop`` the gradient of the forward output.  Input rows and columns that no output
    window saw (strides that do not divide the size) get zero.

    algorithm 'direct' gathers, for each input pixel, the output pixels whose window covers it
    (a convolution of ``out_backprop`` with the flipped filters, phase by phase of the stride);
    'im2col' multiplies ``out_backprop`` by the transposed filter matrix and adds the columns
    back (col2im), one image per thread; 'winograd' (3x3, stride 1, no dilation) convolves
    ``out_backprop`` with the flipped filters by Winograd F(2x2, 3x3).
    """
    return _input_gradient("conv2d_backprop_input", "input_sizes", "out_backprop", input_sizes, filters,
                           out_backprop, strides, padding, data_format, dilations, algorithm, out)


def _input_gradient(fn, sizes_name, dy_name, input_sizes, filters, out_backprop, strides, padding,
                    data_format, dilations, algorithm, out):
    """conv2d_backprop_input and conv2d_transpose, with their own names in the error messages."""
    w = as_numeric_array(filters, fn, "filters")
    dy = as_numeric_array(out_backprop, fn, dy_name)
    _check_algorithm(algorithm, fn)
    fmt = normalize_data_format(data_format, fn)
    sizes = _shape_argument(input_sizes, fn, sizes_name, (2, 4))
    if dy.ndim != 4:
        raise ValueError(f"{fn}: {dy_name} must be 4-D ({fmt}); received shape {dy.shape}")
    if len(sizes) == 2:
        if w.ndim != 4:
            raise ValueError(f"{fn}: filters must be 4-D; received shape {w.shape}")
        sizes = layout_shape((dy.shape[0], *sizes, w.shape[2]), fmt)
    geo = ConvGeometry(fn, sizes, w.shape, strides, padding, fmt, dilations)
    _check_algorithm(algorithm, fn, geo)
    if dy.shape != geo.output_shape:
        raise ValueError(
            f"{fn}: {dy_name} has shape {dy.shape}, but conv2d of an input of shape {sizes} "
            f"with filters of shape {geo.filter_shape}, strides {geo.strides}, dilations {geo.dilations} "
            f"and padding {padding!r} gives {geo.output_shape}"
        )
    compute, result_dtype = float_dtypes(fn, w, dy)
    if out is not None:
        check_out(out, fn, sizes, result_dtype)
    dyc = to_nhwc(dy, fmt, compute)
    wc = np.ascontiguousarray(w, dtype=compute)
    dx = direct_output(out, fmt, geo.input_nhwc, compute, (w, dy))
    _backprop_input(dyc, wc, dx, geo, algorithm)
    return deliver(dx, fmt, result_dtype, out)


def _backprop_input(dy, w, dx, geo, algorithm):
    kh, kw, cin, cout = geo.filter_shape
    sh, sw = geo.strides
    dh, dw = geo.dilations
    pt, _, pl, _ = geo.pads
    if dx.size == 0:
        return
    if cout == 0:
        dx[...] = 0
        return
    algorithm, fallback = select_algorithm("input_gradient", geo, algorithm)
    n_threads = _conv_threads(geo)
    if algorithm == "winograd":
        # At stride 1 the input gradient is the convolution of dY, padded by 2 - pad on each
        # side, with the filters flipped in space and transposed in channels.
        flipped = w[::-1, ::-1].transpose(0, 1, 3, 2)
        if _winograd(dy, flipped, dx, 2 - pt, 2 - pl, None, False, n_threads):
            return
        algorithm = fallback
    if algorithm == "direct":
        # Panels of W^T per tap: [jb over cin, (kh, kw), cout, 0:nr].
        packed = _pack(w.reshape(kh * kw, cin, cout).transpose(0, 2, 1))
        _conv.direct(dy, packed, dx, (kh, 1, sh, pt, -dh), (kw, 1, sw, pl, -dw), None, False, n_threads)
    else:
        # Panels of W^T over the patch columns: [kb over (kh, kw, cin), cout, 0:nr].
        packed = _pack(w.reshape(1, kh * kw * cin, cout).transpose(0, 2, 1))
        _conv.im2col_backprop_input(dy, packed, dx, (kh, kw, sh, sw, dh, dw, pt, pl), n_threads)


def conv2d_backprop_filter(input, filter_sizes, out_backprop, strides, padding, data_format="NHWC",
                           dilations=None, name=None, *, algorithm="auto", out=None):
    """Gradient of :func:`conv2d` with respect to its filters, as ``tf.compat.v1.nn.conv2d_backprop_filter``.

    ``filter_sizes`` is the filter shape ``[kh, kw, in_channels, out_channels]``.  The sum over
    the batch is split into a fixed number of slices, each summed by one thread, then added in
    order: no data races, and the same bits for any number of threads.

    algorithm 'direct' reads the input in place, tap by tap, and suits inputs with many
    channels; 'im2col' packs patches first, which fills the micro-kernel for thin inputs;
    'winograd' (accepted for symmetry with the other passes) chooses like 'auto'.
    """
    fn = "conv2d_backprop_filter"
    x = as_numeric_array(input, fn, "input")
    dy = as_numeric_array(out_backprop, fn, "out_backprop")
    _check_algorithm(algorithm, fn)
    fshape = _shape_argument(filter_sizes, fn, "filter_sizes", (4,))
    geo = ConvGeometry(fn, x.shape, fshape, strides, padding, data_format, dilations)
    if dy.shape != geo.output_shape:
        raise ValueError(
            f"{fn}: out_backprop has shape {dy.shape}, but conv2d of the input (shape {x.shape}) with "
            f"filters of shape {fshape}, strides {geo.strides}, dilations {geo.dilations} and padding "
            f"{padding!r} gives {geo.output_shape}"
        )
    compute, result_dtype = float_dtypes(fn, x, dy)
    if out is not None:
        check_out(out, fn, fshape, result_dtype)
    xc = to_nhwc(x, geo.data_format, compute)
    dyc = to_nhwc(dy, geo.data_format, compute)
    dw = _backprop_filter(xc, dyc, geo, algorithm)
    if out is None:
        return dw.astype(result_dtype, copy=False)
    np.copyto(out, dw, casting="same_kind")
    return out


def _backprop_filter(x, dy, geo, algorithm):
    kh, kw, cin, cout = geo.filter_shape
    n, oh, _, _ = geo.output_nhwc
    size = kh * kw * cin * cout
    if size == 0 or dy.size == 0:
        return np.zeros(geo.filter_shape, dtype=x.dtype)
    algorithm, _ = select_algorithm("filter_gradient", geo, algorithm)
    pt, _, pl, _ = geo.pads
    slices = _conv.filter_grad_slices(n * oh, size, x.dtype.itemsize)
    partials = np.empty((slices, size), dtype=x.dtype)
    dw = np.empty(size, dtype=x.dtype)
    geom = (kh, kw, *geo.strides, *geo.dilations, pt, pl)
    _conv.backprop_filter(x, dy, partials, dw, geom, algorithm == "im2col", _conv_threads(geo))
    return dw.reshape(geo.filter_shape)


def conv2d_transpose(input, filters, output_shape, strides, padding="SAME", data_format="NHWC",
                     dilations=None, name=None, *, algorithm="auto", out=None):
    """Transposed convolution ("deconvolution"), as ``tf.nn.conv2d_transpose``.

    ``filters`` is ``[height, width, output_channels, in_channels]`` and ``output_shape`` the
    shape of the result (4 ints in ``data_format`` order, or its 2 spatial sizes): the gradient
    of a :func:`conv2d` whose input has ``output_shape``, taken at ``input``.
    """
    return _input_gradient("conv2d_transpose", "output_shape", "input", output_shape, filters, input,
                           strides, padding, data_format, dilations, algorithm, out)
