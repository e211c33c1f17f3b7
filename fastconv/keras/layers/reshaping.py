"""Reshaping layers: ``Flatten``."""
import math

from fastconv.keras.layers._arguments import standardize_data_format
from fastconv.keras.layers.base import InputSpec, Layer

__all__ = ["Flatten"]


class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1 * d2 * ...); channels-first inputs are first put in
    channels-last order, as Keras does, so that the weights after it mean the same thing."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format, f'Flatten "{self.name}"')
        self.input_spec = InputSpec(min_ndim=1)

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        return (input_shape[0], None if any(d is None for d in rest) else math.prod(rest))

    def _channels_last(self, x):
        if self.data_format == "channels_first" and x.ndim > 2:
            return x.transpose(0, *range(2, x.ndim), 1)
        return x

    def forward(self, x, training=False):
        xc = self._channels_last(x)
        return xc.reshape(x.shape[0], -1), xc.shape

    def backward(self, shape, grad, need_input_grad=True):
        g = grad.reshape(shape)
        if self.data_format == "channels_first" and g.ndim > 2:
            g = g.transpose(0, g.ndim - 1, *range(1, g.ndim - 1))
        return g, {}

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}
