"""How fit, evaluate and predict read their data: arrays cut into batches, or an object that
delivers batches (Keras's Sequence / PyDataset protocol: ``__len__`` and ``__getitem__``)."""
import math

import numpy as np

from fastconv.keras import backend


def is_batch_source(x):
    """An object that delivers batches: ``len(x)`` batches, ``x[i]`` -> (x_batch, y_batch)."""
    return (hasattr(x, "__len__") and hasattr(x, "__getitem__")
            and not isinstance(x, (np.ndarray, list, tuple, dict, str)) and not hasattr(x, "__array__"))


def as_input_array(x, fn, dtype):
    """The model's input as an array of the model's dtype (float32), copied only when needed."""
    if x is None:
        raise ValueError(f"{fn}: x is required")
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{fn}: x must hold numbers; received dtype {arr.dtype} with shape {arr.shape}")
    if arr.ndim == 0:
        raise ValueError(f"{fn}: x must be an array with a batch axis; received a scalar")
    return arr.astype(dtype, copy=False)


def as_target_array(y, fn):
    arr = np.asarray(y)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{fn}: y must hold numbers; received dtype {arr.dtype} with shape {arr.shape}")
    if arr.ndim == 0:
        raise ValueError(f"{fn}: y must have one entry per sample; received a scalar")
    return arr


def check_same_length(x, y, fn):
    if len(x) != len(y):
        raise ValueError(f"{fn}: x and y must have the same number of samples (data cardinality is ambiguous): "
                         f"received x with {len(x)} samples (shape {x.shape}) and y with {len(y)} (shape {y.shape})")


def validation_split_arrays(x, y, validation_split, fn):
    """(train x, train y), (validation x, validation y): the validation part is the LAST
    ``validation_split`` fraction of the samples, taken before any shuffling, as Keras does."""
    if not 0 < validation_split < 1:
        raise ValueError(f"{fn}: validation_split must be in (0, 1). Received: validation_split={validation_split}")
    n = len(x)
    split_at = int(math.floor(n * (1.0 - validation_split)))
    if split_at == 0 or split_at == n:
        raise ValueError(f"{fn}: training data contains {n} samples, which is not sufficient to split it into a "
                         f"validation and training set as specified by validation_split={validation_split}")
    return (x[:split_at], y[:split_at]), (x[split_at:], y[split_at:])


class ArrayBatches:
    """Batches of ``batch_size`` samples of arrays (the last one smaller), reshuffled at every
    epoch when ``shuffle``.  ``x`` is an array or a list of arrays (a model with several inputs),
    cut at the same places."""

    def __init__(self, x, y=None, batch_size=32, shuffle=False, steps=None):
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer. Received: batch_size={batch_size!r}")
        self.x, self.y = x, y
        self.n = len(x[0] if isinstance(x, list) else x)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.n_batches = math.ceil(self.n / self.batch_size)
        if steps is not None:
            self.n_batches = min(self.n_batches, int(steps))

    def __len__(self):
        return self.n_batches

    def batches(self):
        order = backend.random_generator().permutation(self.n) if self.shuffle else None
        for b in range(self.n_batches):
            lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, self.n)
            if order is None:
                sel = slice(lo, hi)
            else:
                # Sorted indices read the array in memory order (the batch's content is the same set).
                sel = np.sort(order[lo:hi])
            xb = [a[sel] for a in self.x] if isinstance(self.x, list) else self.x[sel]
            yield xb, (None if self.y is None else self.y[sel])

    def on_epoch_end(self):
        pass


class SourceBatches:
    """Batches delivered by a Sequence-like object (``len``, ``[i]``, optional ``on_epoch_end``)."""

    def __init__(self, source, fn, dtype, steps=None):
        self.source, self.fn, self.dtype = source, fn, dtype
        self.n_batches = len(source) if steps is None else min(len(source), int(steps))
        if self.n_batches < 1:
            raise ValueError(f"{fn}: the data object {type(source).__name__} delivers no batch (len() = {len(source)})")

    def __len__(self):
        return self.n_batches

    def batches(self):
        for i in range(self.n_batches):
            item = self.source[i]
            if isinstance(item, tuple) and len(item) in (2, 3):
                if len(item) == 3 and item[2] is not None:
                    raise ValueError(f"{self.fn}: sample weights are not implemented; batch {i} of "
                                     f"{type(self.source).__name__} has a third element")
                xb, yb = item[0], item[1]
            elif isinstance(item, tuple) and len(item) == 1:
                xb, yb = item[0], None
            elif isinstance(item, tuple):
                raise ValueError(f"{self.fn}: batch {i} of {type(self.source).__name__} is a tuple of {len(item)}; "
                                 "expected (x, y) or x")
            else:
                xb, yb = item, None
            xb = as_input_array(xb, self.fn, self.dtype)
            if yb is not None:
                yb = as_target_array(yb, self.fn)
                check_same_length(xb, yb, f"{self.fn} (batch {i} of {type(self.source).__name__})")
            yield xb, yb

    def on_epoch_end(self):
        hook = getattr(self.source, "on_epoch_end", None)
        if callable(hook):
            hook()
