"""How fit, evaluate and predict read their data, as Keras's data adapters and EpochIterator.

The data come as arrays (``x``, ``y``, ``sample_weight``: one array, a list in the model's
input/output order, or a dict keyed by input/output names), cut into batches here; or as an
object that delivers batches:

- a Sequence / PyDataset (``len`` and ``[i]``, e.g. ``ImageDataGenerator().flow(x, y)``);
- any iterable of batches: a Python generator, a ``tf.data.Dataset`` (its tensors are read
  with ``.numpy()``: no TensorFlow import here), fastconv.keras's own Dataset...

A batch is ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``.  Every batch is turned into
three flat lists in the model's order (inputs, targets per output, sample weights per output).

:class:`EpochIterator` walks a source epoch by epoch with Keras's rules for ``steps_per_epoch``:
without it an epoch is the whole source (a fresh pass each epoch), or, for a source of unknown
length, everything until it is exhausted; with it an epoch is that many batches taken from one
iterator that continues across epochs (0 is taken as None, as Keras takes it).  A source that
runs out early ends the epoch with Keras's "Your input ran out of data" warning.
"""
import math
import warnings

import numpy as np

from fastconv.keras import backend

_RAN_OUT = ("Your input ran out of data; interrupting training. Make sure that your dataset or generator can "
            "generate at least `steps_per_epoch * epochs` batches. You may need to use the `.repeat()` function "
            "when building your dataset.")


# ------------------------------------------------------------------------------ what x is
def is_sequence(x):
    """A Sequence / PyDataset: ``len(x)`` batches (or a ``num_batches`` of None: endless),
    ``x[i]`` -> a batch.  An object that is also iterable but has no length (an infinite
    dataset) is read as an iterable."""
    if not (hasattr(x, "__len__") and hasattr(x, "__getitem__")) or _is_array_data(x):
        return False
    if hasattr(type(x), "num_batches") or not hasattr(x, "__iter__"):
        return True
    try:
        len(x)
    except TypeError:
        return False
    return True


def is_iterable_source(x):
    """An object that yields batches when iterated (generator, tf.data.Dataset...)."""
    return hasattr(x, "__iter__") and not _is_array_data(x) and not is_sequence(x)


def is_batch_source(x):
    return is_sequence(x) or is_iterable_source(x)


def is_py_dataset(x):
    """An instance of a PyDataset / Sequence class (Keras's or fastconv's): fit shuffles the
    order of its batches, as Keras's PyDataset adapter does."""
    return any(c.__name__ in ("PyDataset", "Sequence") for c in type(x).__mro__[:-1])


def _is_array_data(x):
    return isinstance(x, (np.ndarray, list, tuple, dict, str, bytes)) or hasattr(x, "__array__")


def source_kind(x):
    """How Keras's messages name a source: 'generator', 'tf.data.Dataset', 'PyDataset'..."""
    if hasattr(x, "__next__") and hasattr(x, "send"):
        return "generator"
    if any(c.__name__ in ("DatasetV2", "DatasetV1") for c in type(x).__mro__):
        return "tf.data.Dataset"
    if is_py_dataset(x):
        return "PyDataset"
    return type(x).__name__


def to_numpy(value):
    """Tensors of any library (``.numpy()``, or ``__array__``) as NumPy arrays, in nested lists,
    tuples and dicts."""
    if value is None or isinstance(value, np.ndarray):
        return value
    if isinstance(value, dict):
        return {k: to_numpy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_numpy(v) for v in value)
    numpy = getattr(value, "numpy", None)
    if callable(numpy):
        return np.asarray(numpy())
    return value


