"""Core layers: InputLayer/Input and Dense."""
from typing import NamedTuple, Optional

import numpy as np

from fastconv.keras import activations, initializers
from fastconv.keras.layers._arguments import refuse_unsupported
from fastconv.keras.layers._with_activation import WithActivation
from fastconv.keras.layers.base import InputSpec, KerasTensor, Layer, Node, _shape_tuple

__all__ = ["Dense", "Input", "InputLayer"]


class InputLayer(Layer):
    """The entry of a model: holds the input's shape and produces its symbolic tensor."""

    def __init__(self, shape=None, batch_size=None, dtype=None, batch_shape=None, name=None, **kwargs):
        legacy = kwargs.pop("input_shape", None)
        if legacy is not None and shape is None:
            shape = legacy
        legacy_batch = kwargs.pop("batch_input_shape", None)
        if legacy_batch is not None and batch_shape is None:
            batch_shape = legacy_batch
        super().__init__(name=name, dtype=dtype, **kwargs)
        if batch_shape is None:
            if shape is None:
                raise ValueError("InputLayer: pass shape=(...) (without the batch size) or batch_shape=(...)")
            batch_shape = (batch_size,) + _shape_tuple(shape, "shape", "InputLayer")
        elif shape is not None:
            raise ValueError("InputLayer: pass either shape or batch_shape, not both")
        self.batch_shape = (None if batch_shape[0] is None else int(batch_shape[0]),) + \
            _shape_tuple(tuple(batch_shape)[1:], "shape", "InputLayer")
        self.built = True
        Node(self, [], [KerasTensor(self.batch_shape, self.dtype, name=self.name)])

    def call(self, inputs, training=False):
        return inputs

    def forward(self, inputs, training=False):
        return inputs, None

    def backward(self, cache, grad, need_input_grad=True):
        return grad, {}

    def compute_output_shape(self, input_shape):
        return self.batch_shape

    def get_config(self):
        return {"batch_shape": self.batch_shape, "dtype": self.dtype, "name": self.name}


def Input(shape=None, batch_size=None, dtype=None, batch_shape=None, name=None):
    """The symbolic input of a functional model: ``Input((100, 100, 3))`` stands for a batch of
    100x100 RGB images, shape (None, 100, 100, 3)."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape, name=name).output


class DenseCache(NamedTuple):
    x: np.ndarray
    y: np.ndarray
    logits: Optional[np.ndarray]


class Dense(WithActivation, Layer):
    """``y = activation(x @ kernel + bias)`` on the last axis of ``x``, kernel of shape (in, units)."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units < 1:
            raise ValueError(f'Dense "{self.name}": units must be a positive integer. Received: units={units!r}')
        refuse_unsupported(self, kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                            activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
                            bias_constraint=bias_constraint)
        self.units = int(units)
        self._set_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.input_spec = InputSpec(min_ndim=2)

    def build(self, input_shape):
        in_features = input_shape[-1]
        if in_features is None:
            raise ValueError(f'Dense "{self.name}": the last axis of the input must be known; received shape {input_shape}')
        self.kernel = self.add_weight((in_features, self.units), self.kernel_initializer, "kernel")
        self.bias = self.add_weight((self.units,), self.bias_initializer, "bias") if self.use_bias else None
        self.input_spec = InputSpec(min_ndim=2, axes={-1: in_features})
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def forward(self, x, training=False):
        z = x @ self.kernel.value
        if self.use_bias:
            z += self.bias.value
        y, logits = self._activate(z)
        return y, DenseCache(x, y, logits)

    def backward_from_logits(self, cache, dz, need_input_grad=True):
        x = cache.x
        # A Dense on a (batch, ..., in) tensor is one matrix product over all leading axes.
        x2 = x.reshape(-1, x.shape[-1])
        dz2 = dz.reshape(-1, self.units)
        grads = {}
        if self.trainable:
            grads[self.kernel] = x2.T @ dz2
            if self.use_bias:
                grads[self.bias] = dz2.sum(axis=0)
        dx = dz @ self.kernel.value.T if need_input_grad else None
        return dx, grads

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer)}
