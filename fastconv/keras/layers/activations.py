"""Activation layers: ``Activation`` (any activation by name) and ``ReLU``."""
from typing import NamedTuple, Optional

import numpy as np

from fastconv.keras import activations
from fastconv.keras.layers._with_activation import WithActivation
from fastconv.keras.layers.base import Layer

__all__ = ["Activation", "ReLU"]


class ActivationCache(NamedTuple):
    y: np.ndarray
    logits: Optional[np.ndarray]


class Activation(WithActivation, Layer):
    """Applies an activation function: ``Activation('relu')``."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self._set_activation(activation)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training=False):
        y, logits = self._activate(x)
        return y, ActivationCache(y, logits)

    def backward_from_logits(self, cache, dz, need_input_grad=True):
        return dz, {}

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


class ReLU(Layer):
    """``max_value`` if x >= max_value, x if threshold < x < max_value, else
    negative_slope * (x - threshold); the defaults give max(x, 0)."""

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("negative_slope", negative_slope), ("threshold", threshold)):
            if value is None or value < 0:
                raise ValueError(f'ReLU "{self.name}": {arg} must be a number >= 0. Received: {arg}={value!r}')
        if max_value is not None and max_value < 0:
            raise ValueError(f'ReLU "{self.name}": max_value must be >= 0 or None. Received: max_value={max_value!r}')
        self.max_value = None if max_value is None else float(max_value)
        self.negative_slope = float(negative_slope)
        self.threshold = float(threshold)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training=False):
        if self.negative_slope == 0 and self.threshold == 0:
            y = np.maximum(x, 0)
        else:
            y = np.where(x > self.threshold, x, self.negative_slope * (x - self.threshold)).astype(x.dtype, copy=False)
        if self.max_value is not None:
            y = np.minimum(y, self.max_value).astype(x.dtype, copy=False)
        return y, x

    def backward(self, x, grad, need_input_grad=True):
        # The derivative is 1 above the threshold, negative_slope below, 0 above max_value; at
        # the kinks it is taken from below, as tf.nn.relu's gradient is 0 at 0.
        slope = np.where(x > self.threshold, 1, self.negative_slope).astype(x.dtype, copy=False)
        if self.max_value is not None:
            slope = slope * (x < self.max_value)
        return grad * slope, {}

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value, "negative_slope": self.negative_slope,
                "threshold": self.threshold}
