"""Regularization layers: ``Dropout``, ``SpatialDropout2D``, ``GaussianNoise``,
``GaussianDropout`` and ``AlphaDropout``.  As in Keras, each one acts only in training
(``training=True``, as ``fit`` calls it) and is the identity otherwise; its backward pass
multiplies by the same noise as its forward pass."""
import math
import numbers
from typing import NamedTuple

import numpy as np

from fastconv.keras import backend
from fastconv.keras.layers._arguments import standardize_data_format
from fastconv.keras.layers.base import InputSpec, Layer

__all__ = ["AlphaDropout", "Dropout", "GaussianDropout", "GaussianNoise", "SpatialDropout2D"]


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


class SpatialDropout2D(Dropout):
    """Dropout of whole feature maps: in training each channel of each image is zeroed with
    probability ``rate`` (the others scaled by 1 / (1 - rate)), which regularizes convolution
    outputs whose neighbouring pixels are strongly correlated."""

    def __init__(self, rate, data_format=None, seed=None, name=None, dtype=None):
        super().__init__(rate, seed=seed, name=name, dtype=dtype)
        self.data_format = standardize_data_format(data_format, f'SpatialDropout2D "{self.name}"')
        # One draw per image and channel, broadcast over height and width.
        self.noise_shape = (None, 1, 1, None) if self.data_format == "channels_last" else (None, None, 1, 1)
        self.input_spec = InputSpec(ndim=4)

    def get_config(self):
        # Keras's keys (its SpatialDropout2D takes neither trainable nor noise_shape).
        return {"rate": self.rate, "seed": self.seed, "name": self.name, "dtype": self.dtype,
                "data_format": self.data_format}


def _random_generator(layer):
    return layer._rng or backend.random_generator()


def _check_fraction(layer, argument, value, upper_inclusive):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and \
        0 <= value and (value <= 1 if upper_inclusive else value < 1)
    if not ok:
        bound = "1" if upper_inclusive else "1 (excluded)"
        raise ValueError(f'{type(layer).__name__} "{layer.name}": invalid value received for argument `{argument}`. '
                         f"Expected a float value between 0 and {bound}. Received: {argument}={value!r}")
    return float(value)


class GaussianNoise(Layer):
    """In training, adds zero-mean Gaussian noise of standard deviation ``stddev`` to each input."""

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.stddev = _check_fraction(self, "stddev", stddev, upper_inclusive=True)
        self.seed = seed
        self._rng = None if seed is None else np.random.default_rng(seed)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training=False):
        if training and self.stddev > 0:
            noise = _random_generator(self).standard_normal(x.shape, dtype=x.dtype) * x.dtype.type(self.stddev)
            x = x + noise
        return x, None

    def backward(self, cache, grad, need_input_grad=True):
        return grad, {}

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


class GaussianDropout(Layer):
    """In training, multiplies each input by Gaussian noise of mean 1 and standard deviation
    sqrt(rate / (1 - rate)) (the variance of an inverted dropout of that rate)."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = _check_fraction(self, "rate", rate, upper_inclusive=False)
        self.seed = seed
        self._rng = None if seed is None else np.random.default_rng(seed)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            return x, None
        stddev = math.sqrt(self.rate / (1 - self.rate))
        noise = 1 + _random_generator(self).standard_normal(x.shape, dtype=x.dtype) * x.dtype.type(stddev)
        return x * noise, noise

    def backward(self, noise, grad, need_input_grad=True):
        return (grad if noise is None else grad * noise), {}

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class AlphaDropoutCache(NamedTuple):
    kept: np.ndarray  # 1 where the input is kept, 0 where it is replaced
    scale: float      # the affine map's a


class AlphaDropout(Layer):
    """Dropout for SELU networks: in training the dropped inputs are set to SELU's negative
    saturation -scale * alpha, then an affine map a * x + b restores the mean and variance
    (Klambauer et al. 2017)."""

    _ALPHA = 1.6732632423543772848170429916717
    _SCALE = 1.0507009873554804934193349852946

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = _check_fraction(self, "rate", rate, upper_inclusive=False)
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
        kept = (_random_generator(self).random(shape, dtype=np.float32) >= self.rate).astype(x.dtype)
        saturation = -self._ALPHA * self._SCALE
        a = ((1 - self.rate) * (1 + self.rate * saturation ** 2)) ** -0.5
        b = -a * saturation * self.rate
        y = x.dtype.type(a) * (x * kept + x.dtype.type(saturation) * (1 - kept)) + x.dtype.type(b)
        return y, AlphaDropoutCache(kept, a)

    def backward(self, cache, grad, need_input_grad=True):
        if cache is None:
            return grad, {}
        return grad * (cache.kept * grad.dtype.type(cache.scale)), {}

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed,
                "noise_shape": None if self.noise_shape is None else list(self.noise_shape)}
