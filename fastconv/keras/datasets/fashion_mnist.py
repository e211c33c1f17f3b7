"""Fashion-MNIST, as ``keras.datasets.fashion_mnist``: 60,000 + 10,000 grey 28x28 clothes."""
import gzip
import os

import numpy as np

from fastconv.keras.file_utils import get_file

# Keras's sources (keras/src/datasets/fashion_mnist.py; Keras checks no hash for these).
BASE = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
FILES = ("train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz")
CACHE_SUBDIR = os.path.join("datasets", "fashion-mnist")

_LABELS_MAGIC, _IMAGES_MAGIC = 0x00000801, 0x00000803  # IDX: unsigned bytes, 1 or 3 dimensions


def _read_idx(path, magic, ndim):
    """The uint8 array of a gzipped IDX file: a big-endian magic number, ``ndim`` sizes, the bytes."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    header = 4 * (1 + ndim)
    if len(data) < header or int.from_bytes(data[:4], "big") != magic:
        raise ValueError(f"fashion_mnist.load_data: {path} is not an IDX file of {ndim}-dimensional unsigned "
                         f"bytes (magic number {magic:#010x}); delete it to download it again")
    shape = tuple(int.from_bytes(data[4 * (1 + k):4 * (2 + k)], "big") for k in range(ndim))
    if len(data) != header + int(np.prod(shape)):
        raise ValueError(f"fashion_mnist.load_data: {path} announces shape {shape} but holds "
                         f"{len(data) - header} bytes of data; delete it to download it again")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def load_data():
    """``(x_train, y_train), (x_test, y_test)``: uint8 images (60000, 28, 28) and (10000, 28, 28),
    uint8 labels 0-9 (T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag,
    Ankle boot)."""
    paths = [get_file(fname, origin=BASE + fname, cache_subdir=CACHE_SUBDIR) for fname in FILES]
    y_train = _read_idx(paths[0], _LABELS_MAGIC, 1)
    x_train = _read_idx(paths[1], _IMAGES_MAGIC, 3)
    y_test = _read_idx(paths[2], _LABELS_MAGIC, 1)
    x_test = _read_idx(paths[3], _IMAGES_MAGIC, 3)
    for x, y, part in ((x_train, y_train, "train"), (x_test, y_test, "t10k")):
        if len(x) != len(y):
            raise ValueError(f"fashion_mnist.load_data: the {part} files hold {len(x)} images and {len(y)} labels")
    return (x_train, y_train), (x_test, y_test)
