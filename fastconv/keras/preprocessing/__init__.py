"""Keras's ``keras.preprocessing``: the image augmentation of the lecture (fastconv.preprocessing)
and ``image_dataset_from_directory`` (fastconv.keras.image_dataset)."""
from fastconv.keras.image_dataset import image_dataset_from_directory
from fastconv.keras.preprocessing import image

__all__ = ["image", "image_dataset_from_directory"]
