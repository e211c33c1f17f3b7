"""2-D convolution with the semantics of ``tf.nn.conv2d``, its gradients and its transpose.

The functions here validate and normalise their arguments (:class:`ConvGeometry`), choose the
algorithm of each pass in one place (:func:`select_algorithm`), plan the pass (:class:`ConvPlan`:
the typed plan the kernels check their buffers against, the packed filters) and allocate the
outputs; the arithmetic is in the compiled ``_conv`` module.
"""
import numpy as np

from fastconv import _buffers, _conv
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

ALGORITHMS = ("auto", "direct", "im2col", "winograd")

def _check_algorithm(algorithm, fn, geo=None):
    if algorithm not in ALGORITHMS:
        raise ValueError(f"{fn}: algorithm must be one of {ALGORITHMS}. Received: algorithm={algorithm!r}")
    if algorithm == "winograd" and geo is not None and not winograd_applies(geo.filter_shape[:2], geo.strides,
                                                                             geo.dilations):
        raise ValueError(f"{fn}: algorithm='winograd' needs 3x3 filters, strides 1 and dilations 1; received "
                         f"filters {geo.filter_shape}, strides {geo.strides}, dilations {geo.dilations}")


def winograd_applies(kernel_hw, strides, dilations):
    """Winograd (F(2x2, 3x3) and F(4x4, 3x3)) computes 3x3 filters at stride 1 without dilation."""
    return tuple(kernel_hw) == (3, 3) and tuple(strides) == (1, 1) and tuple(dilations) == (1, 1)


PASSES = ("forward", "input_gradient", "filter_gradient")


