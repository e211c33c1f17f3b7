"""A light ``tf.data.Dataset``: the pipelines the lecture's Keras programs build, on NumPy.

``Dataset.from_tensor_slices((x, y)).shuffle(1000, seed=0).batch(32).map(f).prefetch(AUTOTUNE)``
and the datasets of :func:`fastconv.keras.utils.image_dataset_from_directory` give NumPy arrays
(or tuples and dicts of them) where TensorFlow gives tensors, and ``fit``, ``evaluate`` and
``predict`` take them directly.

How it works.  A dataset is a chain of nodes, each of which knows its number of elements (its
cardinality) and, when it can, how to produce element ``i`` directly (``_get``) and a batch of
elements at once (``_gather``: the image source decodes a batch on all cores, slices take a fancy
index).  ``shuffle`` on such a chain shuffles indices, not data, so ``batch`` after ``shuffle``
still gathers whole batches.  Every pass over a dataset (an ``iter()``, or an epoch of indexed
access) has a *key*, a tuple of pass numbers: a seeded shuffle draws its order from its seed and
the key, so each pass has a new order (``reshuffle_each_iteration``) and the same seed gives the
same sequence of orders in every run.  ``repeat`` gives each repetition its own key, ``cache``
always reads its input with one fixed key (every pass replays the first).

Two ways to consume a finite dataset: ``iter(ds)`` (each call a new pass, as in TensorFlow), and
``len(ds)`` + ``ds[i]`` + ``ds.on_epoch_end()`` (Keras's PyDataset protocol, which
``fastconv.keras`` models read), where ``ds[0], ds[1], ...`` in order run through the same
pipeline (prefetch included) and ``on_epoch_end`` starts the next pass.
"""
import collections
import itertools
import queue
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from fastconv.data import AUTOTUNE, INFINITE_CARDINALITY, UNKNOWN_CARDINALITY
from fastconv.keras import backend

# What AUTOTUNE means for a prefetch buffer: enough to overlap the next batches with training.
AUTOTUNE_PREFETCH = 2


# -- elements: arrays, or tuples and dicts of them ------------------------------------------------

def _leaves(x):
    if isinstance(x, tuple):
        return [leaf for v in x for leaf in _leaves(v)]
    if isinstance(x, dict):
        return [leaf for k in x for leaf in _leaves(x[k])]
    return [x]


def _rebuild(template, leaves):
    """``template``'s structure filled with ``leaves`` (an iterator)."""
    if isinstance(template, tuple):
        return tuple(_rebuild(v, leaves) for v in template)
    if isinstance(template, dict):
        return {k: _rebuild(template[k], leaves) for k in template}
    return next(leaves)


def _signature(x):
    """The structure of an element without its values: what every element of a dataset shares."""
    if isinstance(x, tuple):
        return tuple(_signature(v) for v in x)
    if isinstance(x, dict):
        return {k: _signature(v) for k, v in x.items()}
    return "array"


def _describe(x):
    if isinstance(x, tuple):
        return "(" + ", ".join(_describe(v) for v in x) + ("," if len(x) == 1 else "") + ")"
    if isinstance(x, dict):
        return "{" + ", ".join(f"{k!r}: {_describe(v)}" for k, v in x.items()) + "}"
    return f"array{tuple(np.shape(x))}"


def _as_element(x, where, lists_are_tuples=True):
    """A user value as an element: arrays (NumPy), tuples and dicts of them; a list is a tuple
    (a function's results, as tf.data) or one array (``from_tensor_slices``).  Python numbers
    become float32 / int32 arrays, as TensorFlow makes tensors of them.  None, objects and ragged
    lists are refused with an error naming ``where``."""
    if isinstance(x, tuple) or (lists_are_tuples and isinstance(x, list)):
        return tuple(_as_element(v, where, lists_are_tuples) for v in x)
    if isinstance(x, dict):
        return {k: _as_element(v, where, lists_are_tuples) for k, v in x.items()}
    if x is None:
        raise TypeError(f"{where}: got None where an array was expected (did the function forget to return?)")
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{where}: cannot make an array of a {type(x).__name__} ({exc})") from None
    if arr.dtype.kind not in "biufcUSM":
        raise TypeError(f"{where}: got a {type(x).__name__} (NumPy dtype {arr.dtype}); a dataset element must be "
                        "numbers or strings, or a tuple or dict of them")
    if not isinstance(x, (np.ndarray, np.generic)):
        arr = arr.astype({"f": np.float32, "i": np.int32}.get(arr.dtype.kind, arr.dtype), copy=False)
    return arr


