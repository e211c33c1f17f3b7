"""Constraints, as ``keras.constraints``: projections applied to a weight after every optimizer
update (as Keras's optimizer applies them), e.g. ``Dense(64, kernel_constraint=MaxNorm(3))``.

``MaxNorm``, ``MinMaxNorm`` and ``UnitNorm`` rescale slices of the weight along ``axis``
(default 0: for a Dense kernel (in, out), each output unit's incoming weights; for a Conv2D
kernel pass ``axis=[0, 1, 2]``); ``NonNeg`` clips at 0.  Any function ``w -> w`` works as a
constraint too.
"""
import numpy as np

from fastconv.keras import backend

__all__ = ["Constraint", "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm", "deserialize", "get", "max_norm",
           "min_max_norm", "non_neg", "serialize", "unit_norm"]


class Constraint:
    """Base class: ``__call__(w)`` returns the projected weight (here: unchanged)."""

    def __call__(self, w):
        return w

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _axis(axis):
    return tuple(axis) if isinstance(axis, (list, tuple)) else axis


def _norms(w, axis):
    return np.sqrt(np.sum(np.square(w), axis=_axis(axis), keepdims=True))


class MaxNorm(Constraint):
    """Slices along ``axis`` with an L2 norm above ``max_value`` are scaled down to it."""

    def __init__(self, max_value=2, axis=0):
        self.max_value, self.axis = max_value, axis

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = np.clip(norms, 0, self.max_value)
        return w * (desired / (w.dtype.type(backend.epsilon()) + norms))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Negative entries become 0."""

    def __call__(self, w):
        return np.maximum(w, 0)


class UnitNorm(Constraint):
    """Slices along ``axis`` are scaled to norm 1."""

    def __init__(self, axis=0):
        self.axis = axis

    def __call__(self, w):
        return w / (w.dtype.type(backend.epsilon()) + _norms(w, self.axis))

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Slice norms moved into [min_value, max_value] (by a fraction ``rate`` of the way)."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value, self.max_value, self.rate, self.axis = min_value, max_value, rate, axis

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = self.rate * np.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        return w * (desired / (w.dtype.type(backend.epsilon()) + norms)).astype(w.dtype)

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate, "axis": self.axis}


max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm

_CLASSES = {cls.__name__: cls for cls in (Constraint, MaxNorm, MinMaxNorm, NonNeg, UnitNorm)}
_BY_NAME = {**_CLASSES, **{backend.to_snake_case(name): cls for name, cls in _CLASSES.items()}}


def get(identifier):
    """A constraint from None, a name ('max_norm', 'non_neg', 'unit_norm', 'min_max_norm' or the
    class names), a config dict, a class, an instance or any function w -> w."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        return deserialize(identifier)
    obj = _BY_NAME.get(identifier) if isinstance(identifier, str) else identifier
    if isinstance(obj, type):
        obj = obj()
    if callable(obj):
        return obj
    raise ValueError(f"Could not interpret constraint identifier: {identifier}")


def serialize(constraint):
    if constraint is None:
        return None
    if not isinstance(constraint, Constraint):
        raise ValueError(f"Cannot serialize the constraint {constraint!r}: only fastconv.keras.constraints objects "
                         "can be saved in a model's configuration")
    return {"class_name": type(constraint).__name__, "config": constraint.get_config()}


def deserialize(config, custom_objects=None):
    name = config.get("class_name")
    cls = (custom_objects or {}).get(name) or _CLASSES.get(name)
    if cls is None:
        raise ValueError(f"Unknown constraint in a configuration: {config!r}")
    return cls.from_config(config.get("config", {}))
