"""Normalization layers: ``BatchNormalization``, in training mode (batch statistics) and
inference mode (moving ones); ``LayerNormalization`` and ``GroupNormalization`` (statistics of
each sample, over its features or over groups of its channels); ``UnitNormalization`` (unit L2
norm)."""
import warnings
from typing import NamedTuple, Optional

import numpy as np

from fastconv.keras import constraints, initializers, regularizers
from fastconv.keras.layers.base import InputSpec, Layer

__all__ = ["BatchNormalization", "GroupNormalization", "LayerNormalization", "UnitNormalization"]


def _standardized_grad(d_xhat, x_hat, inv_std, axes):
    """The gradient of x from that of x_hat = (x - mean) * inv_std, mean and variance taken over
    ``axes`` (biased): x_hat depends on x through the statistics too, which gives
    dx = inv_std * (d_xhat - mean(d_xhat) - x_hat * mean(d_xhat * x_hat))."""
    d_mean = d_xhat.mean(axis=axes, keepdims=True)
    d_var = (d_xhat * x_hat).mean(axis=axes, keepdims=True)
    return (d_xhat - d_mean - x_hat * d_var) * inv_std


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
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
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
        self.gamma = self.add_weight(shape, self.gamma_initializer, "gamma", regularizer=self.gamma_regularizer,
                                     constraint=self.gamma_constraint) if self.scale else None
        self.beta = self.add_weight(shape, self.beta_initializer, "beta", regularizer=self.beta_regularizer,
                                    constraint=self.beta_constraint) if self.center else None
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

    def _channel_sum_of_products(self, a, b):
        """sum(a * b) over every axis but the channels', without a temporary of a's size (einsum
        reduces the products as it goes: 6 ms against 17 for 16x56x56x256 float32)."""
        letters = "abcdefghijklmnopqrstuvwxyz"[:a.ndim]
        return np.einsum(f"{letters},{letters}->{letters[self.axis % a.ndim]}", a, b)

    def forward(self, x, training=False):
        # In place where NumPy allows, into two arrays of x's size (x_hat, kept for the gradient,
        # and y): each fresh array costs its page faults, and the step by step expressions made
        # six (ResNet50's training step at 112x112, batch 16: BatchNormalization's forward 0.24 s).
        batch_stats = bool(training) and self.trainable
        if batch_stats:
            mean = x.mean(axis=self._reduce_axes)
        else:
            mean, var = self.moving_mean.value, self.moving_variance.value
        x_hat = np.subtract(x, self._per_channel(mean))
        if batch_stats:   # the biased variance, as np.var: the mean of the centred squares
            var = (self._channel_sum_of_products(x_hat, x_hat) / (x.size // mean.size)).astype(mean.dtype, copy=False)
            m = x.dtype.type(self.momentum)
            self.moving_mean.assign(self.moving_mean.value * m + mean * (1 - m))
            self.moving_variance.assign(self.moving_variance.value * m + var * (1 - m))
        inv_std = 1 / np.sqrt(var + x.dtype.type(self.epsilon))
        x_hat *= self._per_channel(inv_std.astype(x_hat.dtype, copy=False))
        y = x_hat
        if self.scale:
            y = np.multiply(x_hat, self._per_channel(self.gamma.value))
        if self.center:
            y = np.add(y, self._per_channel(self.beta.value), out=y if y is not x_hat else None)
        return y, BatchNormalizationCache(x_hat, inv_std, batch_stats)

    def backward(self, cache, grad, need_input_grad=True):
        """With g the output's gradient, s = inv_std and n the values per channel:
        d gamma = sum(g x_hat), d beta = sum(g), and (batch statistics; see _standardized_grad)
        dx = s gamma (g - sum(g) / n - x_hat sum(g x_hat) / n): the two sums serve both, and dx
        is two arrays of x's size where the step by step form made seven."""
        x_hat, inv_std, batch_stats = cache.x_hat, cache.inv_std, cache.batch_stats
        grads = {}
        need_sums = need_input_grad and batch_stats
        sum_g = np.sum(grad, axis=self._reduce_axes) if need_sums or (self.trainable and self.center) else None
        sum_gx = self._channel_sum_of_products(grad, x_hat) if need_sums or (self.trainable and self.scale) \
            else None
        if self.trainable:
            if self.scale:
                grads[self.gamma] = sum_gx
            if self.center:
                grads[self.beta] = sum_g
        if not need_input_grad:
            return None, grads
        coef = inv_std * self.gamma.value if self.scale else inv_std      # s gamma per channel
        dx = np.multiply(grad, self._per_channel(coef.astype(grad.dtype, copy=False)))
        if batch_stats:
            n = grad.size // coef.size
            dx -= np.multiply(x_hat, self._per_channel((coef * sum_gx / n).astype(grad.dtype, copy=False)))
            dx -= self._per_channel((coef * sum_g / n).astype(grad.dtype, copy=False))
        return dx, grads

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale, "synchronized": self.synchronized,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": constraints.serialize(self.beta_constraint),
                "gamma_constraint": constraints.serialize(self.gamma_constraint)}


def _check_axes(layer, axes, input_shape):
    rank = len(input_shape)
    for axis in axes:
        if not -rank <= axis < rank:
            raise ValueError(f'{type(layer).__name__} "{layer.name}": axis {axis} is out of bounds for input shape '
                             f"{tuple(input_shape)}. Received: axis={layer.axis}")
    return sorted(axis % rank for axis in axes)


def _int_or_ints(layer, axis):
    if isinstance(axis, (list, tuple)) and axis and \
            all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axis):
        return [int(a) for a in axis]
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
        return int(axis)
    raise TypeError(f'{type(layer).__name__} "{layer.name}": expected an int or a list/tuple of ints for the '
                    f"argument 'axis', but received: {axis!r}")


