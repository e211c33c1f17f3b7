"""A fuzzer of fastconv's public API: random valid calls checked against fastconv.reference, and
hostile ones checked for the kind of their refusal.

Every call is generated from its own seed, ``numpy.random.default_rng([seed, index])``, so any
call can be replayed alone (``--seed S --start I --calls 1 --verbose``).  The calls run in a child
process that reports each call before and after it; the parent counts the outcomes and, when the
child dies by a signal (a segfault, or an AddressSanitizer abort) or stops answering (a hang),
records that call and starts a new child at the next one.

Outcomes:

- ``ok``: a valid call whose result matches the reference (NaN where the reference has NaN,
  the same infinities, finite values within a rounding bound of the reference on |operands|);
- ``refused``: a hostile call refused by a ValueError or TypeError whose message starts with
  the function's name and names the offending argument;
- ``memory_error``: NumPy's MemoryError for an allocation the machine cannot make (allowed only
  for calls whose sizes are valid but large);
- ``wrong``: a wrong result, a valid call refused, a hostile call accepted, or a refusal of the
  wrong kind or that does not name the function and the argument;
- ``crash`` and ``hang``.

Quick mode is tests/test_fuzz.py; the long mode is this file as a command::

    python tests/fuzz_api.py --calls 10000 --seed 1

It prints the counts by outcome (and by function) and the replay command of every failure, and
exits non-zero on any wrong result, crash or hang.
"""
import argparse
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections import Counter

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

FLOATS = (np.float32, np.float64)
# dtypes the public functions compute in (float16 computes in float32; bool and ints in float64).
ACCEPTED_DTYPES = (np.float16, np.float32, np.float64, np.int32, np.int64, np.uint8, np.bool_)
# dtypes that hold no numbers fastconv computes with: refused as TypeErrors naming the argument.
REFUSED_DTYPES = (np.complex64, np.complex128, object, "U3", "datetime64[s]", "timedelta64[s]", "S2")
# Tolerances relative to the reference over |operands| (an upper bound of the terms' magnitudes).
TOLERANCE = {np.dtype(np.float16): 2e-3, np.dtype(np.float32): 2e-6, np.dtype(np.float64): 1e-12}


class Refusal(Exception):
    """Raised by a case's expectation: this call must be refused naming ``argument``."""


class Case:
    """One call: ``call()`` runs it; for a valid call ``expected()`` gives the reference result and
    ``bound()`` the reference over |operands| (None: exact comparison); for a hostile call
    ``refuse`` is the argument the error must name."""

    def __init__(self, fn, description, call, expected=None, bound=None, refuse=None, may_oom=False,
                 check=None):
        self.fn, self.description, self.call = fn, description, call
        self.expected, self.bound, self.refuse, self.may_oom, self.check = expected, bound, refuse, may_oom, check


# -- random arguments ----------------------------------------------------------------------------

