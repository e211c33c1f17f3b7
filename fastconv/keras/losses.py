"""Losses and their gradients, as ``keras.losses``.

Every loss computes one value per sample (the mean or sum over the last axis), then reduces them
as Keras does by default, ``sum_over_batch_size``: their mean over the batch.  ``value_and_grad``
also returns the gradient that training back-propagates.

Cross-entropies from probabilities clip them to [epsilon, 1 - epsilon] (epsilon = 1e-7), as
Keras does.  When the model's output comes from a ``sigmoid`` or ``softmax`` activation, Keras on
TensorFlow computes the cross-entropy from that activation's input (the logits) instead, which
never clips; fastconv does the same, so that losses and gradients match Keras's: the trainer
passes those logits as ``logits=``.
"""
import warnings

import numpy as np

from fastconv.keras import backend
from fastconv.keras.activations import sigmoid, softmax


def _logsumexp(z):
    m = np.max(z, axis=-1, keepdims=True)
    return m + np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True))


def _clip(p):
    """Probabilities clipped to [eps, 1 - eps], and where the clip left them unchanged (where its
    derivative is 1; elsewhere it is 0)."""
    eps = p.dtype.type(backend.epsilon())
    lo, hi = eps, p.dtype.type(1) - eps
    return np.clip(p, lo, hi), (p >= lo) & (p <= hi)


def squeeze_or_expand_to_same_rank(y_true, y_pred):
    """Keras's alignment of targets and predictions that differ in rank by a trailing axis of 1:
    y (batch,) with predictions (batch, 1) becomes (batch, 1)."""
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        return (y_true[..., None] if y_true.ndim == 1 else y_true), (y_pred if y_true.ndim == 1 else y_pred[..., 0])
    if y_pred.ndim == y_true.ndim - 1 and y_true.shape[-1] == 1:
        return (y_true if y_pred.ndim == 1 else y_true[..., 0]), (y_pred[..., None] if y_pred.ndim == 1 else y_pred)
    return y_true, y_pred


def _same_shape(name, y_true, y_pred):
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{name}: the targets y and the model's output must have the same shape. "
                         f"Received: y.shape={y_true.shape}, output.shape={y_pred.shape}")


