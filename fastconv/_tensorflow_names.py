"""TensorFlow's names for the array functions that Keras programs call around their models, so
that a program written with ``import tensorflow as tf`` runs with ``import fastconv as tf``:
``tf.expand_dims(img_array, 0)``, ``tf.nn.softmax(predictions[0])``, ``tf.cast(x, tf.float32)``,
``tf.argmax(logits, axis=1)``, ``tf.config.list_physical_devices("GPU")``...

They take array-likes and return NumPy arrays, with TensorFlow's argument names, defaults and
result dtypes (``argmax`` gives int64 and reduces axis 0 when no axis is given, ``one_hot``
float32, ``shape`` int32).  ``fastconv`` exposes them on first use (``fastconv.expand_dims``,
``fastconv.math``, ``fastconv.config``, ``fastconv.float32``...); ``fastconv.nn`` and
``fastconv.image`` hold the ``tf.nn`` and ``tf.image`` ones.
"""
import builtins
import types

import numpy as np

DTYPES = {name: np.dtype(name).type for name in ("float16", "float32", "float64", "int8", "int16", "int32",
                                                  "int64", "uint8", "uint16", "uint32", "uint64", "bool")}
DTYPES.update(half=np.float16, float=np.float32, double=np.float64)


def _dtype(dtype):
    return None if dtype is None else np.dtype(dtype)


def expand_dims(input, axis, name=None):  # noqa: A002 (TensorFlow's argument name)
    return np.expand_dims(np.asarray(input), axis)


def squeeze(input, axis=None, name=None):  # noqa: A002
    return np.squeeze(np.asarray(input), axis=None if axis is None else tuple(np.atleast_1d(axis)))


def cast(x, dtype, name=None):
    return np.asarray(x).astype(_dtype(dtype))


def _python_default(out, value, dtype):
    """TensorFlow makes Python floats float32 and Python ints int32 (NumPy: 64 bits)."""
    if dtype is None and not isinstance(value, (np.ndarray, np.generic)):
        if out.dtype == np.float64:
            return out.astype(np.float32)
        if out.dtype == np.int64:
            return out.astype(np.int32)
    return out


def constant(value, dtype=None, shape=None, name=None):
    out = _python_default(np.array(value, dtype=_dtype(dtype)), value, dtype)
    return np.broadcast_to(out, shape).copy() if shape is not None else out


def convert_to_tensor(value, dtype=None, dtype_hint=None, name=None):
    return constant(value, dtype=dtype or dtype_hint) if not isinstance(value, np.ndarray) else \
        np.asarray(value, dtype=_dtype(dtype))


def reshape(tensor, shape, name=None):
    return np.reshape(np.asarray(tensor), shape)


def shape(input, out_type=np.int32, name=None):  # noqa: A002
    return np.array(np.shape(input), dtype=out_type)


def concat(values, axis, name="concat"):
    return np.concatenate([np.asarray(v) for v in values], axis=axis)


def stack(values, axis=0, name="stack"):
    return np.stack([np.asarray(v) for v in values], axis=axis)


def where(condition, x=None, y=None, name=None):
    if x is None and y is None:
        return np.argwhere(np.asarray(condition)).astype(np.int64)
    return np.where(np.asarray(condition), x, y)


def zeros(shape, dtype=np.float32, name=None):
    return np.zeros(shape, dtype=_dtype(dtype))


def ones(shape, dtype=np.float32, name=None):
    return np.ones(shape, dtype=_dtype(dtype))


def zeros_like(input, dtype=None, name=None):  # noqa: A002
    return np.zeros_like(np.asarray(input), dtype=_dtype(dtype))


def ones_like(input, dtype=None, name=None):  # noqa: A002
    return np.ones_like(np.asarray(input), dtype=_dtype(dtype))


def range(start, limit=None, delta=1, dtype=None, name="range"):  # noqa: A001
    out = np.arange(start, limit, delta, dtype=_dtype(dtype)) if limit is not None else \
        np.arange(start, dtype=_dtype(dtype))
    return _python_default(out, start, dtype)


def one_hot(indices, depth, on_value=None, off_value=None, axis=None, dtype=None, name=None):
    indices = np.asarray(indices)
    dtype = _dtype(dtype) or np.dtype(np.float32)
    hot = np.arange(depth) == indices[..., None]          # out-of-range indices give all off
    out = np.where(hot, 1 if on_value is None else on_value, 0 if off_value is None else off_value).astype(dtype)
    return out if axis in (None, -1) else np.moveaxis(out, -1, axis)


