"""Core layers: InputLayer/Input, Dense, Activation, ReLU, Flatten, Dropout."""
import math

import numpy as np

from fastconv.keras import activations, backend, initializers
from fastconv.keras.layers._arguments import standardize_data_format
from fastconv.keras.layers.base import InputSpec, KerasTensor, Layer, Node, _shape_tuple


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


class _WithActivation:
    """An ``activation`` applied after the layer's affine map, and its derivative.

    ``backward`` turns dL/dy into dL/dz through the activation and hands it to
    ``backward_from_logits``, which a model calls directly when the loss has given the gradient of
    the logits z (a cross-entropy on a sigmoid or softmax output, as Keras computes it).
    """

    def _set_activation(self, activation):
        self.activation = activations.get(activation)
        self._activation_grad = activations.gradient(self.activation)

    @property
    def produces_logits(self):
        return self.activation in activations.LOGIT_ACTIVATIONS

    def logits(self, cache):
        """The pre-activation z of a forward pass when the activation is sigmoid or softmax."""
        return cache[-1]

    def _activate(self, z):
        """(y, z kept as logits or None)."""
        return self.activation(z), (z if self.produces_logits else None)

    def backward(self, cache, grad, need_input_grad=True):
        y = cache[-2]
        return self.backward_from_logits(cache, self._activation_grad(y, grad), need_input_grad)


class Dense(_WithActivation, Layer):
    """``y = activation(x @ kernel + bias)`` on the last axis of ``x``, kernel of shape (in, units)."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units < 1:
            raise ValueError(f'Dense "{self.name}": units must be a positive integer. Received: units={units!r}')
        _refuse_unsupported(self, kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
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
        return y, (x, y, logits)

    def backward_from_logits(self, cache, dz, need_input_grad=True):
        x = cache[0]
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


class Activation(_WithActivation, Layer):
    """Applies an activation function: ``Activation('relu')``."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self._set_activation(activation)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training=False):
        y, logits = self._activate(x)
        return y, (y, logits)

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


class Dropout(Layer):
    """In training, zeroes each input with probability ``rate`` and scales the others by
    1 / (1 - rate) (inverted dropout), so that nothing changes at inference."""

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(rate, (int, float, np.floating, np.integer)) or not 0 <= rate < 1:
            raise ValueError(f'Dropout "{self.name}": rate must be a number in [0, 1). Received: rate={rate!r}')
        self.rate = float(rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed
        self._rng = None if seed is None else np.random.default_rng(seed)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            return x, None
        shape = x.shape if self.noise_shape is None else tuple(
            x.shape[i] if d is None else d for i, d in enumerate(self.noise_shape))
        rng = self._rng or backend.random_generator()
        keep = rng.random(shape, dtype=np.float32) >= self.rate
        scale = keep.astype(x.dtype) * x.dtype.type(1 / (1 - self.rate))
        return x * scale, scale

    def backward(self, scale, grad, need_input_grad=True):
        return (grad if scale is None else grad * scale), {}

    def get_config(self):
        return {**super().get_config(), "rate": self.rate,
                "noise_shape": None if self.noise_shape is None else list(self.noise_shape), "seed": self.seed}


def _refuse_unsupported(layer, **arguments):
    """Regularizers and constraints are not implemented: refuse them rather than ignore them."""
    given = [name for name, value in arguments.items() if value is not None]
    if given:
        raise ValueError(f'{type(layer).__name__} "{layer.name}": fastconv.keras does not implement '
                         f"{', '.join(given)}; pass None (the default)")
