"""Optimizers, as ``keras.optimizers``: SGD, Adam, AdamW, Nadam, Adamax, Adagrad, Adadelta,
RMSprop and Lion with Keras 3's arguments, defaults and update formulas, computed with NumPy in
the weights' dtype; learning-rate schedules in ``fastconv.keras.optimizers.schedules``.

``apply_gradients([(grad, variable), ...])`` (or ``apply(grads, variables)``) updates each
variable in place; the per-variable state (momentum, velocity...) is created at the first update
and kept by variable.  ``optimizer.learning_rate`` reads the current rate and can be assigned (as
callbacks do); ``optimizer.iterations`` counts the updates.
"""
from fastconv.keras.optimizers import schedules
from fastconv.keras.optimizers.algorithms import SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, Lion, Nadam, RMSprop
from fastconv.keras.optimizers.base import Optimizer

_CLASSES = {cls.__name__.lower(): cls for cls in (SGD, Adam, AdamW, Nadam, Adamax, Adagrad, Adadelta, RMSprop, Lion)}
# keras.optimizers names that fastconv.keras does not implement (refused by name, not "unknown").
_NOT_IMPLEMENTED = ("adafactor", "ftrl", "lamb", "muon", "lossscaleoptimizer", "multioptimizer",
                    "schedulefreeadamw")

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Nadam", "Adamax", "Adagrad", "Adadelta", "RMSprop", "Lion",
           "schedules", "get", "serialize", "deserialize"]


def get(identifier):
    """An optimizer from a name (``"adam"``, ``"nadam"``..., any case), a config dict or an
    instance (returned as is); ``None`` gives ``None``."""
    if identifier is None or isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        return deserialize({"class_name": identifier, "config": {}})
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}")


def serialize(optimizer):
    """The optimizer as Keras serializes it: ``{"module", "class_name", "config", "registered_name"}``."""
    return {"module": "keras.optimizers", "class_name": type(optimizer).__name__, "config": optimizer.get_config(),
            "registered_name": None}


def deserialize(config, custom_objects=None):
    name = config.get("class_name", "") if isinstance(config, dict) else ""
    cls = _CLASSES.get(name.lower())
    if cls is None:
        if name.lower() in _NOT_IMPLEMENTED:
            raise ValueError(f"Optimizer {name!r} of keras.optimizers is not implemented in fastconv.keras; it has "
                             f"{', '.join(c.__name__ for c in _CLASSES.values())}.")
        raise ValueError(f"Could not interpret optimizer identifier: {name or config!r}. fastconv.keras knows "
                         f"{', '.join(repr(k) for k in _CLASSES)} (or fastconv.keras.optimizers.Adam(...) etc.).")
    return cls.from_config(config.get("config", {}), custom_objects)
