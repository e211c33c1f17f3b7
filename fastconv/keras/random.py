"""Random numbers, as ``keras.random``: ``normal``, ``uniform``, ``truncated_normal``, ``randint``,
``dropout``, ``shuffle``, ``categorical``, ``binomial``, ``gamma``, ``beta`` and ``SeedGenerator``.

The arguments, defaults and dtypes are Keras's (floating results in ``backend.floatx()`` unless
``dtype=`` says otherwise); the numbers come from NumPy's PCG64 generator, so they differ from
Keras's own draws, as the draws of Keras's backends differ from one another.  ``seed`` is what
Keras takes:

- ``None``: the global generator, which ``fastconv.keras.utils.set_random_seed`` seeds;
- an integer: the same numbers at every call (a fresh generator from that seed each time);
- a :class:`SeedGenerator`: its own stream, which advances with every draw (what a layer keeps
  for its ``call()``, e.g. ``keras.random.dropout(x, 0.5, seed=self.seed_generator)``).

In a layer's ``call()`` traced on symbolic tensors (see fastconv.keras.ops), ``dropout`` of a
tensor, and ``normal``/``uniform``/``truncated_normal`` of ``ops.shape(x)`` or of a shape whose
None is the batch size (``(ops.shape(z)[0], 32)``), become graph nodes that draw new numbers at
every run (every training step), with the gradient of dropout (the kept inputs' scale) and none
for the noise.
"""
import numpy as np

from fastconv.keras import backend
from fastconv.keras.layers.base import KerasTensor, Node, traced_call_inputs
from fastconv.keras.ops import Operation, SymbolicShape

__all__ = ["SeedGenerator", "beta", "binomial", "categorical", "dropout", "gamma", "normal", "randint", "shuffle",
           "truncated_normal", "uniform"]