class Loss:
    """A loss: ``loss(y_true, y_pred, sample_weight=None)`` is the reduced value; ``call`` the
    values per sample."""

    # Cross-entropies take the logits of a sigmoid/softmax output (see the module docstring).
    uses_logits = False
    # A cross-entropy with from_logits=True reads the model's output itself as logits.
    from_logits = False

    def __init__(self, name=None, reduction="sum_over_batch_size"):
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: invalid value for argument `reduction`. Expected one of "
                             f"{sorted(r for r in _REDUCTIONS if r)} or None. Received: reduction={reduction!r}")
        self.name = name or backend.to_snake_case(type(self).__name__)
        self.reduction = reduction

    def _per_sample(self, y_true, y_pred, logits, need_grad):
        """(loss per sample, its gradient per element or None, whether that gradient is the one
        of ``logits``, the pre-activation the trainer passed, rather than of ``y_pred``)."""
        raise NotImplementedError

    def call(self, y_true, y_pred):
        y_pred = np.asarray(y_pred)
        if y_pred.dtype.kind != "f":
            y_pred = y_pred.astype(backend.floatx())
        return self._per_sample(np.asarray(y_true), y_pred, None, False)[0]

    def __call__(self, y_true, y_pred, sample_weight=None):
        per_sample = self.call(y_true, y_pred)
        if self.reduction in ("none", None):
            return per_sample if sample_weight is None else per_sample * _weights_like(sample_weight, per_sample)
        return self._reduce(per_sample, sample_weight)[0]

    def _reduce(self, per_sample, sample_weight):
        """(reduced loss, d loss / d per_sample as an array of per_sample's shape), as Keras's
        reduce_weighted_values: the weighted values summed, then divided by their NUMBER for
        'sum_over_batch_size' and 'mean' (not by the sum of the weights: a weight of 0 still
        counts in the denominator), by the sum of the weights for 'mean_with_sample_weight'."""
        dtype = per_sample.dtype
        weights = np.ones_like(per_sample) if sample_weight is None else _weights_like(sample_weight, per_sample)
        total = np.sum(per_sample * weights, dtype=dtype)
        if self.reduction == "sum":
            divisor = 1
        elif self.reduction == "mean_with_sample_weight" and sample_weight is not None:
            divisor = np.sum(weights, dtype=dtype)
        else:
            divisor = per_sample.size
        # divide_no_nan: an empty batch or weights summing to 0 give a loss of 0.
        scale = dtype.type(0) if divisor == 0 else dtype.type(1) / dtype.type(divisor)
        return total * scale, weights * scale

    def value_and_grad(self, y_true, y_pred, logits=None, sample_weight=None):
        """(reduced loss, gradient, whether the gradient is w.r.t. ``logits`` rather than y_pred).

        ``logits`` is the pre-activation of a sigmoid/softmax output layer (or None).  As Keras on
        TensorFlow, a cross-entropy uses them whenever they exist, even with ``from_logits=True``
        (Keras then warns that the output does not represent logits); without them,
        ``from_logits=True`` reads ``y_pred`` itself as the logits."""
        if self.reduction in ("none", None):
            raise ValueError(f"{self.name}: a loss with reduction='none' cannot be trained on")
        logits = logits if self.uses_logits else None
        if logits is not None and self.from_logits:
            activation = "Sigmoid" if isinstance(self, BinaryCrossentropy) else "Softmax"
            warnings.warn(f'"`{self.name}` received `from_logits=True`, but the `output` argument was produced by a '
                          f"{activation} activation and thus does not represent logits. Was this intended?",
                          UserWarning, stacklevel=4)
        per_sample, grad, wrt_logits = self._per_sample(np.asarray(y_true), y_pred, logits, True)
        value, d_per_sample = self._reduce(per_sample, sample_weight)
        # Every loss reduces the last axis of its elementwise gradient into one value per sample.
        grad = grad * d_per_sample[..., None]
        # Back to the shape of what it differentiates (the rank alignment may have dropped an axis of 1).
        grad = grad.reshape(np.shape(logits) if wrt_logits else np.shape(y_pred))
        return float(value), grad, wrt_logits

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


_REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


def _weights_like(sample_weight, per_sample):
    """Sample weights (one per sample, or one per entry of ``per_sample``) broadcast to the shape
    of ``per_sample`` in its dtype; a trailing axis of 1 ((batch, 1) weights) is dropped."""
    w = np.asarray(sample_weight, dtype=per_sample.dtype)
    if w.ndim == per_sample.ndim + 1 and w.shape[-1] == 1:
        w = w[..., 0]
    if w.ndim > per_sample.ndim or w.shape != per_sample.shape[:w.ndim]:
        raise ValueError(f"sample_weight must have one weight per sample (shape {per_sample.shape[:1]}) or per loss "
                         f"value (shape {per_sample.shape}). Received: sample_weight.shape={w.shape}")
    return np.broadcast_to(w.reshape(w.shape + (1,) * (per_sample.ndim - w.ndim)), per_sample.shape)


class _DenseTargetCrossentropy(Loss):
    """The arguments shared by the cross-entropies whose targets have the output's shape."""

    uses_logits = True

    def __init__(self, from_logits, label_smoothing, axis, reduction, name):
        super().__init__(name, reduction)
        if axis != -1:
            raise ValueError(f"{type(self).__name__}: only axis=-1 is implemented. Received: axis={axis}")
        self.from_logits, self.label_smoothing, self.axis = bool(from_logits), float(label_smoothing), axis

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits, "label_smoothing": self.label_smoothing,
                "axis": self.axis}


