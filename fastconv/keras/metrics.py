"""Metrics, as ``keras.metrics``: running means over an epoch.

``metrics=['accuracy']`` is resolved as Keras resolves it, from the shapes of the targets and
of the model's output: one output column -> binary accuracy (threshold 0.5); integer labels with
one column less than the output (or a last axis of 1) -> sparse categorical accuracy; otherwise
categorical accuracy.
"""
import numpy as np

from fastconv.keras import backend
from fastconv.keras.losses import squeeze_or_expand_to_same_rank


class Metric:
    """A state updated batch by batch (``update_state``) and read with ``result()``."""

    # 'up' if larger is better (EarlyStopping's mode='auto' reads it), 'down' otherwise.
    _direction = "up"

    def __init__(self, name=None, dtype=None):
        self.name = name or backend.to_snake_case(type(self).__name__)
        self.dtype = dtype or backend.floatx()
        self.reset_state()

    def reset_state(self):
        raise NotImplementedError

    def update_state(self, *args, **kwargs):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class Mean(Metric):
    """The (weighted) mean of all values seen since the last reset."""

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def update_state(self, values, sample_weight=None):
        """Add ``values`` (a scalar or one value per sample, possibly with more axes) to the mean.
        With ``sample_weight`` (a scalar, or one weight per sample), as Keras's Mean: the values
        are first averaged down to the weights' rank, then weighted; the count grows by the sum
        of the weights."""
        values = np.asarray(values, dtype=np.float64)
        if sample_weight is None:
            self.total += float(values.sum())
            self.count += values.size
            return
        weights = np.asarray(sample_weight, dtype=np.float64)
        if values.ndim == weights.ndim + 1 and values.shape[-1] == 1:
            values = values[..., 0]
        elif weights.ndim == values.ndim + 1 and weights.shape[-1] == 1:
            weights = weights[..., 0]
        if values.ndim > weights.ndim:
            values = values.mean(axis=tuple(range(weights.ndim, values.ndim)))
        try:
            weights = np.broadcast_to(weights, values.shape)
        except ValueError:
            raise ValueError(f"{self.name}: sample_weight of shape {weights.shape} does not match the values of "
                             f"shape {values.shape} (one weight per sample)") from None
        self.total += float(np.sum(values * weights))
        if weights.ndim > 1:
            weights = weights.mean(axis=tuple(range(1, weights.ndim)))
        self.count += float(weights.sum())

    def result(self):
        return self.total / self.count if self.count else 0.0


class MeanMetricWrapper(Mean):
    """The mean of ``fn(y_true, y_pred)`` over every sample seen."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        self._fn = fn
        self._fn_kwargs = kwargs
        super().__init__(name=name or fn.__name__, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(self._fn(np.asarray(y_true), np.asarray(y_pred), **self._fn_kwargs), sample_weight)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return (y_true == (y_pred > threshold).astype(y_true.dtype)).astype(backend.floatx())


def categorical_accuracy(y_true, y_pred):
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(backend.floatx())


def sparse_categorical_accuracy(y_true, y_pred):
    labels = y_true[..., 0] if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1 else y_true
    return (labels.astype(np.float64) == np.argmax(y_pred, axis=-1)).astype(backend.floatx())


def accuracy(y_true, y_pred):
    """Exact equality of targets and predictions (Keras's plain ``Accuracy``)."""
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return (y_true == y_pred).astype(backend.floatx())


def mean_squared_error(y_true, y_pred):
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return np.mean((y_pred - y_true) ** 2, axis=-1)


def mean_absolute_error(y_true, y_pred):
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return np.mean(np.abs(y_pred - y_true), axis=-1)


class BinaryAccuracy(MeanMetricWrapper):
    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        super().__init__(binary_accuracy, name, dtype, threshold=threshold)
        self.threshold = threshold

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


class CategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(categorical_accuracy, name, dtype)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(sparse_categorical_accuracy, name, dtype)


class Accuracy(MeanMetricWrapper):
    def __init__(self, name="accuracy", dtype=None):
        super().__init__(accuracy, name, dtype)


class MeanSquaredError(MeanMetricWrapper):
    _direction = "down"

    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, name, dtype)


class MeanAbsoluteError(MeanMetricWrapper):
    _direction = "down"

    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(mean_absolute_error, name, dtype)


_CLASSES = {cls.__name__: cls for cls in (Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
                                           MeanSquaredError, MeanAbsoluteError, Mean)}
_BY_NAME = {"binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
            "sparse_categorical_accuracy": SparseCategoricalAccuracy, "mean_squared_error": MeanSquaredError,
            "mse": MeanSquaredError, "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError}


def _is_binary_or_sparse(y_true_shape, y_pred_shape):
    """Keras's reading of 'accuracy': (binary?, sparse categorical?)."""
    is_binary = y_pred_shape[-1] == 1
    is_sparse = len(y_true_shape) < len(y_pred_shape) or (y_true_shape[-1] == 1 and y_pred_shape[-1] > 1)
    return is_binary, is_sparse


def get(identifier, y_true_shape=None, y_pred_shape=None):
    """A Metric from a name, a config dict or an instance; 'accuracy' / 'acc' need the shapes of the
    targets and of the output (see the module docstring).  The metric keeps the name it was asked
    by ('acc' is logged as 'acc')."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict):
        cls = _CLASSES.get(identifier.get("class_name"))
        if cls is None:
            raise ValueError(f"Unknown metric in a model configuration: {identifier!r}")
        return cls.from_config(identifier.get("config", {}))
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        is_binary, is_sparse = _is_binary_or_sparse(y_true_shape, y_pred_shape)
        cls = BinaryAccuracy if is_binary else SparseCategoricalAccuracy if is_sparse else CategoricalAccuracy
        return cls(name=identifier)
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower()) or _CLASSES.get(identifier)
        if cls is not None:
            return cls(name=identifier)
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}. fastconv.keras knows "
                     f"{sorted(['accuracy', 'acc', *_BY_NAME])}.")


def check_identifier(identifier):
    """Raise now (at compile) for a metric name that :func:`get` will not know."""
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        return
    get(identifier)


def serialize(metric_or_name):
    if isinstance(metric_or_name, str):
        return metric_or_name
    return {"class_name": type(metric_or_name).__name__, "config": metric_or_name.get_config()}
