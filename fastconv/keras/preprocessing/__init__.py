"""Keras's ``keras.preprocessing``: the image augmentation of the lecture (fastconv.preprocessing)."""
from fastconv.keras.preprocessing import image

__all__ = ["image"]
