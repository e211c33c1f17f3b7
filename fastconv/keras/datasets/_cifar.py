"""Reading CIFAR's Python batches without running code from the file.

Each batch of ``cifar-10-batches-py`` / ``cifar-100-python`` is a pickled dict (written by Python
2, hence byte-string keys)::

    {b"data": uint8 array (n, 3072), b"labels" or b"fine_labels"/b"coarse_labels": [int] * n,
     b"batch_label": bytes, b"filenames": [bytes] * n}

``pickle.load`` on a downloaded file would run whatever the file asks for.  :class:`SafeUnpickler`
builds only what such a file needs: dicts, lists, tuples, bytes, str, ints and floats (the
pickle opcodes themselves, which import nothing) and NumPy arrays through
``numpy.core.multiarray._reconstruct`` of a plain ``ndarray`` with a numeric dtype.  Any other
global (``os.system``, ``builtins.eval``, an object array...) is refused with an error that
names it and the file.
"""
import pickle

import numpy as np

# Numeric dtypes a CIFAR batch may hold (the images are 'u1'; labels are plain ints).
_NUMERIC_DTYPES = frozenset("b1 i1 u1 i2 u2 i4 u4 i8 u8 f4 f8".split())


def _reconstruct(cls, shape, typecode):
    if cls is not np.ndarray:
        raise pickle.UnpicklingError(f"refusing to build an array of class {cls!r} (only numpy.ndarray)")
    return np.ndarray.__new__(np.ndarray, shape, typecode)


def _dtype(spec, align=False, copy=True):
    if not isinstance(spec, (str, bytes)) or (spec.decode("latin1") if isinstance(spec, bytes) else spec) \
            not in _NUMERIC_DTYPES:
        raise pickle.UnpicklingError(f"refusing dtype {spec!r} (only numeric dtypes: {sorted(_NUMERIC_DTYPES)})")
    return np.dtype(spec if isinstance(spec, str) else spec.decode("latin1"), align, copy)


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,   # NumPy 1 pickles (CIFAR's files)
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # NumPy 2 pickles
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
}


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that imports nothing but the builders of numeric NumPy arrays."""

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load `{module}.{name}`: a CIFAR batch holds only dicts, lists, bytes, ints and "
                "numeric NumPy arrays (the file may be corrupted or malicious)") from None


def load_batch(fpath, label_key="labels"):
    """``(data, labels)`` of one batch file: uint8 (n, 3, 32, 32) and a list of n ints, as Keras's
    ``keras.src.datasets.cifar.load_batch``."""
    try:
        with open(fpath, "rb") as f:
            d = SafeUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise ValueError(f"cifar: cannot read {fpath}: {exc}") from None
    if not isinstance(d, dict):
        raise ValueError(f"cifar: {fpath} holds a {type(d).__name__}, not the dict of a CIFAR batch")
    d = {k.decode("utf8") if isinstance(k, bytes) else k: v for k, v in d.items()}
    if "data" not in d or label_key not in d:
        raise ValueError(f"cifar: {fpath} has no {'data' if 'data' not in d else label_key!r} entry; "
                         f"its keys are {sorted(d)}")
    data, labels = d["data"], d[label_key]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"cifar: the data of {fpath} must be a uint8 array (n, 3072); received "
                         f"{type(data).__name__} {getattr(data, 'dtype', '')} {getattr(data, 'shape', '')}")
    if not isinstance(labels, list) or len(labels) != len(data) or \
            not all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
        raise ValueError(f"cifar: {label_key!r} of {fpath} must be a list of {len(data)} ints")
    return data.reshape(len(data), 3, 32, 32), labels


def to_arrays(batches, label_dtype):
    """The batches concatenated: uint8 images (n, 32, 32, 3) channels last and labels (n, 1)."""
    x = np.concatenate([data for data, _ in batches]).transpose(0, 2, 3, 1)
    y = np.array([label for _, labels in batches for label in labels], dtype=label_dtype).reshape(-1, 1)
    return x, y
