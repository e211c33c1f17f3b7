"""Argument checking and normalisation shared by every public function of fastconv.

Each helper takes the name of the calling function and of the argument, so that an error says
where it comes from and what was received, e.g.::

    conv2d: strides must be an int or a list of 1, 2 or 4 positive ints. Received: strides=[1, 0]
"""
import operator

import numpy as np

from fastconv import _buffers

DATA_FORMATS = ("NHWC", "NCHW")

# Largest reduction length or channel count the micro-kernels take (their counters are C ints),
# and the largest stride, window size, dilation or padding any function takes.
MAX_INT32 = 2**31 - 1
# Largest number of elements of an array a shape argument or a result may describe (so also the
# largest extent of one axis): 2**59 float64 values are 2**62 bytes, so that every byte offset, and
# the index arithmetic of the kernels in ptrdiff_t (extents plus paddings below 2**31, positions
# times strides or dilations below 2**31), stays inside int64.  NumPy itself refuses arrays of
# 2**63 bytes or more with a ValueError that does not say which function or argument.
MAX_ELEMENTS = 2**59


def as_numeric_array(value, fn, name):
    """``value`` as an ndarray of bools, integers or floats; a TypeError for anything else."""
    try:
        arr = np.asarray(value)
    except ValueError as exc:  # ragged nested sequences
        raise ValueError(f"{fn}: {name} must be a rectangular array-like; {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{fn}: {name} must hold numbers (bool, integer or floating point); "
            f"received dtype {arr.dtype} with shape {arr.shape}"
        )
    return arr


def float_dtypes(fn, *arrays):
    """(compute dtype, result dtype) of a kernel over ``arrays``, by NumPy's promotion.

    float32 stays float32; float64 wins over float32; bools and integers compute in float64 (as
    NumPy would promote them with a float64); float16 computes in float32 and returns float16.
    """
    result = np.result_type(*arrays)
    if result.kind in "biu":
        return np.dtype(np.float64), np.dtype(np.float64)
    if result == np.float16:
        return np.dtype(np.float32), result
    if result in (np.float32, np.float64):
        return result, result
    raise TypeError(
        f"{fn}: dtype {result} is not supported (fastconv computes in float32 and float64); "
        f"received dtypes {', '.join(str(a.dtype) for a in arrays)}"
    )


def normalize_data_format(data_format, fn):
    if not isinstance(data_format, str) or data_format.upper() not in DATA_FORMATS:
        raise ValueError(f"{fn}: data_format must be 'NHWC' or 'NCHW'. Received: data_format={data_format!r}")
    return data_format.upper()


def _as_int(value):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError
    return operator.index(value)


def _check_geometry_limit(items, fn, name, value):
    if any(v > MAX_INT32 for v in items):
        raise ValueError(f"{fn}: {name} must be at most 2**31 - 1 (fastconv's kernels take no larger). "
                         f"Received: {name}={value!r}")


def shape_argument(value, fn, name, length_options):
    """A shape argument (list, tuple or array of ints) as a tuple of non-negative ints, of one of
    the lengths ``length_options`` (None: any length, for the caller to check).

    Floats, strings and bools are refused (never truncated); so is a shape of more than
    MAX_ELEMENTS elements, which no 64-bit index of fastconv's kernels reaches.
    """
    lengths = " or ".join(map(str, length_options)) if length_options else "a list of"
    expected = f"{fn}: {name} must be {lengths} non-negative ints"
    try:
        shape = tuple(_as_int(v) for v in np.asarray(value, dtype=object).ravel().tolist())
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: {name} must be a list of ints (not floats, strings or bools). "
                        f"Received: {name}={value!r}") from None
    if (length_options and len(shape) not in length_options) or any(v < 0 for v in shape):
        raise ValueError(f"{expected}. Received: {name}={value!r}")
    check_elements(fn, name, shape)
    return shape