def unpack_batch(data, where):
    """(x, y, sample_weight) of one delivered batch, as Keras's unpack_x_y_sample_weight: a list
    counts as a tuple; anything else is x alone."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) == 1:
        return data[0], None, None
    if len(data) == 2:
        return data[0], data[1], None
    if len(data) == 3:
        return data
    raise ValueError(f"{where}: data is expected to be in format `x`, `(x,)`, `(x, y)`, or `(x, y, sample_weight)`, "
                     f"found a tuple of {len(data)} elements")


# --------------------------------------------------------------------- arrays in model order
def by_names(value, names, what, fn, allow_missing=False):
    """``value`` (one item, a list/tuple in the model's order, or a dict keyed by ``names``) as a
    list in the order of ``names`` (the model's input names for ``what`` "input arrays", else its
    output names)."""
    kind = "input" if what == "input arrays" else "output"
    if isinstance(value, dict):
        unknown = [k for k in value if k not in names]
        missing = [k for k in names if k not in value]
        if unknown or (missing and not allow_missing):
            raise ValueError(f"{fn}: the keys of the {what} dict must be the model's names {names}. Received keys "
                             f"{list(value)}" + (f" (unknown: {unknown})" if unknown else f" (missing: {missing})"))
        return [value.get(k) for k in names]
    if isinstance(value, (list, tuple)) and (len(names) > 1 or _is_structure(value)):
        if len(value) != len(names):
            raise ValueError(f"{fn}: the model has {len(names)} {kind}s {names}; received a list of "
                             f"{len(value)} {what}")
        return list(value)
    if len(names) > 1 and value is not None:
        raise ValueError(f"{fn}: the model has {len(names)} {kind}s; pass a list of {len(names)} arrays (in "
                         f"the order {names}) or a dict keyed by these names; received one {type(value).__name__}")
    return [value]


def _is_structure(value):
    """A list of one array ([x]) rather than nested Python lists of numbers."""
    return len(value) == 1 and (hasattr(value[0], "shape") or hasattr(value[0], "__array__")) \
        and np.ndim(value[0]) >= 1


def as_input_array(x, fn, dtype):
    """A model input as an array of the model's dtype, copied only when needed."""
    if x is None:
        raise ValueError(f"{fn}: x is required")
    arr = np.asarray(to_numpy(x))
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{fn}: x must hold numbers; received dtype {arr.dtype} with shape {arr.shape}")
    if arr.ndim == 0:
        raise ValueError(f"{fn}: x must be an array with a batch axis; received a scalar")
    return arr.astype(dtype, copy=False)


def as_target_array(y, fn):
    arr = np.asarray(to_numpy(y))
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{fn}: y must hold numbers; received dtype {arr.dtype} with shape {arr.shape}")
    if arr.ndim == 0:
        raise ValueError(f"{fn}: y must have one entry per sample; received a scalar")
    return arr


def as_weight_array(w, fn):
    arr = np.asarray(to_numpy(w))
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{fn}: sample_weight must hold numbers; received dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError(f"{fn}: sample_weight must have one weight per sample; received a scalar")
    return arr.astype(np.float64 if arr.dtype == np.float64 else backend.floatx(), copy=False)


def check_same_length(arrays, fn):
    """Every (label, array) pair has the same number of samples."""
    arrays = [(label, a) for label, a in arrays if a is not None]
    if len({len(a) for _, a in arrays}) > 1:
        groups = list(dict.fromkeys(label.split("[")[0] for label, _ in arrays))
        detail = ", ".join(f"{label} with {len(a)} samples (shape {a.shape})" for label, a in arrays)
        raise ValueError(f"{fn}: {' and '.join(groups)} must have the same number of samples (data cardinality is "
                         f"ambiguous): received {detail}")


def class_weight_to_sample_weight(y, class_weight, dtype):
    """One weight per sample from its class: the argmax of one-hot rows, or the (rounded) label;
    classes missing from ``class_weight`` weigh 1, as Keras."""
    labels = np.asarray(y)
    if labels.ndim > 1:
        labels = labels[..., 0] if labels.shape[-1] == 1 else np.argmax(labels, axis=-1)
    labels = np.round(labels).astype(np.int64).reshape(len(labels), -1)[:, 0]
    return np.array([class_weight.get(int(c), 1.0) for c in labels], dtype=dtype)


def check_class_weight(class_weight, fn):
    if not isinstance(class_weight, dict):
        raise ValueError(f"{fn}: class_weight must be a dict {{class index: weight}}. Received: "
                         f"class_weight={class_weight!r}")


class Standardizer:
    """Turns (x, y, sample_weight) as a user passes them into three lists in the model's order:
    input arrays, target arrays per output (or None), weights per output (or None)."""

    def __init__(self, fn, input_names, output_names, dtype):
        self.fn, self.input_names, self.output_names, self.dtype = fn, input_names, output_names, dtype

    def __call__(self, x, y, sample_weight, where=None):
        fn = self.fn if where is None else f"{self.fn} ({where})"
        xs = [as_input_array(a, fn, self.dtype) for a in by_names(to_numpy(x), self.input_names, "input arrays", fn)]
        ys = sws = None
        if y is not None:
            ys = [None if a is None else as_target_array(a, fn)
                  for a in by_names(to_numpy(y), self.output_names, "target arrays", fn, allow_missing=True)]
        if sample_weight is not None:
            sample_weight = to_numpy(sample_weight)
            if isinstance(sample_weight, (list, tuple, dict)) and len(self.output_names) > 1:
                sws = [None if w is None else as_weight_array(w, fn)
                       for w in by_names(sample_weight, self.output_names, "sample weights", fn, allow_missing=True)]
            else:
                w = as_weight_array(sample_weight, fn)
                if len(self.output_names) > 1 and not (w.ndim == 1 or (w.ndim == 2 and w.shape[1] == 1)):
                    raise ValueError(f"{fn}: for a model with several outputs, a single sample_weight array must have "
                                     f"one scalar per sample (shape (num_samples,)); received shape {w.shape}. Pass "
                                     "one array per output for other weights.")
                sws = [w] * len(self.output_names)
        named = _labelled("x", self.input_names, xs) + _labelled("y", self.output_names, ys) + \
            _labelled("sample_weight", self.output_names, sws)
        check_same_length(named, fn)
        return xs, ys, sws


def _labelled(group, names, arrays):
    """(label, array) pairs for messages: ``x`` for a single array, ``x['name']`` for several."""
    if arrays is None:
        return []
    return [(group if len(names) == 1 else f"{group}[{n!r}]", a) for n, a in zip(names, arrays)]


def validation_split_arrays(arrays, validation_split, fn):
    """(training arrays, validation arrays): the validation part is the LAST ``validation_split``
    fraction of the samples, taken before any shuffling, as Keras does.  ``arrays`` is the
    (xs, ys, sws) of a Standardizer."""
    if not 0 < validation_split < 1:
        raise ValueError(f"{fn}: validation_split must be in (0, 1). Received: validation_split={validation_split}")
    n = len(arrays[0][0])
    split_at = int(math.floor(n * (1.0 - validation_split)))
    if split_at == 0 or split_at == n:
        raise ValueError(f"{fn}: training data contains {n} samples, which is not sufficient to split it into a "
                         f"validation and training set as specified by validation_split={validation_split}")

    def cut(part):
        return tuple(None if group is None else [None if a is None else a[part] for a in group] for group in arrays)
    return cut(slice(0, split_at)), cut(slice(split_at, n))


# ----------------------------------------------------------------------------------- sources
class ArraySource:
    """Batches of ``batch_size`` samples of standardized arrays (the last one smaller),
    reshuffled at every pass when ``shuffle``."""

    def __init__(self, arrays, batch_size, shuffle=False):
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer. Received: batch_size={batch_size!r}")
        self.arrays = arrays
        self.n = len(arrays[0][0])
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.num_batches = math.ceil(self.n / self.batch_size)

    def __iter__(self):
        order = backend.random_generator().permutation(self.n) if self.shuffle else None
        for b in range(self.num_batches):
            lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, self.n)
            # Sorted indices read the arrays in memory order (the batch's content is the same set).
            sel = slice(lo, hi) if order is None else np.sort(order[lo:hi])
            yield tuple(None if group is None else [None if a is None else a[sel] for a in group]
                        for group in self.arrays)

    def on_epoch_end(self):
        pass


