"""CIFAR-10, as ``keras.datasets.cifar10``: 50,000 + 10,000 colour 32x32 images of 10 classes."""
import os

import numpy as np

from fastconv.keras.datasets import _cifar
from fastconv.keras.file_utils import get_file

# Keras's source, hash and cache names (keras/src/datasets/cifar10.py).
ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
FILE_HASH = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
DIRNAME = "cifar-10-batches-py-target"


def load_data():
    """``(x_train, y_train), (x_test, y_test)``: uint8 images (50000, 32, 32, 3) and
    (10000, 32, 32, 3), uint8 labels (50000, 1) and (10000, 1): airplane, automobile, bird, cat,
    deer, dog, frog, horse, ship, truck."""
    path = os.path.join(get_file(fname=DIRNAME, origin=ORIGIN, extract=True, file_hash=FILE_HASH),
                        "cifar-10-batches-py")
    x_train, y_train = _cifar.to_arrays([_cifar.load_batch(os.path.join(path, f"data_batch_{i}"))
                                         for i in range(1, 6)], np.uint8)
    x_test, y_test = _cifar.to_arrays([_cifar.load_batch(os.path.join(path, "test_batch"))], np.uint8)
    return (x_train, y_train), (x_test, y_test)
