"""Layers, as ``keras.layers``: ``from fastconv.keras.layers import Conv2D, MaxPooling2D, Dense``.

One module per family, as Keras lays them out: core, convolutional, pooling, merging, reshaping,
normalization, activations, regularization, preprocessing.  Each module lists its public names
in ``__all__``; this package re-exports them all.  The built-in classes register themselves by
name (``Layer.__init_subclass__``) for deserialization, so that nothing here needs to import the
models.
"""
from fastconv.keras.layers import (
    activations,
    convolutional,
    core,
    merging,
    normalization,
    pooling,
    preprocessing,
    regularization,
    reshaping,
)
from fastconv.keras.layers.activations import *  # noqa: F401,F403
from fastconv.keras.layers.base import InputSpec, KerasTensor, Layer, Variable, builtin_classes
from fastconv.keras.layers.convolutional import *  # noqa: F401,F403
from fastconv.keras.layers.core import *  # noqa: F401,F403
from fastconv.keras.layers.merging import *  # noqa: F401,F403
from fastconv.keras.layers.normalization import *  # noqa: F401,F403
from fastconv.keras.layers.pooling import *  # noqa: F401,F403
from fastconv.keras.layers.preprocessing import *  # noqa: F401,F403
from fastconv.keras.layers.regularization import *  # noqa: F401,F403
from fastconv.keras.layers.reshaping import *  # noqa: F401,F403

_FAMILIES = (activations, convolutional, core, merging, normalization, pooling, preprocessing, regularization,
             reshaping)


def serialize(layer):
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(config, custom_objects=None):
    """A layer (or model) from ``{"class_name": ..., "config": ...}``."""
    classes = {**builtin_classes(), **(custom_objects or {})}
    cls = classes.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"Unknown layer class {config.get('class_name')!r} in a model configuration; pass "
                         "custom_objects={'Name': cls} for your own layers")
    if hasattr(cls, "_from_config_with_objects"):
        return cls._from_config_with_objects(config["config"], custom_objects)
    return cls.from_config(config["config"])


__all__ = sorted({"InputSpec", "KerasTensor", "Layer", "Variable", "deserialize", "serialize",
                  *(name for family in _FAMILIES for name in family.__all__)})