def _stack(elements, where):
    """Elements of one structure -> one batch: each leaf stacked along a new first axis."""
    first = elements[0]
    sig = _signature(first)
    columns = [[] for _ in _leaves(first)]
    for e in elements:
        if _signature(e) != sig:
            raise ValueError(f"{where}: elements of different structures in one batch: {_describe(first)} and "
                             f"{_describe(e)}")
        for column, leaf in zip(columns, _leaves(e)):
            column.append(leaf)
    stacked = []
    for column in columns:
        shapes = {np.shape(v) for v in column}
        if len(shapes) > 1:
            raise ValueError(f"{where}: cannot batch elements of different shapes {sorted(shapes)[:4]} "
                             "(fastconv has no ragged batches: give the elements one shape first)")
        stacked.append(np.stack(column))
    return _rebuild(first, iter(stacked))


def _concat(batches):
    first = batches[0]
    columns = zip(*(_leaves(b) for b in batches))
    return _rebuild(first, iter([np.concatenate(c) for c in columns]))


def _batch_size(batch, where):
    sizes = {len(leaf) if np.ndim(leaf) else None for leaf in _leaves(batch)}
    if None in sizes:
        raise ValueError(f"{where}: the elements are scalars ({_describe(batch)}); there is no batch axis to split")
    if len(sizes) > 1:
        raise ValueError(f"{where}: the parts of a batch have different lengths {sorted(sizes)}: {_describe(batch)}")
    return sizes.pop()


def _slice(batch, index):
    return _rebuild(batch, iter([leaf[index] for leaf in _leaves(batch)]))


def _pass_rng(seed, key):
    """The generator of one pass of a shuffle: a NumPy stream determined by the seed and the key."""
    return np.random.default_rng([seed, *key])


def _check_count(value, name, where, allow_negative=False):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or (value < 0 and not allow_negative):
        raise ValueError(f"{where}: `{name}` must be a {'' if allow_negative else 'non-negative '}integer. "
                         f"Received: {name}={value!r}")
    return int(value)


# -- the dataset -------------------------------------------------------------------------------

