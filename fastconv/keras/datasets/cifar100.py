"""CIFAR-100, as ``keras.datasets.cifar100``: 50,000 + 10,000 colour 32x32 images of 100 classes
in 20 superclasses."""
import os

import numpy as np

from fastconv.keras.datasets import _cifar
from fastconv.keras.file_utils import get_file

# Keras's source, hash and cache names (keras/src/datasets/cifar100.py).
ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
FILE_HASH = "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"
DIRNAME = "cifar-100-python-target"


def load_data(label_mode="fine"):
    """``(x_train, y_train), (x_test, y_test)``: uint8 images (50000, 32, 32, 3) and
    (10000, 32, 32, 3), labels (50000, 1) and (10000, 1): the 100 fine classes
    (``label_mode='fine'``) or the 20 coarse superclasses (``'coarse'``).  The labels are int64,
    as Keras returns them (its documentation says uint8; its code reshapes a list of ints)."""
    if label_mode not in ["fine", "coarse"]:
        raise ValueError(f'`label_mode` must be one of `"fine"`, `"coarse"`. Received: label_mode={label_mode}.')
    path = os.path.join(get_file(fname=DIRNAME, origin=ORIGIN, extract=True, file_hash=FILE_HASH),
                        "cifar-100-python")
    key = f"{label_mode}_labels"
    x_train, y_train = _cifar.to_arrays([_cifar.load_batch(os.path.join(path, "train"), key)], np.int64)
    x_test, y_test = _cifar.to_arrays([_cifar.load_batch(os.path.join(path, "test"), key)], np.int64)
    return (x_train, y_train), (x_test, y_test)