def select_algorithm(pass_, geometry, requested="auto", finite_filters=True, itemsize=4):
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

    - 3x3 filters at stride 1 with many channels on both sides (>= 16): Winograd, which does 16
      multiplications per 2x2 outputs (F(2x2, 3x3)) or 36 per 4x4 outputs (F(4x4, 3x3), the
      plan's choice where it does fewer: ``fastconv._conv.winograd_tile_for``) where the others
      do 36 per output, when there are enough 2x2 tiles (of the pass's output): at least 25, and
      at least one per 4096 filter pairs (in x out), since every block of tiles streams all the
      transformed filter matrices.  Measured with F(2x2, 3x3) against direct, 2 threads,
      forward / input gradient: 1.64-2.02x / 1.69-2.00x with 25-196 tiles on 10x10-28x28 images
      of 64-256 channels (batch 1 to 4), 1.09x / 1.25x for 256 tiles of 512 channels (one per
      1024 pairs), 0.95x / 1.29x for 32 tiles of 512 channels (one per 8192 pairs: direct);
    - forward of a 1x1 convolution at stride 1 without padding: im2col, which reads the input in
      place as its own patch matrix (a GEMM of the batch's pixels by the filters, in blocks of 48
      pixels: full tiles where the direct kernel's rows of 7 or 14 pixels end in partial ones;
      1.18x faster than direct over the nine 1x1 layers of ResNet50 at batch 32, measured with
      2 threads on a loaded machine);
    - strided convolutions of many channels (>= 32 in): im2col, which streams packed patches
      through the micro-kernel in one long reduction instead of one short, gapped one per tap;
    - everything else: direct, which reads the input in place and needs no workspace (also for
      few output channels from many input channels: 1.1-1.5x faster than im2col, measured on
      3x3 and 5x5 layers of 16-128 -> 1-6 channels with the narrow micro-kernel).

    Overrides, whatever was requested:

    - forward with a non-finite filter: im2col.  TensorFlow multiplies the padding (zeros) by
      the filters, so an infinite weight over the padding gives NaN; only the im2col kernel
      multiplies the padding;
    - input gradient with a non-finite filter, when Winograd would run: direct.  The Winograd
      input gradient convolves dY padded with 2 - pad zeros, so an infinite weight over that
      padding gives NaN where TensorFlow, direct and im2col (which multiply real dY only) do not;
    - input gradient by Winograd with a padding wider than 2: direct (the gradient is Winograd's
      convolution of dY padded by 2 - pad, which must not be negative);
    - Winograd: fallback direct, for inputs holding an infinity or NaN (the transforms would mix
      it into NaNs that the direct convolution does not produce).

    Filter gradient (``requested`` "auto" or "winograd", which has no filter-gradient kernel and
    is accepted for symmetry with the other passes; ``itemsize`` is the compute dtype's): im2col
    where it runs as one GEMM per tap over the whole batch (small images of many channels, large
    filters: see ``gemm_filter_gradient`` in fastconv/_conv.pyx, 1.1-5.4x the others there); else
    at stride 1, direct for wide inputs (>= 64
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
            n, oh, ow, _ = geometry.output_nhwc
            if _conv.filter_gradient_by_gemm(n * oh, n * oh * ow, cin, kh * kw, cout, itemsize):
                return "im2col", None
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
        if pass_ == "forward" and (kh, kw) == (1, 1) and strides == (1, 1) and not any(geometry.pads):
            algorithm = "im2col"
        elif (winograd_applies((kh, kw), strides, dilations) and channels_in >= 16 and channels_out >= 16
                and tiles >= 25 and tiles * 4096 >= channels_in * channels_out):
            algorithm = "winograd"
        elif max(strides) > 1 and channels_in >= 32:
            algorithm = "im2col"
        else:
            algorithm = "direct"
    if algorithm == "winograd":
        if pass_ == "input_gradient" and (max(geometry.pads) > 2 or not finite_filters):
            return "direct", None
        return "winograd", "direct"
    return algorithm, None


def _conv_threads(geo):
    """Threads for one pass (forward or a gradient): each costs the forward's multiply-adds."""
    n, oh, ow, cout = geo.output_nhwc
    kh, kw, cin, _ = geo.filter_shape
    return threads_for(n * oh * ow * cout * kh * kw * cin, MULTIPLY_ADDS_PER_THREAD)


class ConvGeometry(FilterGeometry):
    """Validated arguments of a convolution: layouts, strides, dilations, padding, output size."""

    def output_channels(self, in_channels, last):
        return last

    def check_sizes(self, fn):
        kh, kw, cin, cout = self.filter_shape
        check_int32(fn, reduction_length=kh * kw * cin, out_channels=cout)


class ConvPlan:
    """One pass of one convolution, planned once and run any number of times.

    Built from a :class:`ConvGeometry`, the pass ("forward", "input_gradient" or
    "filter_gradient"), the compute dtype and the requested algorithm: the algorithm and its
    fallback (:func:`select_algorithm`), the thread count, and the typed plan the kernels take,
    ``kernel`` (``fastconv._conv.KernelPlan``: the geometry, the micro-kernel and its panel width
    ``nr``, the sizes of the packed filters, of the padded bias and of each thread's workspace,
    the slices of the filter gradient).  The kernels check every buffer against it.
    ``winograd_tile`` (2 or 4) fixes a Winograd plan's tile, F(2x2, 3x3) or F(4x4, 3x3), instead
    of the plan's choice (0; ignored by the other algorithms).

    Packing the filters is a step of its own (:meth:`pack`): a plan and its packed filters can be
    kept (per layer and weight version) and run again on new inputs with :meth:`run`.  The thread
    count is part of the plan (results do not depend on it).
    """

    def __init__(self, geometry, pass_, dtype, algorithm="auto", finite_filters=True, n_threads=None,
                 winograd_tile=0):
        self.geometry = geometry
        self.pass_ = pass_
        self.dtype = np.dtype(dtype)
        self.algorithm, fallback = select_algorithm(pass_, geometry, algorithm, finite_filters, self.dtype.itemsize)
        self.n_threads = _conv_threads(geometry) if n_threads is None else n_threads
        kh, kw, _, _ = geometry.filter_shape
        pt, _, pl, _ = geometry.pads
        self.kernel = _conv.KernelPlan(pass_, self.algorithm, self.dtype.itemsize, geometry.input_nhwc,
                                       geometry.output_nhwc, (kh, kw), geometry.strides, geometry.dilations,
                                       (pt, pl), self.n_threads,
                                       winograd_tile if self.algorithm == "winograd" else 0)
        self.fallback = None if fallback is None else ConvPlan(geometry, pass_, dtype, fallback,
                                                               n_threads=self.n_threads)

    def __repr__(self):
        return f"ConvPlan({self.kernel!r}{'' if self.fallback is None else ', fallback ' + self.fallback.algorithm})"

    def pack(self, filters):
        """The filters ``[kh, kw, in_channels, out_channels]`` packed as this plan's kernel reads them."""
        if self.pass_ == "filter_gradient":
            raise ValueError("ConvPlan.pack: the filter gradient reads no filters")
        w = np.asarray(filters, dtype=self.dtype)
        kh, kw, cin, cout = self.geometry.filter_shape
        # From the buffer cache: a training step packs every layer's filters afresh (twice: for the
        # forward and for the input gradient), up to 9.4 MiB each in ResNet50.
        packed = _buffers.empty((self.kernel.packed_size,), self.dtype)
        if self.algorithm == "winograd":
            # The input gradient convolves dY with the filters flipped in space, transposed in channels.
            _conv.pack_winograd_filters(self.kernel, w if self.pass_ == "forward" else
                                        w[::-1, ::-1].transpose(0, 1, 3, 2), packed)
        elif self.pass_ == "forward":
            _conv.pack_panels(self.kernel, w.reshape(1, kh * kw * cin, cout), packed)   # W over (kh, kw, cin)
        elif self.algorithm == "direct":
            _conv.pack_panels(self.kernel, w.reshape(kh * kw, cin, cout).transpose(0, 2, 1), packed)  # W^T per tap
        else:
            _conv.pack_panels(self.kernel, w.reshape(1, kh * kw * cin, cout).transpose(0, 2, 1), packed)  # W^T
        return packed

    def run(self, src, packed, dst, bias=None, relu=False, accumulate=False, relu6=False):
        """Forward or input gradient: ``src`` (x, or dY) -> ``dst`` (y, or dX), C-contiguous NHWC
        arrays of the plan's dtype, with ``packed`` from :meth:`pack` (and, forward only, one
        bias value per output channel and ReLU in the same pass).  ``accumulate`` (forward, not
        Winograd): ``dst`` holds an addend, a residual, and becomes ``relu(dst + conv + bias)``.
        ``relu6`` (forward, not Winograd): the clamp to [0, 6] in the same pass instead of ReLU.

        Returns False when the Winograd kernel met an infinity or NaN in ``src`` and wrote
        nothing reliable: then run ``self.fallback`` (see :func:`convolve`).
        """
        padded_bias = None
        if bias is not None:
            cout = self.geometry.filter_shape[3]
            if np.shape(bias) != (cout,):
                raise ValueError(f"ConvPlan.run: bias must have shape ({cout},); received shape {np.shape(bias)}")
            padded_bias = np.zeros(self.kernel.bias_size, dtype=self.dtype)
            padded_bias[:cout] = bias
        return _conv.convolve(self.kernel, src, packed, dst, padded_bias, relu, accumulate, relu6)

    def filter_gradient(self, x, dy):
        """dW ``[kh, kw, in_channels, out_channels]`` from x and dY (C-contiguous NHWC arrays)."""
        size = int(np.prod(self.geometry.filter_shape))
        partials = np.empty((self.kernel.slices, size), dtype=self.dtype)
        dw = np.empty(size, dtype=self.dtype)
        _conv.filter_gradient(self.kernel, x, dy, partials, dw)
        return dw.reshape(self.geometry.filter_shape)


def convolve(plan, src, filters, dst, bias=None, relu=False):
    """Run a forward or input-gradient ``plan``, and its fallback when the Winograd kernel refuses."""
    if not plan.run(src, plan.pack(filters), dst, bias, relu):
        plan.fallback.run(src, plan.fallback.pack(filters), dst, bias, relu)


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
        dilation only; F(4x4, 3x3) on most layers, F(2x2, 3x3) on small images; in float32
        within 1e-5 of the largest output, relative: measured against float64 2-8e-7 for
        F(2x2, 3x3) and 1-6e-6 for F(4x4, 3x3) on layers of 16-512 channels, where direct's own
        rounding is 0.5-3e-6).
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


def _forward(x, w, y, geo, algorithm, bias=None, relu=False):
    """Run the forward kernel: x (NHWC, contiguous) * w -> y (NHWC, contiguous), + bias, ReLU."""
    if y.size == 0:
        return
    if geo.filter_shape[2] == 0:
        y[...] = 0 if bias is None else np.maximum(bias, 0) if relu else bias
        return
    plan = ConvPlan(geo, "forward", x.dtype, algorithm, finite_filters=bool(np.isfinite(w).all()))
    convolve(plan, x, w, y, bias, relu)


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
    ``out_backprop`` with the flipped filters by Winograd (F(2x2, 3x3) or F(4x4, 3x3), as the forward).
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
    sizes = shape_argument(input_sizes, fn, sizes_name, (2, 4))
    if dy.ndim != 4:
        raise ValueError(f"{fn}: {dy_name} must be 4-D ({fmt}); received shape {dy.shape}")
    if len(sizes) == 2:
        if w.ndim != 4:
            raise ValueError(f"{fn}: filters must be 4-D; received shape {w.shape}")
        sizes = layout_shape((dy.shape[0], *sizes, w.shape[2]), fmt)
        check_elements(fn, sizes_name, sizes)
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
    if dx.size == 0:
        return
    if geo.filter_shape[3] == 0:
        dx[...] = 0
        return
    plan = ConvPlan(geo, "input_gradient", dy.dtype, algorithm, finite_filters=bool(np.isfinite(w).all()))
    convolve(plan, dy, w, dx)


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
    fshape = shape_argument(filter_sizes, fn, "filter_sizes", (4,))
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
    if 0 in geo.filter_shape or dy.size == 0:
        return np.zeros(geo.filter_shape, dtype=x.dtype)
    if any(geo.pads) and not all_finite(dy):
        # TensorFlow multiplies the padding (zeros) by dY like any input, so an infinite or NaN
        # gradient over the padding gives NaN; the kernels skip the padding, so for a non-finite
        # dY the zeros are made real first (VALID over the padded input has the same windows).
        pt, pb, pl, pr = geo.pads
        x = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
        geo = ConvGeometry("conv2d_backprop_filter", x.shape, geo.filter_shape, geo.strides, "VALID", "NHWC",
                           geo.dilations)
    elif (geo.filter_shape[:2] == (1, 1) and max(geo.strides) > 1 and not any(geo.pads)
          and algorithm in ("auto", "winograd")):
        # An unpadded 1x1 window at stride s reads x[:, ::s, ::s] only: that copy (a quarter of x
        # at stride 2) is the input of a stride-1 layer, whose filter gradient is one GEMM read in
        # place (ResNet50's projections at 112x112, batch 16: 2.0x the strided im2col kernel on
        # 14x14 and 7x7 inputs, the same on 28x28).
        _, oh, ow, _ = geo.output_nhwc
        sh, sw = geo.strides
        x = np.ascontiguousarray(x[:, :(oh - 1) * sh + 1:sh, :(ow - 1) * sw + 1:sw])
        geo = ConvGeometry("conv2d_backprop_filter", x.shape, geo.filter_shape, 1, "VALID", "NHWC", None)
    return ConvPlan(geo, "filter_gradient", x.dtype, algorithm).filter_gradient(x, dy)


def conv2d_transpose(input, filters, output_shape, strides, padding="SAME", data_format="NHWC",
                     dilations=None, name=None, *, algorithm="auto", out=None):
    """Transposed convolution ("deconvolution"), as ``tf.nn.conv2d_transpose``.

    ``filters`` is ``[height, width, output_channels, in_channels]`` and ``output_shape`` the
    shape of the result (4 ints in ``data_format`` order, or its 2 spatial sizes): the gradient
    of a :func:`conv2d` whose input has ``output_shape``, taken at ``input``.
    """
    return _input_gradient("conv2d_transpose", "output_shape", "input", output_shape, filters, input,
                           strides, padding, data_format, dilations, algorithm, out)