class Dataset:
    """A sequence of elements (NumPy arrays, or tuples / dicts of them), as ``tf.data.Dataset``.

    Build one with :meth:`from_tensor_slices` or ``image_dataset_from_directory``; transform it
    with ``map``, ``batch``, ``unbatch``, ``shuffle``, ``take``, ``skip``, ``repeat``, ``cache``
    and ``prefetch`` (each returns a new dataset); read it with ``for element in ds``,
    :meth:`as_numpy_iterator`, or ``len(ds)`` and ``ds[i]``.  Elements always come in their
    order: ``deterministic`` and ``num_parallel_calls`` are accepted and change nothing in the
    results, ``name`` is accepted as in TensorFlow.
    """

    # Whether ``_get`` gives element i directly (else the elements come only in order).
    _indexable = True

    def __init__(self, parent=None):
        self._parent = parent
        self._passes = 0
        self._cursor = None
        self._lock = threading.Lock()
        # Attributes that image_dataset_from_directory sets (class_names, file_paths) carry over
        # through transformations, as programs read them after a map or a prefetch.
        for name in ("class_names", "file_paths"):
            if parent is not None and hasattr(parent, name):
                setattr(self, name, getattr(parent, name))

    # -- what a node defines ------------------------------------------------------------------
    def _cardinality(self):
        raise NotImplementedError

    def _get(self, index, key):
        raise NotImplementedError

    def _gather(self, indices, key, where):
        """The elements ``indices`` stacked into one batch (nodes that can do better override)."""
        return _stack([self._get(int(i), key) for i in indices], where)

    def _elements(self, key):
        """The elements of one pass, in order."""
        for i in range(self._cardinality()):
            yield self._get(i, key)

    def _concurrent(self):
        """Whether ``_get`` may run for several elements at once in different threads: true for
        the sources and the nodes that only move indices, false below a user function (a map may
        hold state, e.g. a random generator, whose order of use must not depend on threads)."""
        return self._parent is not None and self._parent._concurrent() and type(self) in _INDEX_NODES

    # -- TensorFlow's construction methods ----------------------------------------------------
    @staticmethod
    def from_tensor_slices(tensors, name=None):
        """The slices of ``tensors`` along their first axis: an array, or a tuple / dict of
        arrays of one length (a list is one array, as in TensorFlow)."""
        return _SliceDataset(tensors)

    @staticmethod
    def range(*args, **kwargs):
        """``Dataset.range(stop)``, ``range(start, stop[, step])``: int64 scalars."""
        dtype = kwargs.pop("dtype", np.int64)
        kwargs.pop("name", None)
        if kwargs:
            raise TypeError(f"Dataset.range: unexpected arguments {sorted(kwargs)}")
        return _SliceDataset(np.arange(*args, dtype=dtype))

    def map(self, map_func, num_parallel_calls=None, deterministic=None, name=None):
        """Apply ``map_func`` to every element: a tuple element is passed as positional arguments
        (``lambda x, y: ...``), others as one argument.  The function receives NumPy arrays (a
        batch after ``batch``), and may call fastconv.keras layers and models; its result must be
        an array or a tuple / dict of them.  ``num_parallel_calls`` is accepted: the function runs
        in the thread that reads the dataset (in the background after ``prefetch``)."""
        if not callable(map_func):
            raise TypeError(f"Dataset.map: `map_func` must be callable. Received: map_func={map_func!r}")
        if num_parallel_calls is not None:
            _check_count(num_parallel_calls, "num_parallel_calls", "Dataset.map", allow_negative=True)
        return _MapDataset(self, map_func)

    def batch(self, batch_size, drop_remainder=False, num_parallel_calls=None, deterministic=None, name=None):
        """Consecutive elements stacked ``batch_size`` at a time (the last batch smaller unless
        ``drop_remainder``)."""
        batch_size = _check_count(batch_size, "batch_size", "Dataset.batch")
        if batch_size < 1:
            raise ValueError(f"Dataset.batch: `batch_size` must be positive. Received: batch_size={batch_size}")
        return _BatchDataset(self, batch_size, bool(drop_remainder))

    def unbatch(self, name=None):
        """The elements of each batch, one by one."""
        return _UnbatchDataset(self)

    def shuffle(self, buffer_size, seed=None, reshuffle_each_iteration=True, name=None):
        """Elements drawn at random from a buffer of ``buffer_size`` (TensorFlow's algorithm; a
        buffer as large as the dataset gives a uniform permutation), in a new order at every
        pass unless ``reshuffle_each_iteration=False``."""
        buffer_size = _check_count(buffer_size, "buffer_size", "Dataset.shuffle")
        if buffer_size == 0:
            raise ValueError("Dataset.shuffle: `buffer_size` must be positive. Received: buffer_size=0")
        if seed is not None:
            seed = _check_count(seed, "seed", "Dataset.shuffle")
        return _ShuffleDataset(self, buffer_size, seed, bool(reshuffle_each_iteration))

    def take(self, count, name=None):
        """The first ``count`` elements (all of them for -1)."""
        return _TakeDataset(self, _check_count(count, "count", "Dataset.take", allow_negative=True))

    def skip(self, count, name=None):
        """All but the first ``count`` elements (none for -1)."""
        return _SkipDataset(self, _check_count(count, "count", "Dataset.skip", allow_negative=True))

    def repeat(self, count=None, name=None):
        """The dataset ``count`` times (for ever when None or -1), each repetition a new pass."""
        if count is not None:
            count = _check_count(count, "count", "Dataset.repeat", allow_negative=True)
        return _RepeatDataset(self, None if count is None or count < 0 else count)

    def cache(self, filename="", name=None):
        """Keep the elements in memory the first time they are computed; later passes replay them
        (a shuffle before ``cache`` is fixed, one after it reshuffles)."""
        if filename:
            raise NotImplementedError("Dataset.cache: fastconv caches in memory only; a cache file "
                                      f"(filename={filename!r}) is not implemented. Use cache().")
        return _CacheDataset(self)

    def prefetch(self, buffer_size, name=None):
        """Produce up to ``buffer_size`` elements ahead in a background thread (AUTOTUNE: 2)."""
        buffer_size = _check_count(buffer_size, "buffer_size", "Dataset.prefetch", allow_negative=True)
        if buffer_size < AUTOTUNE:
            raise ValueError(f"Dataset.prefetch: `buffer_size` must be non-negative or AUTOTUNE. "
                             f"Received: buffer_size={buffer_size}")
        return _PrefetchDataset(self, AUTOTUNE_PREFETCH if buffer_size == AUTOTUNE else buffer_size)

    # -- reading ----------------------------------------------------------------------------
    def cardinality(self):
        """The number of elements, or INFINITE_CARDINALITY (-1) / UNKNOWN_CARDINALITY (-2)."""
        return self._cardinality()

    def __len__(self):
        n = self._cardinality()
        if n == INFINITE_CARDINALITY:
            raise TypeError("The dataset is infinite.")
        if n < 0:
            raise TypeError("The dataset length is unknown.")
        return n

    def _pass(self):
        with self._lock:
            key = (self._passes,)
            self._passes += 1
        return self._elements(key)

    def __iter__(self):
        """The elements, their arrays answering ``.numpy()`` as TensorFlow's tensors do."""
        return (backend.as_tensor(element) for element in self._pass())

    def as_numpy_iterator(self):
        """An iterator over the elements as plain NumPy arrays."""
        return self._pass()

    def __getitem__(self, index):
        """Element ``index`` of the current pass (Keras's PyDataset protocol; ``on_epoch_end``
        starts the next pass).  Reading 0, 1, 2... in order runs the pipeline once."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"Dataset indices must be integers. Received: {index!r}")
        n = len(self)
        index = int(index) + (n if index < 0 else 0)
        if not 0 <= index < n:
            raise IndexError(f"Dataset index {index} out of range for a dataset of {n} elements")
        key = (self._passes,)
        cursor = self._cursor
        if cursor is None or cursor[0] != key or cursor[1] != index:
            self._close_cursor()
            if index != 0 and self._indexable:
                return self._get(index, key)
            elements = self._elements(key)
            for _ in range(index):
                next(elements)
            cursor = self._cursor = [key, index, elements]
        element = next(cursor[2])
        cursor[1] += 1
        if cursor[1] == n:
            self._close_cursor()
        return element

    def _close_cursor(self):
        if self._cursor is not None:
            self._cursor[2].close()
            self._cursor = None

    def on_epoch_end(self):
        """Start the next pass of indexed reading (a new shuffle order)."""
        self._close_cursor()
        self._passes += 1

    def __repr__(self):
        n = self._cardinality()
        size = {INFINITE_CARDINALITY: "infinite", UNKNOWN_CARDINALITY: "unknown"}.get(n, str(n))
        return f"<{type(self).__name__.lstrip('_')} cardinality={size}>"


class _SliceDataset(Dataset):
    def __init__(self, tensors):
        super().__init__()
        where = "Dataset.from_tensor_slices"
        self._tensors = _as_element(tensors, where, lists_are_tuples=False)
        lengths = set()
        for leaf in _leaves(self._tensors):
            if leaf.ndim == 0:
                raise ValueError(f"{where}: every component needs a first axis to slice; received a scalar in "
                                 f"{_describe(self._tensors)}")
            lengths.add(len(leaf))
        if len(lengths) != 1:
            raise ValueError(f"{where}: all components must have the same size along their first axis; received "
                             f"{_describe(self._tensors)}")
        self._n = lengths.pop()

    def _cardinality(self):
        return self._n

    def _get(self, index, key):
        return _slice(self._tensors, index)

    def _gather(self, indices, key, where):
        return _slice(self._tensors, np.asarray(indices, dtype=np.intp))

    def _concurrent(self):
        return True


class _MapDataset(Dataset):
    def __init__(self, parent, fn):
        super().__init__(parent)
        self._fn = fn
        self._indexable = parent._indexable
        self._where = f"Dataset.map({getattr(fn, '__name__', type(fn).__name__)})"
        self._sig = None

    def _cardinality(self):
        return self._parent._cardinality()

    def _apply(self, element):
        out = self._fn(*element) if isinstance(element, tuple) else self._fn(element)
        out = _as_element(out, self._where)
        sig = _signature(out)
        if self._sig is None:
            self._sig = sig
        elif sig != self._sig:
            raise ValueError(f"{self._where}: the function returned {_describe(out)}, of another structure than its "
                             f"first result ({self._sig}); every call must return the same structure")
        return out

    def _get(self, index, key):
        return self._apply(self._parent._get(index, key))

    def _elements(self, key):
        for element in self._parent._elements(key):
            yield self._apply(element)


class _BatchDataset(Dataset):
    def __init__(self, parent, batch_size, drop_remainder):
        super().__init__(parent)
        self._size, self._drop = batch_size, drop_remainder
        self._indexable = parent._indexable and parent._cardinality() >= 0

    def _cardinality(self):
        n = self._parent._cardinality()
        if n < 0:
            return n
        return n // self._size if self._drop else -(-n // self._size)

    def _get(self, index, key):
        lo = index * self._size
        hi = min(lo + self._size, self._parent._cardinality())
        return self._parent._gather(range(lo, hi), key, "Dataset.batch")

    def _elements(self, key):
        if self._indexable:
            yield from super()._elements(key)
            return
        pending = []
        for element in self._parent._elements(key):
            pending.append(element)
            if len(pending) == self._size:
                yield _stack(pending, "Dataset.batch")
                pending = []
        if pending and not self._drop:
            yield _stack(pending, "Dataset.batch")


class _UnbatchDataset(Dataset):
    """Unbatching a batch gives its parent's elements back; anything else is read in order."""

    def __init__(self, parent):
        super().__init__(parent)
        self._source = parent._parent if isinstance(parent, _BatchDataset) else None
        self._indexable = self._source is not None and self._source._indexable

    def _cardinality(self):
        if self._source is None:
            return INFINITE_CARDINALITY if self._parent._cardinality() == INFINITE_CARDINALITY else \
                UNKNOWN_CARDINALITY
        n = self._source._cardinality()
        return n - n % self._parent._size if n >= 0 and self._parent._drop else n

    def _get(self, index, key):
        return self._source._get(index, key)

    def _gather(self, indices, key, where):
        return self._source._gather(indices, key, where)

    def _elements(self, key):
        if self._indexable:
            yield from super()._elements(key)
            return
        for batch in self._parent._elements(key):
            for i in range(_batch_size(batch, "Dataset.unbatch")):
                yield _slice(batch, i)


