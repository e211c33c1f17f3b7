"""TensorFlow's ``tf.nn`` names for fastconv's operations, so that ``import fastconv as tf`` lets a
lecture's ``tf.nn.conv2d(...)`` / ``tf.nn.max_pool2d(...)`` run unchanged."""
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


__all__ = ["avg_pool", "avg_pool2d", "bias_add", "conv2d", "conv2d_transpose", "depthwise_conv2d", "max_pool",
           "max_pool2d", "max_pool_with_argmax", "relu"]
