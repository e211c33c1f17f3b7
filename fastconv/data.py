"""TensorFlow's ``tf.data`` names, for programs that ``import fastconv as tf``:
``tf.data.AUTOTUNE``, ``tf.data.Dataset`` (fastconv.keras.dataset.Dataset, loaded on first use so
that importing fastconv stays light) and ``tf.data.experimental`` (``AUTOTUNE``, ``cardinality``,
``INFINITE_CARDINALITY``, ``UNKNOWN_CARDINALITY``)."""
import types

AUTOTUNE = -1
INFINITE_CARDINALITY = -1
UNKNOWN_CARDINALITY = -2


def cardinality(dataset):
    """``tf.data.experimental.cardinality``: the number of elements, or -1 (infinite) / -2 (unknown)."""
    return dataset.cardinality()


experimental = types.SimpleNamespace(AUTOTUNE=AUTOTUNE, INFINITE_CARDINALITY=INFINITE_CARDINALITY,
                                     UNKNOWN_CARDINALITY=UNKNOWN_CARDINALITY, cardinality=cardinality)


def __getattr__(name):
    if name == "Dataset":
        from fastconv.keras.dataset import Dataset
        return Dataset
    raise AttributeError(f"module 'fastconv.data' has no attribute {name!r}")


__all__ = ["AUTOTUNE", "Dataset", "INFINITE_CARDINALITY", "UNKNOWN_CARDINALITY", "experimental"]  # noqa: F822 (lazy)