def check_elements(fn, name, shape, because=""):
    """Refuse a shape of more than MAX_ELEMENTS elements (counting an empty axis as 1: each extent is
    used in index arithmetic even when the array is empty); ``because`` names the arguments that
    gave the shape."""
    size = 1
    for v in shape:
        size *= max(int(v), 1)
    if size > MAX_ELEMENTS:
        raise ValueError(f"{fn}: {name} would have shape {tuple(shape)}, more elements than fastconv's 64-bit "
                         f"indices take (at most 2**59){because}")


def normalize_spatial(value, fn, name, data_format, default=1):
    """strides / dilations / ksize in TensorFlow's forms -> (along H, along W).

    An int, or a list of 1, 2 or 4 ints; in the 4-int form the batch and channel entries must
    be 1 (as TensorFlow requires) and the spatial ones are read where ``data_format`` puts them.
    """
    if value is None:
        return (default, default)
    expected = f"{fn}: {name} must be an int or a list of 1, 2 or 4 positive ints. Received: {name}={value!r}"
    if isinstance(value, (str, bytes)):   # iterable, but not a list of ints (b"1" would read as [49])
        raise TypeError(expected)
    try:
        items = [_as_int(value)]
    except TypeError:
        try:
            items = [_as_int(v) for v in value]
        except TypeError:
            raise TypeError(expected) from None
    if len(items) == 1:
        items = items * 2
    elif len(items) == 4:
        h_axis, w_axis = (1, 2) if data_format == "NHWC" else (2, 3)
        others = [items[i] for i in range(4) if i not in (h_axis, w_axis)]
        if any(v != 1 for v in others):
            raise ValueError(
                f"{fn}: {name} in the batch and channel dimensions must be 1 "
                f"(data_format={data_format!r}). Received: {name}={value!r}"
            )
        items = [items[h_axis], items[w_axis]]
    elif len(items) != 2:
        raise ValueError(expected)
    if any(v < 1 for v in items):
        raise ValueError(expected)
    _check_geometry_limit(items, fn, name, value)
    return tuple(items)


def normalize_padding(padding, fn, data_format, allow_explicit=True):
    """'SAME', 'VALID' (any case) or explicit pairs -> 'SAME', 'VALID' or ((top, bottom), (left, right)).

    Explicit padding takes TensorFlow's form, one pair per dimension of the input in
    ``data_format`` order with zeros for batch and channels, e.g. [[0, 0], [1, 1], [2, 2], [0, 0]]
    for NHWC; two spatial pairs [[1, 1], [2, 2]] are accepted as a shorthand.
    """
    if isinstance(padding, str):
        mode = padding.upper()
        if mode in ("SAME", "VALID"):
            return mode
        raise ValueError(f"{fn}: padding must be 'SAME', 'VALID' or explicit pairs. Received: padding={padding!r}")
    if not allow_explicit:
        raise ValueError(f"{fn}: padding must be 'SAME' or 'VALID'. Received: padding={padding!r}")
    try:
        if isinstance(padding, bytes) or any(isinstance(pair, (str, bytes)) for pair in padding):
            raise TypeError
        pairs = [[_as_int(v) for v in pair] for pair in padding]
    except TypeError:
        raise TypeError(
            f"{fn}: padding must be 'SAME', 'VALID' or a list of [before, after] int pairs. "
            f"Received: padding={padding!r}"
        ) from None
    if any(len(p) != 2 for p in pairs) or len(pairs) not in (2, 4):
        raise ValueError(
            f"{fn}: explicit padding must be 4 pairs (one per dimension of {data_format}) or 2 spatial pairs. "
            f"Received: padding={padding!r}"
        )
    if len(pairs) == 4:
        h_axis, w_axis = (1, 2) if data_format == "NHWC" else (2, 3)
        if any(pairs[i] != [0, 0] for i in range(4) if i not in (h_axis, w_axis)):
            raise ValueError(
                f"{fn}: explicit padding of the batch and channel dimensions must be [0, 0] "
                f"(data_format={data_format!r}). Received: padding={padding!r}"
            )
        pairs = [pairs[h_axis], pairs[w_axis]]
    if any(v < 0 for p in pairs for v in p):
        raise ValueError(f"{fn}: explicit padding must not be negative. Received: padding={padding!r}")
    _check_geometry_limit([v for p in pairs for v in p], fn, "padding", padding)
    return tuple(tuple(p) for p in pairs)


