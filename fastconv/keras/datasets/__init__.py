"""Keras's ``keras.datasets``: ``mnist``, ``fashion_mnist``, ``cifar10`` and ``cifar100``.

``load_data()`` downloads from Keras's URLs through :func:`fastconv.keras.utils.get_file` into
Keras's cache (``~/.keras/datasets``: files Keras downloaded are reused, and the other way
round), checks Keras's file hashes, and returns the arrays Keras returns (same shapes, dtypes and
order).  The files are read without running code: ``np.load(allow_pickle=False)``, the IDX format
parsed by hand, CIFAR's pickles through an unpickler that builds only dicts, lists, bytes, ints
and numeric NumPy arrays.
"""
from fastconv.keras.datasets import cifar10, cifar100, fashion_mnist, mnist

__all__ = ["cifar10", "cifar100", "fashion_mnist", "mnist"]