class BinaryCrossentropy(_DenseTargetCrossentropy):
    """-(y log p + (1 - y) log(1 - p)), averaged over the last axis."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="binary_crossentropy"):
        super().__init__(from_logits, label_smoothing, axis, reduction, name)

    def _per_sample(self, y_true, y_pred, logits, need_grad):
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        _same_shape(self.name, y_true, y_pred)
        y = y_true.astype(y_pred.dtype, copy=False)
        if self.label_smoothing:
            y = y * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        z = logits if logits is not None else (y_pred if self.from_logits else None)
        k = y.shape[-1]
        if z is not None:
            z = z.reshape(y.shape)
            # log(1 + exp(-|z|)) + max(z, 0) - z y: the stable form of the cross-entropy of sigmoid(z).
            loss = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
            grad = (sigmoid(z) - y) / k if need_grad else None
            return loss.mean(axis=-1), grad, logits is not None
        p, inside = _clip(y_pred)
        loss = -(y * np.log(p) + (1 - y) * np.log(1 - p))
        grad = ((1 - y) / (1 - p) - y / p) * inside / k if need_grad else None
        return loss.mean(axis=-1), grad, False


class CategoricalCrossentropy(_DenseTargetCrossentropy):
    """-sum(y log p) over the last axis, for one-hot targets y."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="categorical_crossentropy"):
        super().__init__(from_logits, label_smoothing, axis, reduction, name)

    def _per_sample(self, y_true, y_pred, logits, need_grad):
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        _same_shape(self.name, y_true, y_pred)
        if y_pred.ndim < 1 or y_pred.shape[-1] < 2:
            raise ValueError(f"{self.name}: the model's output must have one column per class (at least 2); "
                             f"received output.shape={y_pred.shape}")
        y = y_true.astype(y_pred.dtype, copy=False)
        if self.label_smoothing:
            y = y * (1 - self.label_smoothing) + self.label_smoothing / y.shape[-1]
        z = logits if logits is not None else (y_pred if self.from_logits else None)
        if z is not None:
            loss = -np.sum(y * (z - _logsumexp(z)), axis=-1)
            # The gradient of TensorFlow's softmax_cross_entropy_with_logits: softmax(z) - y.
            return loss, (softmax(z) - y if need_grad else None), logits is not None
        total = np.sum(y_pred, axis=-1, keepdims=True)
        q, inside = _clip(y_pred / total)
        loss = -np.sum(y * np.log(q), axis=-1)
        if not need_grad:
            return loss, None, False
        # Through the clip and the normalisation q = p / sum(p).
        d_q = -y / q * inside
        grad = (d_q - np.sum(d_q * (y_pred / total), axis=-1, keepdims=True)) / total
        return loss, grad, False


class SparseCategoricalCrossentropy(Loss):
    """-log p[label]: categorical cross-entropy for integer labels (batch,) or (batch, 1)."""

    uses_logits = True

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 name="sparse_categorical_crossentropy"):
        super().__init__(name, reduction)
        if ignore_class is not None:
            raise ValueError(f"{type(self).__name__}: ignore_class is not implemented; pass None")
        self.from_logits = bool(from_logits)
        self.ignore_class = None

    def _per_sample(self, y_true, y_pred, logits, need_grad):
        labels = y_true
        if labels.ndim == y_pred.ndim and labels.shape[-1] == 1:
            labels = labels[..., 0]
        if labels.shape != y_pred.shape[:-1]:
            raise ValueError(f"{self.name}: the labels must have the shape of the model's output without its last "
                             f"(class) axis. Received: y.shape={y_true.shape}, output.shape={y_pred.shape}")
        if labels.dtype.kind == "f" and not np.all(labels == np.floor(labels)):
            raise ValueError(f"{self.name}: the labels must be integers (class indices); received non-integer values")
        labels = labels.astype(np.int64)
        n_classes = y_pred.shape[-1]
        if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
            bad = labels.min() if labels.min() < 0 else labels.max()
            raise ValueError(f"{self.name}: received a label value of {bad} which is outside the valid range "
                             f"of [0, {n_classes}) given by the model's output (shape {y_pred.shape}). "
                             "One-hot targets need loss='categorical_crossentropy'.")
        one_hot = labels[..., None] == np.arange(n_classes)
        if self.from_logits or logits is not None:
            z, inside, p = (logits if logits is not None else y_pred), None, None
        else:
            # As Keras: the log of the clipped probabilities is taken as logits.
            p, inside = _clip(y_pred)
            z = np.log(p)
        loss = (_logsumexp(z)[..., 0] - np.take_along_axis(z, labels[..., None], axis=-1)[..., 0])
        if not need_grad:
            return loss, None, logits is not None
        d_z = softmax(z) - one_hot
        if p is None:
            return loss, d_z, logits is not None
        return loss, d_z / p * inside, False

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits, "ignore_class": self.ignore_class}


