"""Pooling layers on fastconv's kernels: a base class with ``MaxPooling2D`` and
``AveragePooling2D`` as thin subclasses (as in Keras 3), and ``GlobalAveragePooling2D`` and
``GlobalMaxPooling2D``.

Max pooling in training keeps the argmax of each window (``max_pool_with_argmax``) so that the
backward pass sends each gradient to its maximum without searching the windows again
(``max_pool2d_grad_with_argmax``); at inference it runs ``max_pool2d`` alone.
"""
from typing import NamedTuple

import numpy as np

import fastconv
from fastconv.keras.layers._arguments import (
    spatial_axes,
    standardize_data_format,
    standardize_padding,
    standardize_tuple,
    tf_data_format,
    windowed_output_shape,
)
from fastconv.keras.layers.base import InputSpec, Layer

__all__ = ["AveragePooling2D", "AvgPool2D", "BasePooling", "GlobalAveragePooling2D", "GlobalAvgPool2D",
           "GlobalMaxPool2D", "GlobalMaxPooling2D", "MaxPool2D", "MaxPooling2D"]


class MaxPoolingCache(NamedTuple):
    nhwc_shape: tuple
    argmax: np.ndarray  # flat NHWC index of each window's maximum (int32)


class BasePooling(Layer):
    def __init__(self, pool_size, strides, pool_dimensions, pool_mode, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        owner = f'{type(self).__name__} "{self.name}"'
        if pool_dimensions != 2:
            raise ValueError(f"{owner}: fastconv implements 2-D pooling only. "
                             f"Received: pool_dimensions={pool_dimensions}")
        self.pool_size = standardize_tuple(pool_size, 2, "pool_size", owner)
        self.strides = self.pool_size if strides is None else standardize_tuple(strides, 2, "strides", owner)
        self.padding = standardize_padding(padding, owner)
        self.data_format = standardize_data_format(data_format, owner)
        self.pool_mode = pool_mode
        self.input_spec = InputSpec(ndim=4)
        self._pool_args = dict(ksize=self.pool_size, strides=self.strides, padding=self.padding.upper())

    def compute_output_shape(self, input_shape):
        channels = input_shape[1 if self.data_format == "channels_first" else 3]
        return windowed_output_shape(self, input_shape, self.pool_size, self.strides, (1, 1), self.padding,
                                     self.data_format, channels)

    def _check_input(self, shapes):
        super()._check_input(shapes)
        self.compute_output_shape(shapes[0])  # says, with the layer's name, when the window does not fit

    def _to_nhwc(self, x):
        return x if self.data_format == "channels_last" else x.transpose(0, 2, 3, 1)

    def _from_nhwc(self, x):
        return x if self.data_format == "channels_last" else x.transpose(0, 3, 1, 2)

    def call(self, x, training=False):
        pool = fastconv.max_pool2d if self.pool_mode == "max" else fastconv.avg_pool2d
        return pool(x, data_format=tf_data_format(self.data_format), **self._pool_args)

    def forward(self, x, training=False):
        if self.pool_mode == "avg":
            return self.call(x), x.shape
        xn = self._to_nhwc(x)
        # int32: half the memory traffic of TensorFlow's default int64, taken as is by the gradient
        y, argmax = fastconv.max_pool_with_argmax(xn, output_dtype=np.int32, **self._pool_args)
        return self._from_nhwc(y), MaxPoolingCache(xn.shape, argmax)

    def backward(self, cache, grad, need_input_grad=True):
        if self.pool_mode == "avg":
            dx = fastconv.avg_pool2d_grad(cache, grad, data_format=tf_data_format(self.data_format), **self._pool_args)
            return dx, {}
        dx = fastconv.max_pool2d_grad_with_argmax(cache.nhwc_shape, self._to_nhwc(grad), cache.argmax,
                                                  **self._pool_args)
        return self._from_nhwc(dx), {}

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "padding": self.padding,
                "strides": self.strides, "data_format": self.data_format}


class MaxPooling2D(BasePooling):
    """The maximum of each ``pool_size`` window, moved by ``strides`` (default: pool_size)."""

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, 2, "max", padding, data_format, **kwargs)


class AveragePooling2D(BasePooling):
    """The mean of each ``pool_size`` window (over its real elements with padding='same').

    ``pool_size`` defaults to (2, 2) as in tf.keras 2 and Keras 3's MaxPooling2D, so that the
    lecture's ``AveragePooling2D()`` runs (Keras 3 itself requires the argument here).
    """

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, 2, "avg", padding, data_format, **kwargs)


class _GlobalPooling2D(Layer):
    """A reduction over height and width of each channel: (batch, h, w, c) -> (batch, c), or
    (batch, 1, 1, c) with ``keepdims=True``."""

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format, f'{type(self).__name__} "{self.name}"')
        self.keepdims = bool(keepdims)
        self.input_spec = InputSpec(ndim=4)
        self._axes = spatial_axes(self.data_format)

    def compute_output_shape(self, input_shape):
        if self.keepdims:
            return tuple(1 if i in self._axes else d for i, d in enumerate(input_shape))
        return tuple(d for i, d in enumerate(input_shape) if i not in self._axes)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalAveragePooling2D(_GlobalPooling2D):
    """The mean over height and width of each channel."""

    def forward(self, x, training=False):
        return np.mean(x, axis=self._axes, keepdims=self.keepdims), x.shape

    def backward(self, shape, grad, need_input_grad=True):
        h, w = shape[self._axes[0]], shape[self._axes[1]]
        g = grad if self.keepdims else np.expand_dims(grad, self._axes)
        return np.broadcast_to(g / (h * w), shape).astype(grad.dtype, copy=True), {}


class GlobalMaxPoolingCache(NamedTuple):
    share: np.ndarray  # 1 / (number of maxima of the channel) at its maxima, 0 elsewhere


class GlobalMaxPooling2D(_GlobalPooling2D):
    """The maximum over height and width of each channel.  When several pixels hold the
    maximum, the gradient is shared equally between them, as TensorFlow's gradient of
    reduce_max."""

    def call(self, x, training=False):
        return np.max(x, axis=self._axes, keepdims=self.keepdims)

    def forward(self, x, training=False):
        top = np.max(x, axis=self._axes, keepdims=True)
        at_max = (x == top).astype(x.dtype)
        share = at_max / at_max.sum(axis=self._axes, keepdims=True)
        return (top if self.keepdims else np.squeeze(top, self._axes)), GlobalMaxPoolingCache(share)

    def backward(self, cache, grad, need_input_grad=True):
        g = grad if self.keepdims else np.expand_dims(grad, self._axes)
        return cache.share * g, {}


# Keras's short names.
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D