def _buffer_shuffle(n, buffer_size, rng):
    """The order in which a shuffle buffer of ``buffer_size`` emits n elements: fill the buffer,
    then repeatedly emit a random slot and refill it with the next element (TensorFlow's scheme)."""
    if buffer_size >= n:
        return rng.permutation(n)
    order = np.empty(n, dtype=np.intp)
    buffer = list(range(buffer_size))
    draws = rng.random(n)
    for out in range(n):
        slot = int(draws[out] * len(buffer))
        order[out] = buffer[slot]
        following = buffer_size + out
        if following < n:
            buffer[slot] = following
        else:
            buffer[slot] = buffer[-1]
            buffer.pop()
    return order


class _ShuffleDataset(Dataset):
    def __init__(self, parent, buffer_size, seed, reshuffle):
        super().__init__(parent)
        self._buffer = buffer_size
        self._seed = int(np.random.SeedSequence().entropy % (1 << 63)) if seed is None else seed
        self._reshuffle = reshuffle
        self._indexable = parent._indexable and parent._cardinality() >= 0
        self._orders = {}  # key -> order, for the passes being read

    def _cardinality(self):
        return self._parent._cardinality()

    def _rng(self, key):
        return _pass_rng(self._seed, key if self._reshuffle else ())

    def _order(self, key):
        with self._lock:  # prefetch threads ask for batches of one pass at the same time
            order = self._orders.get(key)
            if order is None:
                n = self._parent._cardinality()
                order = _buffer_shuffle(n, self._buffer, self._rng(key))
                if len(self._orders) > 4:  # only the few passes read at the same time need keeping
                    self._orders.pop(next(iter(self._orders)))
                self._orders[key] = order
        return order

    def _get(self, index, key):
        return self._parent._get(int(self._order(key)[index]), key)

    def _gather(self, indices, key, where):
        return self._parent._gather(self._order(key)[np.asarray(indices, dtype=np.intp)], key, where)

    def _elements(self, key):
        if self._indexable:
            yield from super()._elements(key)
            return
        rng = self._rng(key)
        buffer = []
        source = self._parent._elements(key)
        for element in source:
            buffer.append(element)
            if len(buffer) == self._buffer:
                break
        for element in source:
            slot = int(rng.random() * len(buffer))
            yield buffer[slot]
            buffer[slot] = element
        while buffer:
            slot = int(rng.random() * len(buffer))
            buffer[slot], buffer[-1] = buffer[-1], buffer[slot]
            yield buffer.pop()


