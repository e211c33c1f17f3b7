"""``keras.applications.resnet50``: ResNet50 and its preprocessing (see ``resnet``)."""
from fastconv.keras.applications.resnet import ResNet50, decode_predictions, preprocess_input  # noqa: F401

__all__ = ["ResNet50", "decode_predictions", "preprocess_input"]
