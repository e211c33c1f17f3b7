"""Regularizers, as ``keras.regularizers``: penalties on a weight (kernel, bias, gamma, beta) or
on a layer's output (``activity_regularizer``) that training adds to the loss.

Each regularizer gives its value ``reg(x)`` (Keras's formula, in x's dtype) and, because
fastconv.keras differentiates by hand, its gradient ``reg.gradient(x)``.  The trainer adds a
weight's penalty to the logged loss and its gradient to the weight's gradient; a layer's
activity penalty is ``reg(output) / batch size`` (as Keras divides it), its gradient joins the
gradient of the layer's output in the backward pass.

Identifiers as Keras 3 reads them: "l1", "l2", "l1l2", "orthogonal_regularizer" and the class
names (Keras rejects "l1_l2" as a string; ``l1_l2`` is the class alias).
"""
import math

import numpy as np

from fastconv.keras import backend

__all__ = ["L1", "L1L2", "L2", "OrthogonalRegularizer", "Regularizer", "deserialize", "get", "l1", "l1_l2", "l2",
           "orthogonal_regularizer", "serialize"]


def _factor(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isinf(value) or math.isnan(value) \
            or value < 0:
        raise ValueError(f"Invalid value for argument {name}: expected a non-negative float.Received: {name}={value}")
    return float(value)


class Regularizer:
    """Base class: ``__call__(x)`` -> the penalty (a float), ``gradient(x)`` -> d penalty / dx."""

    def __call__(self, x):
        return 0.0

    def gradient(self, x):
        return np.zeros_like(x)

    def get_config(self):
        raise NotImplementedError(f"{self} does not implement get_config()")

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class L1L2(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x^2)``; both factors default to 0."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor(0.0 if l1 is None else l1, "l1")
        self.l2 = _factor(0.0 if l2 is None else l2, "l2")

    def __call__(self, x):
        f = np.asarray(x).dtype.type
        value = f(0)
        if self.l1:
            value = value + f(self.l1) * np.sum(np.abs(x), dtype=f)
        if self.l2:
            value = value + f(self.l2) * np.sum(np.square(x), dtype=f)
        return float(value)

    def gradient(self, x):
        f = x.dtype.type
        grad = np.zeros_like(x)
        if self.l1:
            grad += f(self.l1) * np.sign(x)
        if self.l2:
            grad += f(2 * self.l2) * x
        return grad

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """``l1 * sum(|x|)`` (l1 defaults to 0.01); the gradient at 0 is 0 (sign(0))."""

    def __init__(self, l1=0.01):
        super().__init__(l1=0.01 if l1 is None else l1)

    def get_config(self):
        return {"l1": float(np.float32(self.l1))}


class L2(L1L2):
    """``l2 * sum(x^2)`` (l2 defaults to 0.01)."""

    def __init__(self, l2=0.01):
        super().__init__(l2=0.01 if l2 is None else l2)

    def get_config(self):
        return {"l2": self.l2}


class OrthogonalRegularizer(Regularizer):
    """``factor * 0.5 * sum(|N N^T - I|) / (n (n - 1) / 2)`` with N the L2-normalised rows of a 2-D
    x (``mode="rows"``) or of its transpose (``"columns"``): pushes the rows (columns) apart."""

    def __init__(self, factor=0.01, mode="rows"):
        self.factor = _factor(factor, "factor")
        if mode not in ("rows", "columns"):
            raise ValueError(f'Invalid value for argument `mode`. Expected one of {{"rows", "columns"}}. '
                             f"Received: mode={mode}")
        self.mode = mode

    def _parts(self, x):
        if x.ndim != 2:
            raise ValueError(f"Inputs to OrthogonalRegularizer must have rank 2. Received: inputs.shape={x.shape}")
        rows = x if self.mode == "rows" else x.T
        f = rows.dtype.type
        # Keras's normalize: x / sqrt(max(sum(x^2), 1e-12)).
        sq = np.sum(rows * rows, axis=1, keepdims=True)
        norm = np.sqrt(np.maximum(sq, f(1e-12)))
        n = rows / norm
        size = rows.shape[0]
        off_diagonal = n @ n.T * (1 - np.eye(size, dtype=rows.dtype))
        scale = f(self.factor * 0.5 / (size * (size - 1.0) / 2.0)) if size > 1 else f(0)
        return rows, sq, norm, n, off_diagonal, scale

    def __call__(self, x):
        x = np.asarray(x)
        *_, off_diagonal, scale = self._parts(x)
        return float(scale * np.sum(np.abs(off_diagonal)))

    def gradient(self, x):
        rows, sq, norm, n, off_diagonal, scale = self._parts(x)
        # d/dP of scale * sum|P| off the diagonal, P = N N^T (symmetric): dN = (G + G^T) N = 2 G N.
        g = scale * np.sign(off_diagonal)
        d_n = 2 * g @ n
        # Through n = r / |r| (where |r| is not floored): dr = (dn - n (n . dn)) / |r|.
        d_rows = np.where(sq > 1e-12, (d_n - n * np.sum(n * d_n, axis=1, keepdims=True)), d_n) / norm
        return d_rows if self.mode == "rows" else d_rows.T

    def get_config(self):
        return {"factor": float(np.float32(self.factor)), "mode": self.mode}


l1, l2, l1_l2, orthogonal_regularizer = L1, L2, L1L2, OrthogonalRegularizer

_CLASSES = {cls.__name__: cls for cls in (Regularizer, L1, L2, L1L2, OrthogonalRegularizer)}
_BY_NAME = {**_CLASSES, **{backend.to_snake_case(name): cls for name, cls in _CLASSES.items()}}


def get(identifier):
    """A regularizer from None, a name ('l1', 'l2', 'l1l2', 'L1L2'...), a config dict, a class or an
    instance.  A plain function cannot be one in fastconv.keras: it has no gradient."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        return deserialize(identifier)
    obj = _BY_NAME.get(identifier) if isinstance(identifier, str) else identifier
    if isinstance(obj, type) and issubclass(obj, Regularizer):
        obj = obj()
    if isinstance(obj, Regularizer):
        return obj
    if callable(obj):
        raise ValueError(f"Could not use {identifier!r} as a regularizer: fastconv.keras computes gradients by hand, "
                         "so a regularizer must be a fastconv.keras.regularizers.Regularizer with __call__(x) and "
                         "gradient(x) (the built-in L1, L2, L1L2, OrthogonalRegularizer are)")
    raise ValueError(f"Could not interpret regularizer identifier: {identifier}")


def serialize(regularizer):
    if regularizer is None:
        return None
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}


def deserialize(config, custom_objects=None):
    name = config.get("class_name")
    cls = (custom_objects or {}).get(name) or _CLASSES.get(name)
    if cls is None:
        raise ValueError(f"Unknown regularizer in a configuration: {config!r}")
    return cls.from_config(config.get("config", {}))
