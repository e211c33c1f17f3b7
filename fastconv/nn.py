"""TensorFlow's ``tf.nn`` names for fastconv's operations, so that ``import fastconv as tf`` lets a
lecture's ``tf.nn.conv2d(...)`` / ``tf.nn.max_pool2d(...)`` run unchanged, and the activations
that programs apply to a model's outputs (``tf.nn.softmax(predictions[0])``), on NumPy arrays."""
import numpy as np

from fastconv.elementwise import bias_add
from fastconv.conv import conv2d, conv2d_transpose
from fastconv.depthwise import depthwise_conv2d
from fastconv.pooling import avg_pool2d, max_pool2d, max_pool_with_argmax

max_pool = max_pool2d
avg_pool = avg_pool2d


def relu(features, name=None):
    """max(features, 0), as ``tf.nn.relu`` (NaN stays NaN); a NumPy array of the input's dtype."""
    x = np.asarray(features)
    return np.maximum(x, np.zeros((), dtype=x.dtype))


def _floating(x, fn):
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{fn}: logits must be floating point (float16, float32 or float64); received dtype {x.dtype}")
    return x


def softmax(logits, axis=None, name=None):
    """exp(logits) / sum(exp(logits)) along ``axis`` (the last by default), as ``tf.nn.softmax``
    (the maximum is subtracted first, so that large logits do not overflow)."""
    x = _floating(logits, "softmax")
    axis = -1 if axis is None else axis
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(logits, axis=None, name=None):
    """log(softmax(logits)) along ``axis`` (the last by default), computed stably."""
    x = _floating(logits, "log_softmax")
    axis = -1 if axis is None else axis
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def sigmoid(x, name=None):
    """1 / (1 + exp(-x)), as ``tf.nn.sigmoid`` / ``tf.math.sigmoid`` (no overflow for large |x|)."""
    x = _floating(x, "sigmoid")
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


__all__ = ["avg_pool", "avg_pool2d", "bias_add", "conv2d", "conv2d_transpose", "depthwise_conv2d", "log_softmax",
           "max_pool", "max_pool2d", "max_pool_with_argmax", "relu", "sigmoid", "softmax"]