class SequenceSource:
    """The batches of a Sequence / PyDataset, ``source[i]`` for i in range(len(source)) (in a
    random order when ``shuffle``, as Keras's PyDataset adapter); ``on_epoch_end`` is called
    after every epoch.  A PyDataset whose ``num_batches`` is None is endless."""

    def __init__(self, source, standardize, shuffle=False):
        self.source, self.standardize, self.shuffle = source, standardize, shuffle
        self.kind = source_kind(source)
        num_batches = getattr(source, "num_batches", None) if hasattr(type(source), "num_batches") else len(source)
        self.num_batches = None if num_batches is None else int(num_batches)

    def __iter__(self):
        if self.num_batches is None:
            indices = _count()
        elif self.shuffle:
            indices = backend.random_generator().permutation(self.num_batches)
        else:
            indices = range(self.num_batches)
        for i in indices:
            yield self.standardize(*unpack_batch(to_numpy(self.source[int(i)]), f"batch {i} of {self.kind}"),
                                   where=f"batch {i} of {self.kind}")

    def on_epoch_end(self):
        hook = getattr(self.source, "on_epoch_end", None)
        if callable(hook):
            hook()


def _count():
    i = 0
    while True:
        yield i
        i += 1


class IterableSource:
    """The batches of an iterable (``iter(source)`` at each pass): a generator, a
    tf.data.Dataset, fastconv.keras's Dataset...; its length is ``len(source)`` when it has one."""

    def __init__(self, source, standardize):
        self.source, self.standardize = source, standardize
        self.kind = source_kind(source)
        try:
            self.num_batches = int(len(source))
        except TypeError:  # a generator, or a tf.data.Dataset of infinite or unknown cardinality
            self.num_batches = None
        cardinality = getattr(source, "cardinality", None)
        # tf.data.INFINITE_CARDINALITY is -1: such a dataset never ends an epoch by itself.
        self.endless = callable(cardinality) and int(to_numpy(cardinality())) == -1

    def __iter__(self):
        for i, item in enumerate(self.source):
            where = f"batch {i} of the {self.kind}"
            yield self.standardize(*unpack_batch(to_numpy(item), where), where=where)

    def on_epoch_end(self):
        pass