class MeanSquaredError(Loss):
    """mean((y - p)^2) over the last axis."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error"):
        super().__init__(name, reduction)

    def _per_sample(self, y_true, y_pred, logits, need_grad):
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        _same_shape(self.name, y_true, y_pred)
        diff = y_pred - y_true.astype(y_pred.dtype, copy=False)
        grad = 2 * diff / diff.shape[-1] if need_grad else None
        return np.mean(diff * diff, axis=-1), grad, False


class MeanAbsoluteError(Loss):
    """mean(|y - p|) over the last axis."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error"):
        super().__init__(name, reduction)

    def _per_sample(self, y_true, y_pred, logits, need_grad):
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        _same_shape(self.name, y_true, y_pred)
        diff = y_pred - y_true.astype(y_pred.dtype, copy=False)
        grad = np.sign(diff) / diff.shape[-1] if need_grad else None
        return np.mean(np.abs(diff), axis=-1), grad, False


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    return BinaryCrossentropy(from_logits, label_smoothing, axis, reduction="none").call(y_true, y_pred)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    return CategoricalCrossentropy(from_logits, label_smoothing, axis, reduction="none").call(y_true, y_pred)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    return SparseCategoricalCrossentropy(from_logits, reduction="none").call(y_true, y_pred)


def mean_squared_error(y_true, y_pred):
    return MeanSquaredError(reduction="none").call(y_true, y_pred)


def mean_absolute_error(y_true, y_pred):
    return MeanAbsoluteError(reduction="none").call(y_true, y_pred)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error

_CLASSES = {cls.__name__: cls for cls in (BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy,
                                           MeanSquaredError, MeanAbsoluteError)}
_BY_NAME = {"binary_crossentropy": BinaryCrossentropy, "categorical_crossentropy": CategoricalCrossentropy,
            "sparse_categorical_crossentropy": SparseCategoricalCrossentropy, "mean_squared_error": MeanSquaredError,
            "mse": MeanSquaredError, "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError}
_FUNCTIONS = {binary_crossentropy: BinaryCrossentropy, categorical_crossentropy: CategoricalCrossentropy,
              sparse_categorical_crossentropy: SparseCategoricalCrossentropy, mean_squared_error: MeanSquaredError,
              mean_absolute_error: MeanAbsoluteError}


def get(identifier):
    """A Loss from a name ('binary_crossentropy', 'mse', 'BinaryCrossentropy'), a config dict, a
    Loss instance or one of the loss functions of this module."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    cls = None
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower()) or _CLASSES.get(identifier)
    elif callable(identifier):
        cls = _FUNCTIONS.get(identifier) or _BY_NAME.get(getattr(identifier, "__name__", None))
    if cls is None:
        raise ValueError(f"Could not interpret loss identifier: {identifier!r}. fastconv.keras knows "
                         f"{sorted(set(_BY_NAME) | set(_CLASSES))}.")
    return cls()


def serialize(loss):
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(config):
    cls = _CLASSES.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"Unknown loss in a model configuration: {config!r}")
    return cls.from_config(config.get("config", {}))
