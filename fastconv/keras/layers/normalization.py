"""``BatchNormalization``, in training mode (batch statistics) and inference mode (moving ones)."""
from typing import NamedTuple

import numpy as np

from fastconv.keras import initializers
from fastconv.keras.layers._arguments import refuse_unsupported
from fastconv.keras.layers.base import InputSpec, Layer

__all__ = ["BatchNormalization"]


class BatchNormalizationCache(NamedTuple):
    x_hat: np.ndarray
    inv_std: np.ndarray
    batch_stats: bool  # normalised with the batch's statistics (training) or the moving ones


class BatchNormalization(Layer):
    """``gamma * (x - mean) / sqrt(var + epsilon) + beta`` per channel (``axis``).

    In training (``fit``) mean and var are the batch's (biased variance), and the moving
    statistics follow them: ``moving = moving * momentum + batch * (1 - momentum)``.  At
    inference (``predict``, ``evaluate``) and when the layer is frozen (``trainable=False``) the
    moving statistics are used.  Defaults as Keras: momentum 0.99, epsilon 1e-3.
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 synchronized=False, **kwargs):
        super().__init__(**kwargs)
        refuse_unsupported(self, beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer,
                            beta_constraint=beta_constraint, gamma_constraint=gamma_constraint)
        if not isinstance(axis, int):
            raise ValueError(f'BatchNormalization "{self.name}": axis must be an int. Received: axis={axis!r}')
        self.axis = axis
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.synchronized = bool(synchronized)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)

    def build(self, input_shape):
        ndim = len(input_shape)
        if not -ndim <= self.axis < ndim or self.axis % ndim == 0:
            raise ValueError(f'BatchNormalization "{self.name}": axis={self.axis} is not a feature axis of an input '
                             f"of shape {tuple(input_shape)}")
        axis = self.axis % ndim
        channels = input_shape[axis]
        shape = (channels,)
        self.gamma = self.add_weight(shape, self.gamma_initializer, "gamma") if self.scale else None
        self.beta = self.add_weight(shape, self.beta_initializer, "beta") if self.center else None
        self.moving_mean = self.add_weight(shape, self.moving_mean_initializer, "moving_mean", trainable=False)
        self.moving_variance = self.add_weight(shape, self.moving_variance_initializer, "moving_variance",
                                               trainable=False)
        self._reduce_axes = tuple(i for i in range(ndim) if i != axis)
        # Per-channel vectors broadcast along `axis`.
        self._broadcast = tuple(channels if i == axis else 1 for i in range(ndim))
        self.input_spec = InputSpec(ndim=ndim, axes={axis: channels})
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _per_channel(self, v):
        return v.reshape(self._broadcast)

    def forward(self, x, training=False):
        batch_stats = bool(training) and self.trainable
        if batch_stats:
            mean = x.mean(axis=self._reduce_axes)
            var = x.var(axis=self._reduce_axes)
            m = x.dtype.type(self.momentum)
            self.moving_mean.value[...] = self.moving_mean.value * m + mean * (1 - m)
            self.moving_variance.value[...] = self.moving_variance.value * m + var * (1 - m)
        else:
            mean, var = self.moving_mean.value, self.moving_variance.value
        inv_std = 1 / np.sqrt(var + x.dtype.type(self.epsilon))
        x_hat = (x - self._per_channel(mean)) * self._per_channel(inv_std)
        y = x_hat
        if self.scale:
            y = y * self._per_channel(self.gamma.value)
        if self.center:
            y = y + self._per_channel(self.beta.value)
        return y, BatchNormalizationCache(x_hat, inv_std, batch_stats)

    def backward(self, cache, grad, need_input_grad=True):
        x_hat, inv_std, batch_stats = cache.x_hat, cache.inv_std, cache.batch_stats
        grads = {}
        if self.trainable:
            if self.scale:
                grads[self.gamma] = np.sum(grad * x_hat, axis=self._reduce_axes)
            if self.center:
                grads[self.beta] = np.sum(grad, axis=self._reduce_axes)
        if not need_input_grad:
            return None, grads
        d_xhat = grad * self._per_channel(self.gamma.value) if self.scale else grad
        if batch_stats:
            # x_hat depends on x through the batch mean and variance too:
            # dx = inv_std * (d_xhat - mean(d_xhat) - x_hat * mean(d_xhat * x_hat)).
            d_mean = d_xhat.mean(axis=self._reduce_axes, keepdims=True)
            d_var = (d_xhat * x_hat).mean(axis=self._reduce_axes, keepdims=True)
            dx = (d_xhat - d_mean - x_hat * d_var) * self._per_channel(inv_std)
        else:
            dx = d_xhat * self._per_channel(inv_std)
        return dx, grads

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale, "synchronized": self.synchronized,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer)}