class SeedGenerator:
    """A stream of random numbers of its own: ``SeedGenerator(1337)`` gives the same sequence of
    draws in every run; ``SeedGenerator()`` (seed None) takes its seed from the global generator,
    so that ``set_random_seed`` makes it repeat too."""

    def __init__(self, seed=None, name=None, **kwargs):
        if kwargs:
            raise ValueError(f"SeedGenerator: unrecognized keyword arguments: {sorted(kwargs)}")
        if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool)):
            raise ValueError(f"SeedGenerator: `seed` must be an integer or None. Received: seed={seed!r}")
        self.name = name or "seed_generator"
        self.seed = int(backend.random_generator().integers(2**31 - 1)) if seed is None else int(seed)
        self.generator = np.random.default_rng(self.seed)

    def next(self, ordered=True):
        """A new integer seed from the stream (for a NumPy generator of one's own)."""
        return int(self.generator.integers(2**31 - 1))

    def get_config(self):
        return {"seed": self.seed, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<SeedGenerator name={self.name!r} seed={self.seed}>"


def _generator(seed, fn):
    if seed is None:
        return backend.random_generator()
    if isinstance(seed, SeedGenerator):
        return seed.generator
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return np.random.default_rng(int(seed))
    raise ValueError(f"random.{fn}: `seed` must be None, an integer or a keras.random.SeedGenerator. "
                     f"Received: seed={seed!r}")


def _float_dtype(dtype, fn):
    dtype = np.dtype(backend.floatx() if dtype is None else dtype)
    if dtype.kind != "f":
        raise ValueError(f"random.{fn}: `dtype` must be a floating dtype (use random.randint for integers). "
                         f"Received: dtype={dtype}")
    return dtype


def _concrete_shape(shape, fn):
    try:
        dims = tuple(shape)
    except TypeError:
        dims = (shape,)
    for d in dims:
        if d is None:
            raise ValueError(f"random.{fn}: the shape {dims} has unknown sizes. In a layer's call(), pass "
                             "ops.shape(x) itself (the draws then take x's shape at every run)")
        if not isinstance(d, (int, np.integer)) or isinstance(d, bool) or d < 0:
            raise ValueError(f"random.{fn}: `shape` must be a tuple of non-negative integers. "
                             f"Received: shape={shape!r}")
    return tuple(int(d) for d in dims)


class _Noise(Operation):
    """Random numbers, new at every run, of the shape of the node's input (``shape`` None) or of
    ``shape`` with the input's batch size for its None; no gradient."""

    def compute(self, x):
        shape = self.params["shape"]
        return self.params["draw"](np.shape(x) if shape is None else
                                   tuple(np.shape(x)[0] if d is None else d for d in shape))

    def output_spec(self, specs):
        return (specs[0][0] if self.params["shape"] is None else self.params["shape"]), self.params["dtype"]


def _draw(fn, shape, dtype, draw):
    """``draw(concrete shape)`` now, or a graph node: for ``ops.shape(x)`` of a symbolic x, and,
    in a call() being traced, for a shape whose None is the batch size (``(ops.shape(z)[0], 32)``,
    as Keras's VAE example draws its noise: the only unknown size of a traced call's tensors is
    the batch of its inputs)."""
    if isinstance(shape, SymbolicShape) and any(d is None for d in shape):
        tensor, template = shape.tensor, None
    elif isinstance(shape, (tuple, list)) and any(d is None for d in shape) and traced_call_inputs():
        tensor, template = traced_call_inputs()[0], tuple(shape)
        _concrete_shape(tuple(1 if d is None else d for d in template), fn)      # the other sizes checked
    else:
        return draw(_concrete_shape(shape, fn))
    op = _Noise([tensor], draw=draw, dtype=np.dtype(dtype), shape=template)
    out = KerasTensor(tensor.shape if template is None else template, dtype)
    Node(op, [tensor], [out])
    return out


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Draws of a normal distribution."""
    dtype, rng = _float_dtype(dtype, "normal"), _generator(seed, "normal")
    return _draw("normal", shape, dtype, lambda s: rng.normal(mean, stddev, s).astype(dtype))


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    """Draws of the uniform distribution on [minval, maxval)."""
    dtype, rng = _float_dtype(dtype, "uniform"), _generator(seed, "uniform")
    return _draw("uniform", shape, dtype, lambda s: rng.uniform(minval, maxval, s).astype(dtype))


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Draws of a normal distribution, those more than two standard deviations from the mean
    dropped and drawn again (as Keras and TensorFlow)."""
    dtype, rng = _float_dtype(dtype, "truncated_normal"), _generator(seed, "truncated_normal")

    def draw(s):
        z = rng.standard_normal(s)
        outside = np.abs(z) > 2
        while outside.any():
            z[outside] = rng.standard_normal(int(outside.sum()))
            outside = np.abs(z) > 2
        return (mean + stddev * z).astype(dtype)
    return _draw("truncated_normal", shape, dtype, draw)


def randint(shape, minval, maxval, dtype="int32", seed=None):
    """Integers drawn uniformly from [minval, maxval)."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu":
        raise ValueError(f"random.randint: `dtype` must be an integer dtype. Received: dtype={dtype}")
    if not maxval > minval:
        raise ValueError(f"random.randint: `maxval` must be greater than `minval`. Received: minval={minval}, "
                         f"maxval={maxval}")
    rng = _generator(seed, "randint")
    return rng.integers(minval, maxval, _concrete_shape(shape, "randint")).astype(dtype)


class _Dropout(Operation):
    """Inverted dropout: kept inputs scaled by 1 / (1 - rate), a new mask at every run."""

    def _scale(self, x):
        rate, noise_shape = self.params["rate"], self.params["noise_shape"]
        shape = x.shape if noise_shape is None else tuple(
            x.shape[i] if d is None else d for i, d in enumerate(noise_shape))
        keep = self.params["generator"].random(shape) >= rate
        return keep.astype(x.dtype) * x.dtype.type(1 / (1 - rate))

    def compute(self, x):
        return x * self._scale(x)

    def forward(self, inputs, training=False):
        values = self._values(inputs)
        scale = self._scale(values[0])
        # The cache's second slot, the op's output for the other ops, holds the scale here:
        # all that the gradient needs.
        return values[0] * scale, (values, scale)

    def gradients(self, grad, scale, values, wanted):
        return [grad * scale]

    def output_spec(self, specs):
        return specs[0]


def dropout(inputs, rate, noise_shape=None, seed=None):
    """Zero each entry with probability ``rate``, scale the others by 1 / (1 - rate);
    ``noise_shape`` (None for the input's size on an axis) shares a draw along axes of 1."""
    if not isinstance(rate, (int, float, np.integer, np.floating)) or isinstance(rate, bool) or not 0 <= rate < 1:
        raise ValueError(f"random.dropout: `rate` must be a number in [0, 1). Received: rate={rate!r}")
    rng = _generator(seed, "dropout")
    if noise_shape is not None:
        noise_shape = tuple(noise_shape)
        if len(noise_shape) != len(inputs.shape):
            raise ValueError(f"random.dropout: `noise_shape` {noise_shape} must have the rank of the inputs "
                             f"(shape {tuple(inputs.shape)})")
    if isinstance(inputs, KerasTensor):
        op = _Dropout([inputs], rate=float(rate), noise_shape=noise_shape, generator=rng)
        out = KerasTensor(inputs.shape, inputs.dtype)
        Node(op, [inputs], [out])
        return out
    x = np.asarray(inputs)
    if x.dtype.kind != "f":
        x = x.astype(backend.floatx())
    op = _Dropout.__new__(_Dropout)
    op.params = dict(rate=float(rate), noise_shape=noise_shape, generator=rng)
    return op.compute(x)


def shuffle(x, axis=0, seed=None):
    """A copy of ``x`` with its entries along ``axis`` in a random order."""
    x = np.asarray(x)
    if not -x.ndim <= axis < max(x.ndim, 1):
        raise ValueError(f"random.shuffle: axis {axis} is out of bounds for an array of rank {x.ndim}")
    return _generator(seed, "shuffle").permuted(x, axis=axis) if x.ndim else x.copy()


def categorical(logits, num_samples, dtype="int32", seed=None):
    """``num_samples`` class indices per row of ``logits`` (batch, classes), drawn with the
    probabilities softmax(logits)."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise ValueError(f"random.categorical: `logits` should be a 2-D tensor with shape [batch_size, num_classes]. "
                         f"Received: logits.shape={logits.shape}")
    rng = _generator(seed, "categorical")
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    cumulative = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
    u = rng.random((logits.shape[0], int(num_samples)))
    picks = np.array([np.searchsorted(c, row, side="right") for c, row in zip(cumulative, u)]).reshape(u.shape)
    return np.minimum(picks, logits.shape[1] - 1).astype(dtype)


def binomial(shape, counts, probabilities, dtype=None, seed=None):
    """Successes in ``counts`` trials of probability ``probabilities`` (as floats)."""
    dtype = _float_dtype(dtype, "binomial")
    draws = _generator(seed, "binomial").binomial(counts, probabilities, _concrete_shape(shape, "binomial"))
    return draws.astype(dtype)


def gamma(shape, alpha, dtype=None, seed=None):
    """Draws of the gamma distribution of shape ``alpha`` (scale 1)."""
    dtype = _float_dtype(dtype, "gamma")
    return _generator(seed, "gamma").gamma(alpha, 1.0, _concrete_shape(shape, "gamma")).astype(dtype)


def beta(shape, alpha, beta, dtype=None, seed=None):
    """Draws of the beta distribution of parameters ``alpha`` and ``beta``."""
    dtype = _float_dtype(dtype, "beta")
    return _generator(seed, "beta").beta(alpha, beta, _concrete_shape(shape, "beta")).astype(dtype)