class _TakeDataset(Dataset):
    def __init__(self, parent, count):
        super().__init__(parent)
        self._count = count
        self._indexable = parent._indexable

    def _cardinality(self):
        n = self._parent._cardinality()
        if self._count < 0:
            return n
        if n == INFINITE_CARDINALITY:
            return self._count
        return min(n, self._count) if n >= 0 else UNKNOWN_CARDINALITY

    def _get(self, index, key):
        return self._parent._get(index, key)

    def _gather(self, indices, key, where):
        return self._parent._gather(indices, key, where)

    def _elements(self, key):
        source = self._parent._elements(key)
        try:
            yield from (source if self._count < 0 else itertools.islice(source, self._count))
        finally:
            source.close()


class _SkipDataset(Dataset):
    def __init__(self, parent, count):
        super().__init__(parent)
        self._count = count
        self._indexable = parent._indexable

    def _offset(self):
        n = self._parent._cardinality()
        return n if self._count < 0 else self._count

    def _cardinality(self):
        n = self._parent._cardinality()
        if n < 0:
            return n
        return max(n - self._offset(), 0)

    def _get(self, index, key):
        return self._parent._get(index + self._offset(), key)

    def _gather(self, indices, key, where):
        return self._parent._gather(np.asarray(indices, dtype=np.intp) + self._offset(), key, where)

    def _elements(self, key):
        if self._count < 0:
            return
        source = self._parent._elements(key)
        try:
            yield from itertools.islice(source, self._count, None)
        finally:
            source.close()