class EpochIterator:
    """Epochs of batches from a source, with Keras's rules for ``steps`` (see the module
    docstring).  ``epoch()`` yields (step, batch); ``num_batches`` is what the progress bar
    shows (None: unknown)."""

    def __init__(self, source, steps, fn, steps_name="steps_per_epoch"):
        if steps is not None and (not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 0):
            raise ValueError(f"{fn}: {steps_name} must be a positive integer, 0 or None. "
                             f"Received: {steps_name}={steps!r}")
        if steps == 0:
            # Keras's epoch iterator takes `steps or len(source)`: 0 is the whole source, as None (a
            # program computing int(0.15 * n / batch_size) on a small dataset gets 0 and runs on).
            steps = None
        if steps is None and getattr(source, "endless", False):
            raise ValueError(f"{fn}: the {source.kind} is infinite (e.g. built with .repeat()): pass {steps_name}=... "
                             "to say how many batches make an epoch")
        self.source, self.steps, self.fn = source, None if steps is None else int(steps), fn
        self._iterator = None
        self._seen = 0  # batches taken from the current iterator

    @property
    def num_batches(self):
        return self.steps or self.source.num_batches

    def reset(self):
        """The next epoch starts a fresh pass over the source."""
        self._iterator = None

    def epoch(self):
        known = self.source.num_batches
        limit = self.steps or known
        if self._iterator is None or self.steps is None:
            self._iterator, self._seen = iter(self.source), 0
        step = 0
        while limit is None or step < limit:
            if known is not None and self._seen >= known:
                # A source of known length used up before steps_per_epoch batches.
                warnings.warn(_RAN_OUT, UserWarning, stacklevel=3)
                break
            try:
                batch = next(self._iterator)
            except StopIteration:
                # Also the natural end of a finite generator without steps_per_epoch: Keras warns there too.
                warnings.warn(_RAN_OUT, UserWarning, stacklevel=3)
                self._iterator = None
                break
            self._seen += 1
            yield step, batch
            step += 1
        if known is not None and self._seen >= known:
            self._iterator = None
        self.source.on_epoch_end()