class LayerNormalizationCache(NamedTuple):
    normalized: np.ndarray        # what gamma multiplies: x_hat, or x * inv_std with rms_scaling
    x_hat: np.ndarray             # (x - mean) * inv_std
    inv_std: np.ndarray           # 1 / sqrt(var + epsilon) per sample (kept dims)


class LayerNormalization(Layer):
    """``gamma * (x - mean) / sqrt(var + epsilon) + beta`` with the mean and (biased) variance of
    each sample over ``axis`` (default: the last), in training and inference alike; gamma and
    beta have the shape of those axes.  Defaults as Keras 3: epsilon 1e-3.

    ``rms_scaling=True`` (deprecated in Keras 3, with the same warning) computes
    ``gamma * x / sqrt(var + epsilon)`` without beta, as Keras does.
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, **kwargs):
        rms_scaling = bool(kwargs.pop("rms_scaling", False))
        if rms_scaling:
            warnings.warn("You passed `rms_scaling=True`, which is deprecated. This argument incorrectly scales the "
                          "input by the variance, not the root mean square. To correctly use RMS Normalization, "
                          "please use `keras.layers.RMSNormalization` instead.", stacklevel=2)
        super().__init__(**kwargs)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.axis = _int_or_ints(self, axis)
        self.epsilon = _positive_epsilon(self, epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.rms_scaling = rms_scaling
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)

    def build(self, input_shape):
        axes = _check_axes(self, self.axis if isinstance(self.axis, list) else [self.axis], input_shape)
        if 0 in axes:
            raise ValueError(f'LayerNormalization "{self.name}": axis={self.axis} includes the batch axis of the input '
                             f"of shape {tuple(input_shape)}")
        shape = tuple(input_shape[a] for a in axes)
        if None in shape:
            raise ValueError(f'LayerNormalization "{self.name}": the normalized axes {axes} must have known sizes; '
                             f"received input shape {tuple(input_shape)}")
        # As Keras: after build, axis is the sorted list of the normalized axes.
        self.axis = sorted(self.axis) if isinstance(self.axis, list) else [self.axis]
        self.gamma = self.add_weight(shape, self.gamma_initializer, "gamma", regularizer=self.gamma_regularizer,
                                     constraint=self.gamma_constraint) if self.scale or self.rms_scaling else None
        self.beta = self.add_weight(shape, self.beta_initializer, "beta", regularizer=self.beta_regularizer,
                                    constraint=self.beta_constraint) if self.center and not self.rms_scaling else None
        self._axes = tuple(axes)
        self._weight_axes = tuple(i for i in range(len(input_shape)) if i not in axes)
        self._broadcast = tuple(input_shape[i] if i in axes else 1 for i in range(len(input_shape)))
        self.input_spec = InputSpec(ndim=len(input_shape), axes={a: input_shape[a] for a in axes})
        self.built = True

    def compute_output_shape(self, input_shape):
        _check_axes(self, self.axis if isinstance(self.axis, list) else [self.axis], input_shape)
        return tuple(input_shape)

    def forward(self, x, training=False):
        mean = x.mean(axis=self._axes, keepdims=True)
        var = x.var(axis=self._axes, keepdims=True)
        inv_std = 1 / np.sqrt(var + x.dtype.type(self.epsilon))
        x_hat = (x - mean) * inv_std
        normalized = x * inv_std if self.rms_scaling else x_hat
        y = normalized
        if self.gamma is not None:
            y = y * self.gamma.value.reshape(self._broadcast)
        if self.beta is not None:
            y = y + self.beta.value.reshape(self._broadcast)
        return y, LayerNormalizationCache(normalized, x_hat, inv_std)

    def backward(self, cache, grad, need_input_grad=True):
        grads = {}
        if self.trainable:
            if self.gamma is not None:
                grads[self.gamma] = np.sum(grad * cache.normalized, axis=self._weight_axes).reshape(self.gamma.shape)
            if self.beta is not None:
                grads[self.beta] = np.sum(grad, axis=self._weight_axes).reshape(self.beta.shape)
        if not need_input_grad:
            return None, grads
        d_norm = grad * self.gamma.value.reshape(self._broadcast) if self.gamma is not None else grad
        if self.rms_scaling:
            # y = x * inv_std with inv_std = (var + eps)^-1/2: d inv_std / dx = -inv_std^3 (x - mean) / n.
            x = cache.normalized / cache.inv_std
            d_inv = np.mean(d_norm * x, axis=self._axes, keepdims=True)
            return cache.inv_std * (d_norm - cache.x_hat * cache.inv_std * d_inv), grads
        return _standardized_grad(d_norm, cache.x_hat, cache.inv_std, self._axes), grads

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale, "rms_scaling": self.rms_scaling,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": constraints.serialize(self.beta_constraint),
                "gamma_constraint": constraints.serialize(self.gamma_constraint)}


def _positive_epsilon(layer, epsilon):
    if not isinstance(epsilon, (int, float, np.floating, np.integer)) or isinstance(epsilon, bool) or epsilon <= 0:
        raise ValueError(f'{type(layer).__name__} "{layer.name}": epsilon must be a positive number. '
                         f"Received: epsilon={epsilon!r}")
    return float(epsilon)


class GroupNormalizationCache(NamedTuple):
    x_hat: np.ndarray       # standardized, in the grouped shape (..., groups, channels per group, ...)
    inv_std: np.ndarray


class GroupNormalization(Layer):
    """Splits the channels (``axis``) into ``groups`` and standardizes each sample over each
    group (its channels and all the other axes), then ``gamma * x_hat + beta`` per channel
    (Wu & He 2018).  ``groups=-1`` gives one group per channel (instance normalization); one
    group is layer normalization over the whole sample."""

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or (groups <= 0 and groups != -1):
            raise ValueError(f'GroupNormalization "{self.name}": received an invalid value for argument `groups`, '
                             "expected a positive integer (or `-1` for instance normalization). "
                             f"Received: groups={groups!r}")
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
            raise TypeError(f'GroupNormalization "{self.name}": axis must be an int. Received: axis={axis!r}')
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.groups = int(groups)
        self.axis = int(axis)
        self.epsilon = _positive_epsilon(self, epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)

    def build(self, input_shape):
        rank = len(input_shape)
        (axis,) = _check_axes(self, [self.axis], input_shape)
        if axis == 0:
            raise ValueError(f'GroupNormalization "{self.name}": axis={self.axis} is the batch axis of the input of '
                             f"shape {tuple(input_shape)}")
        dim = input_shape[axis]
        if dim is None:
            raise ValueError(f'GroupNormalization "{self.name}": axis {self.axis} of input tensor should have a '
                             f"defined dimension but the layer received an input with shape {tuple(input_shape)}.")
        if self.groups == -1:
            self.groups = dim
        if dim < self.groups:
            raise ValueError(f'GroupNormalization "{self.name}": number of groups ({self.groups}) cannot be more than '
                             f"the number of channels ({dim}).")
        if dim % self.groups:
            raise ValueError(f'GroupNormalization "{self.name}": number of groups ({self.groups}) must divide the '
                             f"number of channels ({dim}).")
        self.gamma = self.add_weight((dim,), self.gamma_initializer, "gamma", regularizer=self.gamma_regularizer,
                                     constraint=self.gamma_constraint) if self.scale else None
        self.beta = self.add_weight((dim,), self.beta_initializer, "beta", regularizer=self.beta_regularizer,
                                    constraint=self.beta_constraint) if self.center else None
        self._channel_axis = axis
        # In the grouped shape, axis -> (groups, dim // groups): statistics over every axis but
        # the batch and the group; the weights broadcast over every axis but those two.
        self._stat_axes = tuple(i for i in range(1, rank + 1) if i != axis)
        self._weight_axes = tuple(i for i in range(rank + 1) if i not in (axis, axis + 1))
        self._broadcast = tuple(self.groups if i == axis else dim // self.groups if i == axis + 1 else 1
                                for i in range(rank + 1))
        self.input_spec = InputSpec(ndim=rank, axes={axis: dim})
        self.built = True

    def compute_output_shape(self, input_shape):
        _check_axes(self, [self.axis], input_shape)
        return tuple(input_shape)

    def _grouped(self, x):
        a = self._channel_axis
        return x.reshape(x.shape[:a] + (self.groups, x.shape[a] // self.groups) + x.shape[a + 1:])

    def forward(self, x, training=False):
        xg = self._grouped(x)
        mean = xg.mean(axis=self._stat_axes, keepdims=True)
        inv_std = 1 / np.sqrt(xg.var(axis=self._stat_axes, keepdims=True) + x.dtype.type(self.epsilon))
        x_hat = (xg - mean) * inv_std
        y = x_hat
        if self.gamma is not None:
            y = y * self.gamma.value.reshape(self._broadcast)
        if self.beta is not None:
            y = y + self.beta.value.reshape(self._broadcast)
        return y.reshape(x.shape), GroupNormalizationCache(x_hat, inv_std)

    def backward(self, cache, grad, need_input_grad=True):
        g = self._grouped(grad)
        grads = {}
        if self.trainable:
            if self.gamma is not None:
                grads[self.gamma] = np.sum(g * cache.x_hat, axis=self._weight_axes).reshape(-1)
            if self.beta is not None:
                grads[self.beta] = np.sum(g, axis=self._weight_axes).reshape(-1)
        if not need_input_grad:
            return None, grads
        d_xhat = g * self.gamma.value.reshape(self._broadcast) if self.gamma is not None else g
        return _standardized_grad(d_xhat, cache.x_hat, cache.inv_std, self._stat_axes).reshape(grad.shape), grads

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "axis": self.axis, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": constraints.serialize(self.beta_constraint),
                "gamma_constraint": constraints.serialize(self.gamma_constraint)}


class UnitNormalizationCache(NamedTuple):
    y: np.ndarray
    inv_norm: np.ndarray
    clamped: Optional[np.ndarray]  # where 1 / norm was capped at 1e12 (a zero vector)


class UnitNormalization(Layer):
    """Scales each sample to unit L2 norm over ``axis``: ``x * min(1 / ||x||, 1e12)`` (Keras's
    L2 normalization; a zero vector stays zero)."""

    _MAX_INV_NORM = 1e12

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = _int_or_ints(self, axis)

    def build(self, input_shape):
        self._axes = tuple(_check_axes(self, self.axis if isinstance(self.axis, list) else [self.axis], input_shape))
        self.built = True

    def compute_output_shape(self, input_shape):
        _check_axes(self, self.axis if isinstance(self.axis, list) else [self.axis], input_shape)
        return tuple(input_shape)

    def forward(self, x, training=False):
        with np.errstate(divide="ignore"):
            raw = 1 / np.sqrt(np.sum(x * x, axis=self._axes, keepdims=True))
        clamped = raw > self._MAX_INV_NORM
        inv_norm = np.minimum(raw, x.dtype.type(self._MAX_INV_NORM))
        y = x * inv_norm
        return y, UnitNormalizationCache(y, inv_norm, clamped if clamped.any() else None)

    def backward(self, cache, grad, need_input_grad=True):
        # y = x / ||x||: dx = (dy - y * sum(dy * y)) / ||x||; where the cap holds, y = 1e12 x.
        dx = (grad - cache.y * np.sum(grad * cache.y, axis=self._axes, keepdims=True)) * cache.inv_norm
        if cache.clamped is not None:
            dx = np.where(cache.clamped, grad * cache.inv_norm, dx)
        return dx, {}

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
