"""Regularization layers: ``Dropout``."""
import numpy as np

from fastconv.keras import backend
from fastconv.keras.layers.base import Layer

__all__ = ["Dropout"]


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
