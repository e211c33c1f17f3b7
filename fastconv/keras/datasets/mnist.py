"""MNIST, as ``keras.datasets.mnist``: 60,000 + 10,000 grey 28x28 digits."""
import numpy as np

from fastconv.keras.file_utils import get_file

# Keras's source and hash of the file (keras/src/datasets/mnist.py).
ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
FILE_HASH = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_data(path="mnist.npz"):
    """``(x_train, y_train), (x_test, y_test)``: uint8 images (60000, 28, 28) and (10000, 28, 28),
    uint8 labels 0-9 (60000,) and (10000,).  ``path`` is the file's name in Keras's cache
    (``~/.keras/datasets``)."""
    fpath = get_file(fname=path, origin=ORIGIN, file_hash=FILE_HASH)
    with np.load(fpath, allow_pickle=False) as f:
        missing = [k for k in KEYS if k not in f.files]
        if missing:
            raise ValueError(f"mnist.load_data: {fpath} holds no array(s) {missing}; it holds {f.files}")
        x_train, y_train, x_test, y_test = (f[k] for k in KEYS)
    return (x_train, y_train), (x_test, y_test)