class _RepeatDataset(Dataset):
    def __init__(self, parent, count):
        super().__init__(parent)
        self._count = count
        self._indexable = parent._indexable and parent._cardinality() >= 0

    def _cardinality(self):
        n = self._parent._cardinality()
        if n == 0 or self._count == 0:
            return 0
        if self._count is None:
            return INFINITE_CARDINALITY
        return n * self._count if n >= 0 else n

    def _get(self, index, key):
        n = self._parent._cardinality()
        return self._parent._get(index % n, key + (index // n,))

    def _gather(self, indices, key, where):
        n = self._parent._cardinality()
        indices = np.asarray(indices, dtype=np.intp)
        reps = indices // n
        # Consecutive indices of one repetition are gathered together.
        cuts = np.flatnonzero(np.diff(reps)) + 1
        parts = [self._parent._gather(chunk % n, key + (int(r[0]),), where)
                 for chunk, r in zip(np.split(indices, cuts), np.split(reps, cuts))]
        return parts[0] if len(parts) == 1 else _concat(parts)

    def _elements(self, key):
        reps = itertools.count() if self._count is None else range(self._count)
        for rep in reps:
            empty = True
            for element in self._parent._elements(key + (rep,)):
                empty = False
                yield element
            if empty:
                return


class _CacheDataset(Dataset):
    """Elements kept as they are first computed, from one fixed pass of the input."""

    _KEY = (0,)

    def __init__(self, parent):
        super().__init__(parent)
        self._indexable = parent._indexable and parent._cardinality() >= 0
        self._store = {}
        self._complete = None  # the list of all elements once a whole pass was read

    def _cardinality(self):
        return len(self._complete) if self._complete is not None else self._parent._cardinality()

    def _get(self, index, key):
        if self._complete is not None:
            return self._complete[index]
        element = self._store.get(index)
        if element is None:
            element = self._store[index] = self._parent._get(index, self._KEY)
            if len(self._store) == self._parent._cardinality():
                self._complete = [self._store[i] for i in range(len(self._store))]
                self._store = {}
        return element

    def _gather(self, indices, key, where):
        indices = [int(i) for i in indices]
        missing = [i for i in indices if self._complete is None and i not in self._store]
        if len(missing) > 1:
            batch = self._parent._gather(missing, self._KEY, where)
            for k, i in enumerate(missing):
                self._store[i] = _slice(batch, k)
        return _stack([self._get(i, key) for i in indices], where)

    def _elements(self, key):
        if self._complete is not None:
            yield from self._complete
            return
        if self._indexable:
            yield from super()._elements(key)
            return
        elements = []
        for element in self._parent._elements(self._KEY):
            elements.append(element)
            yield element
        self._complete = elements


_STOP = object()


class _PrefetchDataset(Dataset):
    def __init__(self, parent, buffer_size):
        super().__init__(parent)
        self._size = buffer_size
        self._indexable = parent._indexable

    def _cardinality(self):
        return self._parent._cardinality()

    def _get(self, index, key):
        return self._parent._get(index, key)

    def _gather(self, indices, key, where):
        return self._parent._gather(indices, key, where)

    def _elements(self, key):
        if self._size == 0:
            yield from self._parent._elements(key)
        elif self._parent._indexable and self._parent._cardinality() >= 0 and self._parent._concurrent():
            yield from self._in_flight(key)
        else:
            yield from self._background(key)

    def _in_flight(self, key):
        """Up to ``buffer_size`` elements computed at the same time, delivered in order: the image
        decoding threads always have the next batch's files to work on."""
        n = self._parent._cardinality()
        pool = ThreadPoolExecutor(max_workers=self._size, thread_name_prefix="fastconv-prefetch")
        pending = collections.deque()
        try:
            for index in range(n):
                while len(pending) < self._size and index + len(pending) < n:
                    pending.append(pool.submit(self._parent._get, index + len(pending), key))
                yield pending.popleft().result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _background(self, key):
        """One thread runs the input's pipeline (user functions included, in order) ahead."""
        buffer = queue.Queue(maxsize=self._size)
        stop = threading.Event()
        worker = threading.Thread(target=_produce, args=(self._parent._elements(key), buffer, stop),
                                  name="fastconv-prefetch", daemon=True)
        worker.start()
        try:
            while True:
                item = buffer.get()
                if item is _STOP:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield item
        finally:
            stop.set()
            # Unblock a producer waiting on a full buffer, so that it sees ``stop``.
            while worker.is_alive():
                try:
                    buffer.get(timeout=0.05)
                except queue.Empty:
                    pass


class _Failure:
    def __init__(self, error):
        self.error = error


def _produce(elements, buffer, stop):
    """The prefetch thread: compute elements into ``buffer`` until done or told to stop."""
    try:
        for element in elements:
            while not stop.is_set():
                try:
                    buffer.put(element, timeout=0.05)
                    break
                except queue.Full:
                    pass
            if stop.is_set():
                return
        item = _STOP
    except BaseException as exc:  # handed to the reading thread, which raises it
        item = _Failure(exc)
    finally:
        elements.close()
    while not stop.is_set():
        try:
            buffer.put(item, timeout=0.05)
            return
        except queue.Full:
            pass


# The nodes that only move indices (see Dataset._concurrent).
_INDEX_NODES = (_BatchDataset, _ShuffleDataset, _TakeDataset, _SkipDataset, _RepeatDataset, _PrefetchDataset)