def argmax(input, axis=None, output_type=np.int64, name=None):  # noqa: A002
    return np.argmax(np.asarray(input), axis=0 if axis is None else axis).astype(output_type)


def argmin(input, axis=None, output_type=np.int64, name=None):  # noqa: A002
    return np.argmin(np.asarray(input), axis=0 if axis is None else axis).astype(output_type)


def _reduction(numpy_fn):
    def reduce(input_tensor, axis=None, keepdims=False, name=None):
        x = np.asarray(input_tensor)
        out = numpy_fn(x, axis=None if axis is None else tuple(np.atleast_1d(axis)), keepdims=keepdims)
        return np.asarray(out).astype(x.dtype, copy=False)     # in the input's dtype, as TensorFlow
    reduce.__name__ = f"reduce_{numpy_fn.__name__}"
    reduce.__doc__ = f"tf.reduce_{numpy_fn.__name__}: np.{numpy_fn.__name__} over ``axis`` (all axes by default)."
    return reduce


reduce_mean, reduce_sum = _reduction(np.mean), _reduction(np.sum)
reduce_max, reduce_min, reduce_prod = _reduction(np.max), _reduction(np.min), _reduction(np.prod)


def clip_by_value(t, clip_value_min, clip_value_max, name=None):
    return np.clip(np.asarray(t), clip_value_min, clip_value_max)


def transpose(a, perm=None, conjugate=False, name="transpose"):
    return np.transpose(np.asarray(a), perm)


def _elementwise(numpy_fn):
    def op(x, name=None):
        return numpy_fn(np.asarray(x))
    op.__name__ = numpy_fn.__name__
    return op


exp, log, sqrt, square = _elementwise(np.exp), _elementwise(np.log), _elementwise(np.sqrt), _elementwise(np.square)
abs, round = _elementwise(np.absolute), _elementwise(np.round)  # noqa: A001


def _operand(v):
    # Python numbers stay Python numbers: they take the array's dtype, as in TensorFlow.
    return v if isinstance(v, (int, float)) else np.asarray(v)


def maximum(x, y, name=None):
    return np.maximum(_operand(x), _operand(y))


def minimum(x, y, name=None):
    return np.minimum(_operand(x), _operand(y))


def _physical_devices(device_type=None):
    """The devices this process computes on: the CPU (fastconv has no GPU code)."""
    devices = [PhysicalDevice(name="/physical_device:CPU:0", device_type="CPU")]
    return [d for d in devices if device_type is None or d.device_type == str(device_type).upper()]


class PhysicalDevice(types.SimpleNamespace):
    def __repr__(self):
        return f"PhysicalDevice(name='{self.name}', device_type='{self.device_type}')"


config = types.SimpleNamespace(list_physical_devices=_physical_devices,
                               list_logical_devices=_physical_devices,
                               experimental=types.SimpleNamespace(list_physical_devices=_physical_devices))


def _math_namespace():
    from fastconv import nn
    names = dict(sigmoid=nn.sigmoid, softmax=nn.softmax, log_softmax=nn.log_softmax, exp=exp, log=log,
                 sqrt=sqrt, square=square, abs=abs, round=round, maximum=maximum, minimum=minimum,
                 argmax=argmax, argmin=argmin, reduce_mean=reduce_mean, reduce_sum=reduce_sum,
                 reduce_max=reduce_max, reduce_min=reduce_min, reduce_prod=reduce_prod)
    return types.SimpleNamespace(**names)


FUNCTIONS = {f.__name__: f for f in (
    expand_dims, squeeze, cast, constant, convert_to_tensor, reshape, shape, concat, stack, where, zeros, ones,
    zeros_like, ones_like, range, one_hot, argmax, argmin, reduce_mean, reduce_sum, reduce_max, reduce_min,
    reduce_prod, clip_by_value, transpose, maximum, minimum)}
FUNCTIONS.update(exp=exp, log=log, sqrt=sqrt, square=square, abs=abs, round=round)
NAMES = sorted(builtins.set(FUNCTIONS) | builtins.set(DTYPES) | {"config", "math"})


def lookup(name):
    """The object ``fastconv.<name>`` stands for, or None."""
    if name in FUNCTIONS:
        return FUNCTIONS[name]
    if name in DTYPES:
        return DTYPES[name]
    if name == "config":
        return config
    if name == "math":
        return _math_namespace()
    return None
