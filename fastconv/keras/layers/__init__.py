"""Layers, as ``keras.layers``: ``from fastconv.keras.layers import Conv2D, MaxPooling2D, Dense``."""
from fastconv.keras.layers.base import InputSpec, KerasTensor, Layer, Variable
from fastconv.keras.layers.convolutional import BaseConv, Conv2D
from fastconv.keras.layers.core import Activation, Dense, Dropout, Flatten, Input, InputLayer, ReLU
from fastconv.keras.layers.merging import Add
from fastconv.keras.layers.normalization import BatchNormalization
from fastconv.keras.layers.pooling import AveragePooling2D, BasePooling, GlobalAveragePooling2D, MaxPooling2D

# Keras's short names.
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D

LAYER_CLASSES = {cls.__name__: cls for cls in (
    Activation, Add, AveragePooling2D, BatchNormalization, Conv2D, Dense, Dropout, Flatten,
    GlobalAveragePooling2D, InputLayer, MaxPooling2D, ReLU)}


def serialize(layer):
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(config, custom_objects=None):
    """A layer from ``{"class_name": ..., "config": ...}``; models are found in fastconv.keras.models."""
    from fastconv.keras import models

    classes = {**LAYER_CLASSES, **models.MODEL_CLASSES, **(custom_objects or {})}
    cls = classes.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"Unknown layer class {config.get('class_name')!r} in a model configuration; pass "
                         "custom_objects={'Name': cls} for your own layers")
    if hasattr(cls, "_from_config_with_objects"):
        return cls._from_config_with_objects(config["config"], custom_objects)
    return cls.from_config(config["config"])


__all__ = [
    "Activation", "Add", "AveragePooling2D", "AvgPool2D", "BaseConv", "BasePooling", "BatchNormalization",
    "Conv2D", "Dense", "Dropout", "Flatten", "GlobalAveragePooling2D", "GlobalAvgPool2D", "Input", "InputLayer",
    "InputSpec", "KerasTensor", "Layer", "MaxPool2D", "MaxPooling2D", "ReLU", "Variable",
]
