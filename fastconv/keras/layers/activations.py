"""Activation layers: ``Activation`` (any activation by name), ``ReLU``, ``LeakyReLU``, ``ELU``,
``PReLU`` (a learned slope) and ``Softmax``."""
import numbers
import warnings
from typing import NamedTuple, Optional

import numpy as np

from fastconv.keras import activations, constraints, initializers, regularizers
from fastconv.keras.layers._with_activation import WithActivation
from fastconv.keras.layers.base import InputSpec, Layer

__all__ = ["Activation", "ELU", "LeakyReLU", "PReLU", "ReLU", "Softmax"]


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


def _number(layer, argument, value):
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ValueError(f'{type(layer).__name__} "{layer.name}": {argument} must be a number. '
                         f"Received: {argument}={value!r}")
    return float(value)


class LeakyReLU(Layer):
    """x for x > 0, negative_slope * x otherwise (Keras 3's default slope 0.3; the Keras 2
    spelling ``alpha=`` is accepted with a deprecation warning, as Keras does)."""

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
            warnings.warn("Argument `alpha` is deprecated. Use `negative_slope` instead.", stacklevel=2)
        super().__init__(**kwargs)
        if negative_slope is None or not isinstance(negative_slope, numbers.Real) or negative_slope < 0:
            raise ValueError(f'LeakyReLU "{self.name}": the negative_slope value of a Leaky ReLU layer cannot be None '
                             f"or negative value. Expected a float. Received: negative_slope={negative_slope!r}")
        self.negative_slope = float(negative_slope)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training=False):
        return activations.leaky_relu(x, self.negative_slope), x

    def backward(self, x, grad, need_input_grad=True):
        return np.where(x > 0, grad, grad * grad.dtype.type(self.negative_slope)), {}

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


class ELU(Layer):
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = _number(self, "alpha", alpha)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training=False):
        return activations.elu(x, self.alpha), x

    def backward(self, x, grad, need_input_grad=True):
        # The slope alpha * exp(x) below 0, also at 0 itself, as TensorFlow's gradient of
        # where(x > 0, elu(x), alpha * elu(x)).
        slope = np.where(x > 0, 1, x.dtype.type(self.alpha) * np.exp(np.minimum(x, 0)))
        return grad * slope.astype(grad.dtype, copy=False), {}

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class PReLU(Layer):
    """x for x > 0, alpha * x otherwise, with ``alpha`` a weight learned per input element
    (shape: the input without its batch axis), or shared along ``shared_axes`` (e.g. (1, 2):
    one slope per channel of an image)."""

    def __init__(self, alpha_initializer="Zeros", alpha_regularizer=None, alpha_constraint=None, shared_axes=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        self.alpha_constraint = constraints.get(alpha_constraint)
        if shared_axes is None:
            self.shared_axes = None
        else:
            axes = list(shared_axes) if isinstance(shared_axes, (list, tuple)) else [shared_axes]
            if not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) and a >= 1 for a in axes):
                raise ValueError(f'PReLU "{self.name}": shared_axes must be axes of the input after the batch axis '
                                 f"(ints >= 1). Received: shared_axes={shared_axes!r}")
            self.shared_axes = [int(a) for a in axes]

    def build(self, input_shape):
        rank = len(input_shape)
        if self.shared_axes is not None and max(self.shared_axes) >= rank:
            raise ValueError(f'PReLU "{self.name}": shared_axes={self.shared_axes} names an axis beyond those of the '
                             f"input of shape {tuple(input_shape)}")
        shared = set(self.shared_axes or ())
        shape = [1 if i in shared else d for i, d in enumerate(input_shape[1:], start=1)]
        if None in shape:
            raise ValueError(f'PReLU "{self.name}": the axes that are not shared must have known sizes; received '
                             f"input shape {tuple(input_shape)} with shared_axes={self.shared_axes}")
        self.alpha = self.add_weight(tuple(shape), self.alpha_initializer, "alpha", regularizer=self.alpha_regularizer,
                                     constraint=self.alpha_constraint)
        fixed_axes = {i: d for i, d in enumerate(input_shape) if i >= 1 and i not in shared}
        self.input_spec = InputSpec(ndim=rank, axes=fixed_axes)
        self._shared = tuple(sorted(shared))
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training=False):
        # relu(x) - alpha * relu(-x), as Keras computes it.
        return np.maximum(x, 0) - self.alpha.value * np.maximum(-x, 0), x

    def backward(self, x, grad, need_input_grad=True):
        grads = {}
        if self.trainable:
            grads[self.alpha] = np.sum(-np.maximum(-x, 0) * grad, axis=(0,) + self._shared, keepdims=True)[0]
        # The slope is 1 above 0, alpha below; at 0 both relu terms have slope 0 (TensorFlow's).
        dx = grad * ((x > 0) + self.alpha.value * (x < 0)) if need_input_grad else None
        return dx, grads

    def get_config(self):
        return {**super().get_config(), "alpha_initializer": initializers.serialize(self.alpha_initializer),
                "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
                "alpha_constraint": constraints.serialize(self.alpha_constraint), "shared_axes": self.shared_axes}


class SoftmaxCache(NamedTuple):
    y: np.ndarray
    logits: Optional[np.ndarray]


class Softmax(Layer):
    """exp(x) / sum(exp(x)) along ``axis`` (an int or a tuple of ints).

    Along the last axis its input counts as logits for a cross-entropy loss, as Keras on
    TensorFlow takes a softmax's input as logits (see fastconv.keras.losses).
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
        if not axes or not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axes):
            raise ValueError(f'Softmax "{self.name}": axis must be an int or a tuple of ints. Received: axis={axis!r}')
        self.axis = axis if isinstance(axis, (int, np.integer)) else list(axes)
        self._axes = tuple(int(a) for a in axes)
        self._last_axis = self._axes == (-1,)

    def build(self, input_shape):
        rank = len(input_shape)
        if not all(-rank <= a < rank for a in self._axes):
            raise ValueError(f'Softmax "{self.name}": axis={self.axis} is out of range for an input of shape '
                             f"{tuple(input_shape)}")
        self._last_axis = tuple(a % rank for a in self._axes) == (rank - 1,)
        self.built = True

    @property
    def produces_logits(self):
        return self._last_axis

    def logits(self, cache):
        return cache.logits

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training=False):
        y = activations.softmax(x, axis=self._axes)
        return y, SoftmaxCache(y, x if self._last_axis else None)

    def backward(self, cache, grad, need_input_grad=True):
        y = cache.y
        return y * (grad - np.sum(grad * y, axis=self._axes, keepdims=True)), {}

    def backward_from_logits(self, cache, dz, need_input_grad=True):
        return dz, {}

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