def window_geometry(size, window, stride, dilation, padding, axis):
    """Output extent and (pad_before, pad_after) of one spatial axis, as TensorFlow computes them.

    ``padding`` is 'SAME', 'VALID' or the explicit pairs from :func:`normalize_padding`; ``axis``
    is 0 (height) or 1 (width).  The effective window is (window - 1) * dilation + 1.
    SAME: out = ceil(size / stride), total padding max((out - 1) * stride + window_eff - size, 0),
    the smaller half before (so an odd total puts the extra row at the bottom/right).
    VALID: out = ceil((size - window_eff + 1) / stride), no padding.
    Explicit: out = floor((size + before + after - window_eff) / stride) + 1.
    Returns out <= 0 when the window does not fit; the caller reports it.
    """
    eff = (window - 1) * dilation + 1
    if padding == "SAME":
        out = -(-size // stride)
        total = max((out - 1) * stride + eff - size, 0)
        return out, total // 2, total - total // 2
    if padding == "VALID":
        before = after = 0
    else:
        before, after = padding[axis]
    span = size + before + after - eff
    out = span // stride + 1 if span >= 0 else 0
    return out, before, after


def all_finite(a):
    """Whether every value of the float array ``a`` is finite, without a temporary of its size:
    ``np.isfinite(a).all()`` makes a bool array as large as ``a`` (25 MiB, the peak of a filter
    gradient on a 56x56x64 dY at batch 128, where the kernel itself needs 0.2 MiB).  NumPy's min
    and max are NaN where a value is NaN, and an infinity is the minimum or the maximum."""
    return a.size == 0 or bool(np.isfinite(np.min(a)) and np.isfinite(np.max(a)))


def to_nhwc(arr, data_format, dtype):
    """A C-contiguous NHWC array of ``dtype`` (a view of ``arr`` when it already is one)."""
    if data_format == "NCHW":
        arr = arr.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(arr, dtype=dtype)


def from_nhwc(arr, data_format):
    return arr.transpose(0, 3, 1, 2) if data_format == "NCHW" else arr


def nhwc_shape(shape, data_format):
    return shape if data_format == "NHWC" else (shape[0], shape[2], shape[3], shape[1])


def layout_shape(nhwc, data_format):
    """An NHWC shape in ``data_format`` order."""
    n, h, w, c = nhwc
    return (n, h, w, c) if data_format == "NHWC" else (n, c, h, w)


def check_out(out, fn, shape, dtype):
    """Validate an ``out=`` array: an ndarray of exactly the result's shape and dtype."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{fn}: out must be a numpy.ndarray. Received: out of type {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{fn}: out has shape {out.shape}, the result has shape {tuple(shape)}")
    if out.dtype != dtype:
        raise TypeError(f"{fn}: out has dtype {out.dtype}, the result has dtype {dtype}")
    if not out.flags.writeable:
        raise ValueError(f"{fn}: out is read-only")
    return out


def deliver(result_nhwc, data_format, result_dtype, out):
    """Return the NHWC result in ``data_format`` and ``result_dtype``, written into ``out`` if given."""
    result = from_nhwc(result_nhwc, data_format)
    if out is None:
        if result.dtype != result_dtype or data_format != "NHWC":
            result = np.ascontiguousarray(result, dtype=result_dtype)
        return result
    if result is not out:
        np.copyto(out, result, casting="same_kind")
    return out


def direct_output(out, data_format, shape_nhwc, compute_dtype, inputs):
    """Where a kernel may write its NHWC result: ``out`` itself when that is safe, else a new array.

    ``out`` qualifies when it is NHWC, C-contiguous, of the compute dtype and shares no memory
    with any input (a kernel reads its inputs while it writes).
    """
    if (
        out is not None
        and data_format == "NHWC"
        and out.dtype == compute_dtype
        and out.flags.c_contiguous
        and not any(np.shares_memory(out, a) for a in inputs)
    ):
        return out
    return _buffers.empty(shape_nhwc, compute_dtype)


class FilterGeometry:
    """Validated arguments of a filter sliding over NHWC/NCHW images: layout, strides,
    dilations, padding, and the sizes they give (``input_nhwc``, ``filter_shape``, ``pads`` =
    (top, bottom, left, right), ``output_nhwc``).  A subclass names its filter's last axis and
    says how many channels come out (conv2d's out_channels, depthwise's in x multiplier)."""

    FILTER = "filters"                      # how messages call the filter argument
    LAST_AXIS = "out_channels"              # the name of the filter's last axis

    def output_channels(self, in_channels, last):
        raise NotImplementedError

    def check_sizes(self, fn):
        """Limits of the kernels beyond the element counts (int32 lengths)."""

    def __init__(self, fn, input_shape, filter_shape, strides, padding, data_format, dilations):
        self.data_format = fmt = normalize_data_format(data_format, fn)
        noun = self.FILTER
        if len(input_shape) != 4:
            raise ValueError(f"{fn}: input must be 4-D ({fmt}); received shape {tuple(input_shape)}")
        if len(filter_shape) != 4:
            raise ValueError(f"{fn}: {noun} must be 4-D [filter_height, filter_width, in_channels, {self.LAST_AXIS}]; "
                             f"received shape {tuple(filter_shape)}")
        self.strides = normalize_spatial(strides, fn, "strides", fmt)
        self.dilations = normalize_spatial(dilations, fn, "dilations", fmt)
        self.padding = normalize_padding(padding, fn, fmt)
        n, h, w, c = input_shape if fmt == "NHWC" else (input_shape[0], *input_shape[2:], input_shape[1])
        kh, kw, cin, last = filter_shape
        if cin != c:
            raise ValueError(f"{fn}: {noun} {'have' if noun.endswith('s') else 'has'} {cin} input channels but the "
                             f"input has {c} (input shape {tuple(input_shape)} in {fmt}, {noun} shape "
                             f"{tuple(filter_shape)})")
        if kh < 1 or kw < 1:
            raise ValueError(f"{fn}: filter height and width must be positive; received {noun} shape "
                             f"{tuple(filter_shape)}")
        self.input_nhwc = (n, h, w, c)
        self.filter_shape = (kh, kw, cin, last)
        oh, pt, pb = window_geometry(h, kh, self.strides[0], self.dilations[0], self.padding, 0)
        ow, pl, pr = window_geometry(w, kw, self.strides[1], self.dilations[1], self.padding, 1)
        if oh < 1 or ow < 1:
            raise ValueError(
                f"{fn}: the filter (effective size "
                f"{(kh - 1) * self.dilations[0] + 1}x{(kw - 1) * self.dilations[1] + 1} "
                f"with dilations {self.dilations}) does not fit the padded input "
                f"(input shape {tuple(input_shape)} in {fmt}, padding {padding!r})"
            )
        self.pads = (pt, pb, pl, pr)
        self.output_nhwc = (n, oh, ow, self.output_channels(c, last))
        check_elements(fn, "the input", self.input_nhwc)
        check_elements(fn, "the result", self.output_nhwc, f" (padding={padding!r}, strides {self.strides})")
        self.check_sizes(fn)

    @property
    def output_shape(self):
        return layout_shape(self.output_nhwc, self.data_format)


def check_int32(fn, **values):
    for name, v in values.items():
        if v > MAX_INT32:
            raise ValueError(f"{fn}: {name} = {v} is larger than fastconv's kernels take (2**31 - 1)")