def _array(rng, shape, dtype=np.float64):
    if np.dtype(dtype) == np.bool_:
        return rng.random(shape) < 0.5
    if np.dtype(dtype).kind in "iu":
        return rng.integers(0, 5, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _geometry(rng, depthwise=False):
    """A valid convolution: shapes, strides, dilations, padding in one of TensorFlow's forms."""
    n, h, w, cin = int(rng.integers(1, 3)), int(rng.integers(1, 9)), int(rng.integers(1, 9)), int(rng.integers(1, 5))
    cout = int(rng.integers(1, 4)) if depthwise else int(rng.integers(1, 6))
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    strides = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    dilations = (1, 1) if strides != (1, 1) and not depthwise else (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    if depthwise and strides != (1, 1):
        dilations = (1, 1)
    kind = rng.integers(3)
    if kind == 0:
        padding = "SAME"
    elif kind == 1:
        padding = "VALID"
        h, w = max(h, (kh - 1) * dilations[0] + 1), max(w, (kw - 1) * dilations[1] + 1)
    else:
        padding = tuple((int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in range(2))
        h = max(h, (kh - 1) * dilations[0] + 1 - sum(padding[0]))
        w = max(w, (kw - 1) * dilations[1] + 1 - sum(padding[1]))
    return dict(x=(n, h, w, cin), w=(kh, kw, cin, cout), strides=strides, dilations=dilations, padding=padding)


def _tf_padding(padding, data_format="NHWC"):
    """The padding as the public functions take it (explicit pairs in TensorFlow's 4-pair form)."""
    if isinstance(padding, str):
        return padding
    pairs = [[0, 0], list(padding[0]), list(padding[1]), [0, 0]]
    return pairs if data_format == "NHWC" else [pairs[0], pairs[3], pairs[1], pairs[2]]


def _output_hw(g):
    from fastconv.reference import pads_for
    (_, h, w, _), (kh, kw, _, _) = g["x"], g["w"]
    oh = pads_for(h, kh, g["strides"][0], g["dilations"][0], g["padding"], 0)[0]
    ow = pads_for(w, kw, g["strides"][1], g["dilations"][1], g["padding"], 1)[0]
    return oh, ow


def _pool_geometry(rng, explicit=True):
    n, h, w, c = (int(rng.integers(1, 3)), int(rng.integers(1, 9)), int(rng.integers(1, 9)),
                  int(rng.integers(1, 6)))
    ksize = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    strides = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    kind = rng.integers(3 if explicit else 2)
    if kind == 0:
        padding = "SAME"
    elif kind == 1:
        padding = "VALID"
        h, w = max(h, ksize[0]), max(w, ksize[1])
    else:
        padding = tuple((int(rng.integers(0, k)), int(rng.integers(0, k))) for k in ksize)
        h, w = max(h, ksize[0] - sum(padding[0])), max(w, ksize[1] - sum(padding[1]))
    return dict(x=(n, h, w, c), ksize=ksize, strides=strides, padding=padding)


def _pool_output(g):
    from fastconv.reference import pads_for
    _, h, w, _ = g["x"]
    return (pads_for(h, g["ksize"][0], g["strides"][0], 1, g["padding"], 0)[0],
            pads_for(w, g["ksize"][1], g["strides"][1], 1, g["padding"], 1)[0])


def _layout_view(rng, arr):
    """``arr`` (values unchanged) as a C, Fortran, non-contiguous, negative-stride or broadcast view."""
    kind = rng.integers(5)
    if kind == 0:
        return arr, "C"
    if kind == 1:
        return np.asfortranarray(arr), "Fortran"
    if kind == 2:
        big = np.zeros(tuple(2 * s for s in arr.shape), dtype=arr.dtype)
        big[tuple(slice(None, None, 2) for _ in arr.shape)] = arr
        return big[tuple(slice(None, None, 2) for _ in arr.shape)], "strided"
    if kind == 3:
        flipped = np.ascontiguousarray(arr[::-1, ..., ::-1])
        return flipped[::-1, ..., ::-1], "negative-stride"
    if arr.size and all(s > 0 for s in arr.shape):
        row = arr[:1].copy()
        if np.all(arr == row):
            return np.broadcast_to(row, arr.shape), "broadcast"
    return arr, "C"


def _poison(rng, arr):
    """A copy of a float array with a few NaN, +inf or -inf."""
    arr = np.array(arr, dtype=np.float64 if arr.dtype.kind != "f" else arr.dtype)
    if arr.size:
        for _ in range(int(rng.integers(1, 3))):
            arr.flat[int(rng.integers(arr.size))] = rng.choice([np.nan, np.inf, -np.inf])
    return arr


HOSTILE_INTS = (0, -1, -(2**31), 2**31, 2**31 - 1 + 1, 2**62, 2**63 - 1, 2**63, 2**64, 2**100)
HOSTILE_TYPES = (2.0, 2.9, "2", True, False, None, [1.5, 1], [True, 1], b"1", 1j, [[1, 1]], [])


def _hostile_spatial(rng):
    """A strides / ksize / dilations value that must be refused (as a ValueError or TypeError)."""
    kind = rng.integers(3)
    if kind == 0:
        return int(rng.choice(HOSTILE_INTS))
    if kind == 1:
        v = HOSTILE_TYPES[int(rng.integers(len(HOSTILE_TYPES)))]
        return v if v is not None else [1, 2, 3]
    big = int(rng.choice(HOSTILE_INTS))
    return [1, big, 1, 1] if rng.random() < 0.5 else [big, 1]


def _hostile_padding(rng):
    kind = rng.integers(4)
    if kind == 0:
        big = int(rng.choice((-1, 2**31, 2**62, 2**63, 2**64)))
        return [[0, 0], [big, 0], [0, 1], [0, 0]]
    if kind == 1:
        return [[0, 0], [1.5, 1], [1, 1], [0, 0]]
    if kind == 2:
        return rng.choice(["FULL", "same ", "", "valid_"]).item()
    return [[0, 0], [True, 1], [1, 1], [0, 0]]


# -- the oracle ----------------------------------------------------------------------------------

def _compare(got, case):
    """None when ``got`` matches the reference, else what differs."""
    expected = np.asarray(case.expected())
    got = np.asarray(got)
    if got.shape != expected.shape:
        return f"shape {got.shape}, reference {expected.shape}"
    g64, e64 = got.astype(np.float64), expected.astype(np.float64)
    if not np.array_equal(np.isnan(g64), np.isnan(e64)):
        return f"NaN at {np.argwhere(np.isnan(g64) != np.isnan(e64))[:3].tolist()} differs from the reference"
    inf = np.isinf(e64) | np.isinf(g64)
    if not np.array_equal(g64[inf], e64[inf]):
        return "infinities differ from the reference"
    fin = ~(np.isnan(e64) | inf)
    if case.bound is None:
        bad = g64[fin] != e64[fin]
    else:
        tol = TOLERANCE[got.dtype] if got.dtype in TOLERANCE else 0.0
        bound = np.asarray(case.bound(), dtype=np.float64)[fin]
        bad = np.abs(g64[fin] - e64[fin]) > tol * (bound + 1e-30) * 8 + 1e-300
    if np.any(bad):
        worst = np.max(np.abs(g64[fin] - e64[fin]))
        return f"{int(np.count_nonzero(bad))} values differ from the reference (max |diff| {worst:.3g})"
    return None


def run_case(case):
    """(outcome, detail) of one case."""
    try:
        result = case.call()
    except MemoryError as exc:
        if case.may_oom:
            return "memory_error", str(exc)[:200]
        return "wrong", f"MemoryError on a small call: {exc}"
    except (ValueError, TypeError) as exc:
        message = str(exc)
        if case.refuse is None:
            return "wrong", f"valid call refused: {type(exc).__name__}: {message[:300]}"
        if not message.startswith(case.fn + ":"):
            return "wrong", f"refusal does not name {case.fn}: {type(exc).__name__}: {message[:300]}"
        if case.refuse not in message:
            return "wrong", f"refusal does not name {case.refuse}: {type(exc).__name__}: {message[:300]}"
        return "refused", f"{type(exc).__name__}"
    except Exception as exc:  # noqa: BLE001 - any other exception is the wrong kind of error
        return "wrong", f"{type(exc).__name__}: {str(exc)[:300]}"
    if case.refuse is not None:
        return "wrong", f"hostile call accepted (expected a refusal naming {case.refuse})"
    if case.check is not None:
        problem = case.check(result)
        return ("wrong", problem) if problem else ("ok", "")
    problem = _compare(result, case)
    return ("wrong", problem) if problem else ("ok", "")


# -- the generators, one per public function -----------------------------------------------------

CONV_OPERANDS = {   # the two array operands of each function, by argument name, and what they are
    "conv2d": (("input", "x"), ("filters", "w")),
    "depthwise_conv2d": (("input", "x"), ("filter", "w")),
    "conv2d_backprop_input": (("filters", "w"), ("out_backprop", "dy")),
    "depthwise_conv2d_backprop_input": (("filter", "w"), ("out_backprop", "dy")),
    "conv2d_transpose": (("filters", "w"), ("input", "dy")),
    "conv2d_backprop_filter": (("input", "x"), ("out_backprop", "dy")),
    "depthwise_conv2d_backprop_filter": (("input", "x"), ("out_backprop", "dy")),
}
SHAPE_ARGUMENT = {"conv2d_backprop_input": "input_sizes", "depthwise_conv2d_backprop_input": "input_sizes",
                  "conv2d_transpose": "output_shape", "conv2d_backprop_filter": "filter_sizes",
                  "depthwise_conv2d_backprop_filter": "filter_sizes"}


def _result_dtype(*arrays):
    kind = np.result_type(*arrays)
    return np.dtype(np.float64) if kind.kind in "biu" else kind


def _conv_family(rng, fn):
    import fastconv as fc
    from fastconv import reference as ref
    depthwise = fn.startswith("depthwise")
    g = _geometry(rng, depthwise)
    mutation = int(rng.integers(12))
    if mutation == 5:      # huge strides within the limit: valid, one output along that axis
        g["strides"] = (int(rng.choice((2**20, 2**31 - 1))), g["strides"][1])
        g["dilations"] = (1, 1)
    oh, ow = _output_hw(g)
    n, h, w, cin = g["x"]
    cout = g["w"][3]
    dtype = FLOATS[int(rng.integers(2))]
    arrays = dict(x=_array(rng, g["x"], dtype), w=_array(rng, g["w"], dtype),
                  dy=_array(rng, (n, oh, ow, cin * cout if depthwise else cout), dtype))
    (name_a, key_a), (name_b, key_b) = CONV_OPERANDS[fn]
    fmt = "NHWC" if rng.random() < 0.7 else "NCHW"
    kwargs = dict(strides=list(g["strides"]), padding=_tf_padding(g["padding"], fmt), data_format=fmt,
                  dilations=list(g["dilations"]))
    geo_ref = dict(strides=g["strides"], padding=g["padding"], dilations=g["dilations"])
    if not depthwise:
        kwargs["algorithm"] = str(rng.choice(["auto", "direct", "im2col"]))
        if (g["w"][:2] == (3, 3) and g["strides"] == (1, 1) and g["dilations"] == (1, 1)
                and fn != "conv2d_backprop_filter" and rng.random() < 0.5):
            kwargs["algorithm"] = "winograd"
    desc = f"{fn} x{g['x']} w{g['w']} {kwargs} {np.dtype(dtype).name}"
    refuse, may_oom = None, False
    shape_arg = {"filter_sizes": list(g["w"])}.get(SHAPE_ARGUMENT.get(fn), list(_in_fmt(g["x"], fmt)))
    pick = (key_a, name_a) if rng.random() < 0.5 else (key_b, name_b)
    if mutation == 0:      # NaN / inf in an operand: the reference says where NaN goes
        arrays[pick[0]] = _poison(rng, arrays[pick[0]])
        desc += f" poisoned {pick[1]}"
    elif mutation == 1:    # another accepted dtype
        arrays[pick[0]] = arrays[pick[0]].astype(ACCEPTED_DTYPES[int(rng.integers(len(ACCEPTED_DTYPES)))])
        desc += f" {pick[1]} as {arrays[pick[0]].dtype}"
    elif mutation == 2:    # a dtype that holds no numbers
        arrays[pick[0]] = np.zeros(arrays[pick[0]].shape, dtype=REFUSED_DTYPES[int(rng.integers(len(REFUSED_DTYPES)))])
        refuse = pick[1]
        desc += f" {pick[1]} as {arrays[pick[0]].dtype}"
    elif mutation == 3:
        key = str(rng.choice(["strides", "dilations"]))
        kwargs[key] = _hostile_spatial(rng)
        refuse = key
        desc += f" {key}={kwargs[key]!r}"
    elif mutation == 4:
        kwargs["padding"] = _hostile_padding(rng)
        refuse = "padding"
        desc += f" padding={kwargs['padding']!r}"
    elif mutation == 7 and fn in SHAPE_ARGUMENT:   # shapes as floats, strings, bools, negative, huge
        bad = [[float(v) + 0.5 for v in shape_arg], [str(v) for v in shape_arg], [True] + shape_arg[1:],
               [2**40, 2**40] + shape_arg[2:], [-1] + shape_arg[1:], np.array(shape_arg, dtype=float),
               shape_arg[:3]]
        shape_arg = bad[int(rng.integers(len(bad)))]
        refuse = SHAPE_ARGUMENT[fn]
        desc += f" {refuse}={shape_arg!r}"
    elif mutation == 10 and fn in SHAPE_ARGUMENT and not fn.endswith("filter"):
        # a huge result, one output pixel: refused past 2**59 elements, else NumPy's MemoryError
        big = int(rng.choice((2**28, 2**30)))
        g["strides"], g["dilations"], g["padding"] = (big, big), (1, 1), "VALID"
        g["x"] = (n, big, big, cin)
        kwargs.update(strides=[big, big], dilations=[1, 1], padding="VALID")
        shape_arg = list(_in_fmt(g["x"], fmt))
        arrays["dy"] = _array(rng, (n, 1, 1, cin * cout if depthwise else cout), dtype)
        refuse, may_oom = SHAPE_ARGUMENT[fn], True
        desc += f" {refuse}={shape_arg}"
    elif mutation == 8 and fn in ("conv2d", "depthwise_conv2d"):   # empty batch or channels
        axis = int(rng.choice([0, 3]))
        zero = list(g["x"])
        zero[axis] = 0
        arrays["x"] = np.zeros(zero, dtype=dtype)
        if axis == 3:
            arrays["w"] = np.zeros(g["w"][:2] + (0, cout), dtype=dtype)
        desc += f" empty input {zero}"
    a_nhwc, b_nhwc = arrays[key_a], arrays[key_b]
    # the operands the function receives: images in data_format, then possibly as another view
    a = _in_fmt(a_nhwc, fmt) if key_a != "w" else a_nhwc
    b = _in_fmt(b_nhwc, fmt) if key_b != "w" else b_nhwc
    if mutation == 6:
        if rng.random() < 0.5:
            a, kind = _layout_view(rng, a)
        else:
            b, kind = _layout_view(rng, b)
        desc += f" view {kind}"
    res_dtype = _result_dtype(a, b) if refuse != pick[1] or mutation != 2 else np.dtype(dtype)
    if fn in ("conv2d", "depthwise_conv2d"):
        ref_fn = ref.conv2d if fn == "conv2d" else ref.depthwise_conv2d
        result_shape = _in_fmt((a_nhwc.shape[0], oh, ow, arrays["dy"].shape[3]), fmt)
        reference = lambda f: _in_fmt(ref_fn(f(a_nhwc), f(b_nhwc), **geo_ref), fmt)  # noqa: E731
        args = (a, b)
    elif fn in ("conv2d_backprop_filter", "depthwise_conv2d_backprop_filter"):
        ref_fn = ref.conv2d_backprop_filter if not depthwise else ref.depthwise_conv2d_backprop_filter
        result_shape = g["w"]
        reference = lambda f: ref_fn(f(a_nhwc), g["w"], f(b_nhwc), **geo_ref)  # noqa: E731
        args = (a, shape_arg, b)
    else:
        ref_fn = ref.conv2d_backprop_input if not depthwise else ref.depthwise_conv2d_backprop_input
        result_shape = _in_fmt(tuple(g["x"]), fmt)
        reference = lambda f: _in_fmt(ref_fn(g["x"], f(a_nhwc), f(b_nhwc), **geo_ref), fmt)  # noqa: E731
        args = (b, a, shape_arg) if fn == "conv2d_transpose" else (shape_arg, a, b)
    if mutation == 9:      # out= of the wrong shape, dtype or layout, or aliasing an input
        kind = int(rng.integers(4))
        if kind == 0:
            kwargs["out"] = np.zeros(tuple(s + 1 for s in result_shape), dtype=res_dtype)
            refuse = "out"
        elif kind == 1:
            kwargs["out"] = np.zeros(result_shape, dtype=np.float32 if res_dtype == np.float64 else np.float64)
            refuse = "out"
        elif kind == 2:
            kwargs["out"] = np.asfortranarray(np.zeros(result_shape, dtype=res_dtype))
        else:   # out aliasing an operand of the result's shape and dtype: the result must still be right
            same = [o for o in (a, b) if o.shape == tuple(result_shape) and o.dtype == res_dtype]
            if same:
                same[0] = same[0].copy() if not same[0].flags.writeable else same[0]
                a_nhwc, b_nhwc = a_nhwc.copy(), b_nhwc.copy()   # the reference keeps the inputs
            kwargs["out"] = same[0] if same else np.zeros(result_shape, dtype=res_dtype)
        desc += f" out={kwargs['out'].shape} {kwargs['out'].dtype}"
    func = getattr(fc, fn)
    call = lambda: func(*args, **kwargs)  # noqa: E731
    if refuse is not None:
        return Case(fn, desc, call, refuse=refuse, may_oom=may_oom)
    return Case(fn, desc, call, lambda: reference(lambda v: np.asarray(v, dtype=np.float64)).astype(res_dtype),
                lambda: reference(lambda v: np.abs(np.asarray(v, dtype=np.float64))))


def _in_fmt(value, fmt):
    """An NHWC array (or shape) in ``fmt``."""
    if isinstance(value, tuple):
        return value if fmt == "NHWC" else (value[0], value[3], value[1], value[2])
    return value if fmt == "NHWC" else np.ascontiguousarray(np.asarray(value).transpose(0, 3, 1, 2))


def _max_pool_reference(x, dtype, **geo):
    """The reference max pooling in ``dtype``: a window with nothing above the lowest value (all -inf
    or NaN) gives the lowest finite value of the compute dtype, as in TensorFlow."""
    y = __import__("fastconv.reference", fromlist=["max_pool2d"]).max_pool2d(x, **geo)
    lowest = np.finfo(np.float64 if np.dtype(dtype) == np.float64 else np.float32).min
    return np.where(y <= np.finfo(np.float64).min, lowest, y).astype(dtype)


def _pool_family(rng, fn):
    import fastconv as fc
    from fastconv import reference as ref
    explicit = fn in ("max_pool2d", "max_pool2d_grad")
    g = _pool_geometry(rng, explicit)
    oh, ow = _pool_output(g)
    n, h, w, c = g["x"]
    dtype = FLOATS[int(rng.integers(2))]
    x = _array(rng, g["x"], dtype)
    dy = _array(rng, (n, oh, ow, c), dtype)
    geo_ref = dict(ksize=g["ksize"], strides=g["strides"], padding=g["padding"])
    kwargs = dict(ksize=list(g["ksize"]), strides=list(g["strides"]), padding=_tf_padding(g["padding"]))
    desc = f"{fn} x{g['x']} {kwargs} {np.dtype(dtype).name}"
    refuse, may_oom = None, False
    mutation = rng.integers(10)
    shape_arg = list(g["x"])
    if mutation == 0:
        x, dy = (_poison(rng, x), dy) if rng.random() < 0.5 else (x, _poison(rng, dy))
        desc += " poisoned"
    elif mutation == 1:
        x, kind = _layout_view(rng, x)
        dy, kind2 = _layout_view(rng, dy)
        desc += f" views {kind} {kind2}"
    elif mutation == 2:
        key = str(rng.choice(["ksize", "strides"]))
        kwargs[key] = _hostile_spatial(rng)
        refuse = key
        desc += f" {key}={kwargs[key]!r}"
    elif mutation == 3:
        kwargs["padding"] = _hostile_padding(rng)
        refuse = "padding"
        desc += f" padding={kwargs['padding']!r}"
    elif mutation == 4 and fn in ("avg_pool2d_grad", "max_pool2d_grad_with_argmax"):
        bad = [[float(v) + 0.9 for v in shape_arg], [str(v) for v in shape_arg], [True] + shape_arg[1:],
               [2**40, 2**40, 2**40, 1], np.array(shape_arg, dtype=float)]
        shape_arg = bad[int(rng.integers(len(bad)))]
        refuse = "orig_input_shape" if fn == "avg_pool2d_grad" else "input_shape"
        desc += f" shape argument {shape_arg!r}"
    elif mutation == 5:    # huge strides / windows within the limit
        big = int(rng.choice((2**20, 2**31 - 1)))
        g["strides"] = geo_ref["strides"] = (big, g["strides"][1])
        kwargs["strides"] = list(g["strides"])
        oh, ow = _pool_output(g)
        dy = _array(rng, (n, oh, ow, c), dtype)
        desc += f" strides={kwargs['strides']}"
    elif mutation == 6:
        x = x.astype(ACCEPTED_DTYPES[int(rng.integers(len(ACCEPTED_DTYPES)))])
        desc += f" input as {x.dtype}"
    elif mutation == 7:
        bad_dtype = REFUSED_DTYPES[int(rng.integers(len(REFUSED_DTYPES)))]
        if fn in ("avg_pool2d_grad", "max_pool2d_grad_with_argmax"):   # the functions that take no input
            dy = np.zeros(dy.shape, dtype=bad_dtype)
            refuse = "grad"
        else:
            x = np.zeros(x.shape, dtype=bad_dtype)
            refuse = "orig_input" if fn == "max_pool2d_grad" else "input"
        desc += f" {refuse} as {np.dtype(bad_dtype)}"
    func = getattr(fc, fn)
    out = None
    if mutation == 8 and fn != "max_pool_with_argmax":
        shape = (n, oh, ow, c) if fn in ("max_pool2d", "avg_pool2d") else g["x"]
        kind = rng.integers(3)
        if kind == 0:
            out = np.zeros(tuple(s + 1 for s in shape), dtype=dtype)
            refuse = "out"
        elif kind == 1:
            out = np.zeros(shape, dtype=np.float32 if dtype == np.float64 else np.float64)
            refuse = "out"
        else:
            out = np.asfortranarray(np.zeros(shape, dtype=dtype))
        desc += f" out={out.shape} {out.dtype}"
    extra = {} if out is None else dict(out=out)
    res_dtype = lambda *arrs: (np.float64 if np.result_type(*arrs).kind in "biu" else np.result_type(*arrs))  # noqa: E731
    if fn in ("max_pool2d", "avg_pool2d"):
        ref_fn = ref.max_pool2d if fn == "max_pool2d" else ref.avg_pool2d
        call = lambda: func(x, **kwargs, **extra)  # noqa: E731
        expected = ((lambda: _max_pool_reference(x, res_dtype(x), **geo_ref)) if fn == "max_pool2d"
                    else (lambda: ref_fn(x, **geo_ref).astype(res_dtype(x))))
        bound = None if fn == "max_pool2d" else (lambda: ref_fn(np.abs(x.astype(float)), **geo_ref))
    elif fn == "avg_pool2d_grad":
        call = lambda: func(shape_arg, dy, **kwargs, **extra)  # noqa: E731
        expected = lambda: ref.avg_pool2d_grad(g["x"], dy, **geo_ref).astype(res_dtype(dy))  # noqa: E731
        bound = lambda: ref.avg_pool2d_grad(g["x"], np.abs(dy.astype(float)), **geo_ref)  # noqa: E731
    elif fn == "max_pool2d_grad":
        y0 = np.zeros((n, oh, ow, c))
        call = lambda: func(x, y0, dy, **kwargs, **extra)  # noqa: E731
        expected = lambda: ref.max_pool2d_grad(x, dy, **geo_ref).astype(res_dtype(x, dy))  # noqa: E731
        bound = lambda: ref.max_pool2d_grad(x, np.abs(dy.astype(float)), **geo_ref)  # noqa: E731
    elif fn == "max_pool_with_argmax":
        include = bool(rng.random() < 0.5)
        call = lambda: func(x, **kwargs, include_batch_in_index=include)  # noqa: E731

        def check(result):
            y, arg = result
            problem = _compare(y, Case(fn, "", None, lambda: _max_pool_reference(x, res_dtype(x), **geo_ref)))
            if problem:
                return problem
            flat = np.asarray(x).reshape(-1) if include else np.asarray(x).reshape(n, -1)
            if arg.size and (arg.min() < 0 or arg.max() >= (flat.size if include else flat.shape[1])):
                return "argmax out of range"
            picked = flat[arg] if include else np.take_along_axis(flat, arg.reshape(n, -1), 1).reshape(arg.shape)
            ref_y = ref.max_pool2d(x, **geo_ref)
            # a window of only NaN or -inf keeps the lowest value and names its first element
            ok = (picked == ref_y) | np.isnan(ref_y) | (ref_y == -np.inf) | (y <= -np.finfo(np.float32).max)
            return None if np.all(ok) else "argmax does not name the maxima"
        if refuse is not None:
            return Case(fn, desc, call, refuse=refuse)
        return Case(fn, desc, call, check=check)
    else:   # max_pool2d_grad_with_argmax, with the argmax of the forward of x (valid arguments)
        _, arg = fc.max_pool_with_argmax(x, list(g["ksize"]), list(g["strides"]), g["padding"])
        dyg = dy
        if mutation == 9 and arg.size:   # an argmax entry outside its window (or outside the image)
            arg = arg.copy()
            arg.flat[int(rng.integers(arg.size))] = int(rng.choice((-1, 2**31, -(2**40), 2**62, h * w * c)))
            refuse = refuse or "argmax"
            desc += " argmax tampered"
        call = lambda: func(shape_arg, dyg, arg, **kwargs, **extra)  # noqa: E731
        expected = lambda: ref.max_pool2d_grad(x, dyg, **geo_ref).astype(res_dtype(dyg))  # noqa: E731
        bound = lambda: ref.max_pool2d_grad(x, np.abs(dyg.astype(float)), **geo_ref)  # noqa: E731
    if refuse is not None:
        return Case(fn, desc, call, refuse=refuse, may_oom=may_oom)
    return Case(fn, desc, call, expected, bound)


def _elementwise_family(rng, fn):
    import fastconv as fc
    shape = tuple(int(v) for v in rng.integers(0 if rng.random() < 0.1 else 1, 5, size=int(rng.integers(2, 5))))
    dtype = FLOATS[int(rng.integers(2))]
    a = _array(rng, shape, dtype)
    mutation = rng.integers(6)
    refuse = None
    desc = f"{fn} {shape} {np.dtype(dtype).name}"
    if mutation == 0:
        a = _poison(rng, a)
        desc += " poisoned"
    elif mutation == 1:
        a, kind = _layout_view(rng, a)
        desc += f" {kind}"
    elif mutation == 2:
        a = a.astype(ACCEPTED_DTYPES[int(rng.integers(len(ACCEPTED_DTYPES)))])
        desc += f" as {a.dtype}"
    elif mutation == 3:
        a = np.zeros(shape, dtype=REFUSED_DTYPES[int(rng.integers(len(REFUSED_DTYPES)))])
        refuse = {"bias_add": "value", "bias_add_grad": "out_backprop", "relu_grad": "gradients"}[fn]
        desc += f" as {a.dtype}"
    res = lambda *arrs: (np.float64 if np.result_type(*arrs).kind in "biu" else np.result_type(*arrs))  # noqa: E731
    if fn == "bias_add":
        b = _array(rng, (shape[-1],), dtype)
        relu = bool(rng.random() < 0.3)
        if mutation == 4:
            b = _array(rng, (shape[-1] + 1,), dtype)
            refuse = "bias"
        call = lambda: fc.bias_add(a, b, relu=relu)  # noqa: E731

        def expected():
            y = a.astype(res(a, b)) + b.astype(res(a, b))
            return np.where(y > 0, y, np.where(np.isnan(y), y, 0)) if relu else y
        bound = lambda: np.abs(a.astype(float)) + np.abs(b.astype(float))  # noqa: E731
    elif fn == "bias_add_grad":
        call = lambda: fc.bias_add_grad(a)  # noqa: E731
        axes = tuple(range(len(shape) - 1))
        expected = lambda: a.astype(np.float64).sum(axes).astype(res(a))  # noqa: E731
        bound = lambda: np.abs(a.astype(np.float64)).sum(axes)  # noqa: E731
    else:
        f = _array(rng, shape, dtype)
        if mutation == 4:
            f = _array(rng, shape + (1,), dtype)
            refuse = "features"
        call = lambda: fc.relu_grad(a, f)  # noqa: E731
        expected = lambda: (a.astype(res(a, f)) * (f > 0)).astype(res(a, f))  # noqa: E731
        bound = None
    if refuse is not None:
        return Case(fn, desc, call, refuse=refuse)
    return Case(fn, desc, call, expected, bound)


def _affine_family(rng, fn):
    import fastconv.image as image
    from fastconv import reference as ref
    n, h, w, c = (int(rng.integers(1, 3)), int(rng.integers(0 if rng.random() < 0.1 else 1, 7)),
                  int(rng.integers(1, 7)), int(rng.integers(1, 4)))
    dtype = FLOATS[int(rng.integers(2))]
    x = _array(rng, (n, h, w, c), dtype)
    m = np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float64) + rng.normal(0, 0.3, (2, 3))
    order = int(rng.integers(2))
    mode = str(rng.choice(["nearest", "constant", "reflect", "wrap"]))
    cval = float(rng.normal())
    desc = f"{fn} {x.shape} {np.dtype(dtype).name} order={order} {mode}"
    refuse = None
    mutation = rng.integers(6)
    if mutation == 0:
        x, kind = _layout_view(rng, x)
        desc += f" {kind}"
    elif mutation == 1:
        x = np.zeros(x.shape, dtype=REFUSED_DTYPES[int(rng.integers(len(REFUSED_DTYPES)))])
        refuse = "images"
        desc += f" as {x.dtype}"
    elif mutation == 2:
        order = [2, -1, True, 0.5, "1"][int(rng.integers(5))]
        refuse = "order"
    elif mutation == 3:
        mode = ["mirror", "", 3, None][int(rng.integers(4))]
        refuse = "fill_mode"
    elif mutation == 4:
        m = m[:1]
        refuse = "matrices"
    call = lambda: image.affine_transform(x, m, order=order, fill_mode=mode, cval=cval)  # noqa: E731
    stack = np.broadcast_to(np.vstack([m, [0, 0, 1]]) if m.shape == (2, 3) else m, (n, 3, 3))
    expected = lambda: ref.affine_transform(x, stack, order=order, fill_mode=mode, cval=cval).astype(dtype)  # noqa: E731
    bound = lambda: ref.affine_transform(np.abs(x.astype(float)), stack, order=order, fill_mode=mode,  # noqa: E731
                                         cval=abs(cval)) + 1
    if refuse is not None:
        return Case(fn, desc, call, refuse=refuse)
    return Case(fn, desc, call, expected, bound)


def _threads_family(rng, fn):
    import fastconv as fc
    value = [0, -1, 2.0, "2", True, 2**63, None, 1, 2][int(rng.integers(9))]
    valid = value in (None, 1, 2) and not isinstance(value, bool)
    call = lambda: fc.set_num_threads(value)  # noqa: E731
    if valid:
        return Case(fn, f"{fn}({value!r})", call, check=lambda r: None)
    return Case(fn, f"{fn}({value!r})", call, refuse="n")


GENERATORS = {
    **{fn: _conv_family for fn in ("conv2d", "conv2d_backprop_input", "conv2d_backprop_filter", "conv2d_transpose",
                                    "depthwise_conv2d", "depthwise_conv2d_backprop_input",
                                    "depthwise_conv2d_backprop_filter")},
    **{fn: _pool_family for fn in ("max_pool2d", "avg_pool2d", "max_pool2d_grad", "avg_pool2d_grad",
                                    "max_pool_with_argmax", "max_pool2d_grad_with_argmax")},
    **{fn: _elementwise_family for fn in ("bias_add", "bias_add_grad", "relu_grad")},
    "affine_transform": _affine_family,
}
FUNCTIONS = tuple(GENERATORS)


def make_case(seed, index):
    rng = np.random.default_rng([seed, index])
    fn = FUNCTIONS[int(rng.integers(len(FUNCTIONS)))]
    return GENERATORS[fn](rng, fn)


# -- child and parent ----------------------------------------------------------------------------

def child(seed, start, stop):
    """Run calls start..stop-1, printing 'start i' before and a JSON line after each."""
    import fastconv as fc
    for i in range(start, stop):
        print(f"start {i}", flush=True)
        threads = (None, 1, 2)[i % 3]
        fc.set_num_threads(threads)
        try:
            case = make_case(seed, i)
        except Exception as exc:  # noqa: BLE001 - a generator bug is reported, not hidden
            print(json.dumps(dict(i=i, fn="?", outcome="wrong", detail=f"generator: {exc!r}", desc="")), flush=True)
            continue
        with np.errstate(all="ignore"):
            try:
                outcome, detail = run_case(case)
            except Exception as exc:  # noqa: BLE001 - an oracle bug is reported, not hidden
                outcome, detail = "wrong", f"oracle: {exc!r}"
        print(json.dumps(dict(i=i, fn=case.fn, outcome=outcome, detail=detail, desc=case.description[:400])),
              flush=True)


def run(seed, start, calls, timeout=60.0, env=None, verbose=False):
    """Run ``calls`` calls in child processes; returns the list of per-call records."""
    records, i, stop = [], start, start + calls
    while i < stop:
        err_file = tempfile.TemporaryFile(mode="w+")   # a file, not a pipe: a full pipe would block the child
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", "--seed", str(seed),
                                 "--start", str(i), "--calls", str(stop - i)],
                                stdout=subprocess.PIPE, stderr=err_file, text=True, env=env, cwd=HERE)
        current = None      # the call the child has started and not yet answered
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], timeout)
            line = proc.stdout.readline() if ready else None
            if line and line.startswith("start "):
                current = int(line.split()[1])
            elif line:
                records.append(json.loads(line))
                current = None
                if verbose or records[-1]["outcome"] == "wrong":
                    r = records[-1]
                    print(f"[{r['i']}] {r['outcome']}: {r['desc']} -> {r['detail']}", file=sys.stderr)
            else:           # no answer in time (a hang), or the child ended
                if not ready:
                    proc.kill()
                proc.wait()
                err_file.seek(0)
                if current is not None or proc.returncode != 0:
                    failed = current if current is not None else (records[-1]["i"] + 1 if records else i)
                    desc = make_case(seed, failed).description
                    records.append(dict(i=failed, fn=desc.split()[0], desc=desc,
                                        outcome="hang" if not ready else "crash",
                                        detail=f"no answer in {timeout} s" if not ready else
                                        f"exit {proc.returncode}: {err_file.read()[-3000:]}"))
                break
        i = records[-1]["i"] + 1 if records else stop
        proc.stdout.close()
        err_file.close()
    return records


def summary(records):
    by_outcome = Counter(r["outcome"] for r in records)
    by_fn = Counter((r["fn"], r["outcome"]) for r in records)
    return by_outcome, by_fn


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds without an answer that make a hang")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.seed, args.start, args.start + args.calls)
        return 0
    t0 = time.time()
    # the children import the fastconv this process imports (the installed one, or a build's)
    import fastconv
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__))))
    records = run(args.seed, args.start, args.calls, args.timeout, env, args.verbose)
    by_outcome, by_fn = summary(records)
    print(f"{len(records)} calls in {time.time() - t0:.0f} s (seed {args.seed}): "
          + ", ".join(f"{k} {v}" for k, v in sorted(by_outcome.items())))
    for fn in FUNCTIONS:
        print(f"  {fn}: " + ", ".join(f"{o} {c}" for (f, o), c in sorted(by_fn.items()) if f == fn))
    failures = [r for r in records if r["outcome"] in ("wrong", "crash", "hang")]
    for r in failures[:50]:
        print(f"FAIL [{r['i']}] {r['outcome']}: {r['desc']}\n    {r['detail'][:600]}\n"
              f"    replay: python tests/fuzz_api.py --seed {args.seed} --start {r['i']} --calls 1 --verbose")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
