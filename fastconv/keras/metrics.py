"""Metrics, as ``keras.metrics``: running means over an epoch.

``metrics=['accuracy']`` is resolved as Keras resolves it, from the shapes of the targets and
of the model's output: one output column -> binary accuracy (threshold 0.5); integer labels with
one column less than the output (or a last axis of 1) -> sparse categorical accuracy; otherwise
categorical accuracy.
"""
import numpy as np

from fastconv.keras import backend
from fastconv.keras import losses as losses_module
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


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1 where the target class (one-hot) is among the k highest predictions: as TensorFlow's
    in_top_k, a class tied at the boundary counts as in (fewer than k classes score higher)."""
    return sparse_top_k_categorical_accuracy(np.argmax(y_true, axis=-1), y_pred, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    labels = y_true[..., 0] if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1 else y_true
    labels = labels.astype(np.int64)
    target_score = np.take_along_axis(y_pred, labels[..., None], axis=-1)
    higher = np.sum(y_pred > target_score, axis=-1)
    return (higher < k).astype(backend.floatx())


class TopKCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(top_k_categorical_accuracy, name, dtype, k=k)
        self.k = k

    def get_config(self):
        return {**super().get_config(), "k": self.k}


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None):
        super().__init__(sparse_top_k_categorical_accuracy, name, dtype, k=k)
        self.k = k

    def get_config(self):
        return {**super().get_config(), "k": self.k}


def _loss_metric(loss_name, loss_fn, direction="down"):
    """The metric of a loss: its per-sample values averaged over the epoch (Keras's
    ``metrics.BinaryCrossentropy`` and the like), with the loss's own arguments."""
    def __init__(self, name=loss_name, dtype=None, **kwargs):
        MeanMetricWrapper.__init__(self, loss_fn, name, dtype, **kwargs)

    def get_config(self):
        return {**Metric.get_config(self), **self._fn_kwargs}

    class_name = "".join(part.capitalize() for part in loss_name.split("_"))
    return type(class_name, (MeanMetricWrapper,), {"__init__": __init__, "get_config": get_config,
                                                    "_direction": direction, "__doc__": _loss_metric.__doc__})


BinaryCrossentropy = _loss_metric("binary_crossentropy", losses_module.binary_crossentropy)
CategoricalCrossentropy = _loss_metric("categorical_crossentropy", losses_module.categorical_crossentropy)
SparseCategoricalCrossentropy = _loss_metric("sparse_categorical_crossentropy",
                                             losses_module.sparse_categorical_crossentropy)


class RootMeanSquaredError(Mean):
    """sqrt of the mean squared error over every value seen (not the mean of per-batch roots)."""
    _direction = "down"

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = squeeze_or_expand_to_same_rank(np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64))
        super().update_state((y_pred - y_true) ** 2, sample_weight)

    def result(self):
        return float(np.sqrt(super().result()))


# -------------------------------------------------------------------- confusion-matrix metrics
def _divide_no_nan(a, b):
    return np.divide(a, b, out=np.zeros_like(np.asarray(a, dtype=np.float64)), where=np.asarray(b) != 0)


def _thresholds(thresholds, default, owner):
    values = [default] if thresholds is None else list(np.atleast_1d(thresholds).astype(float))
    if thresholds is not None and not all(0 <= t <= 1 for t in values):
        raise ValueError(f"{owner}: threshold values must be in [0, 1]. Received: {values}")
    return np.array(values, dtype=np.float64)


def confusion_counts(y_true, y_pred, thresholds, sample_weight=None, top_k=None, class_id=None):
    """(true positives, false positives, true negatives, false negatives), one per threshold, as
    Keras's ``update_confusion_matrix_variables``: every entry of ``y_pred`` is a prediction,
    positive where it is above the threshold; its label is the entry of ``y_true`` cast to bool;
    ``top_k`` keeps only the k highest predictions of each row positive; ``class_id`` keeps one
    column.  Sample weights weigh the rows."""
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    y_pred, y_true = squeeze_or_expand_to_same_rank(y_pred, y_true)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"the targets (shape {y_true.shape}) and the predictions (shape {y_pred.shape}) must "
                         "have the same shape")
    weights = np.ones_like(y_pred) if sample_weight is None else np.asarray(sample_weight, np.float64)
    if weights.ndim == y_pred.ndim - 1:
        weights = weights[..., None]
    weights = np.broadcast_to(weights, y_pred.shape)
    if top_k is not None:
        # The k highest predictions of each row stay (ties to the lower index, as top_k), the
        # others never count as positive.
        rank = np.argsort(np.argsort(-y_pred, axis=-1, kind="stable"), axis=-1, kind="stable")
        y_pred = np.where(rank < top_k, y_pred, -np.inf)
    if class_id is not None:
        if y_pred.ndim == 1:
            raise ValueError("When class_id is provided, y_pred must be a 2D array with shape (num_samples, "
                             f"num_classes), found shape: {y_pred.shape}")
        y_true, y_pred, weights = y_true[..., class_id], y_pred[..., class_id], weights[..., class_id]
    labels, preds, weights = y_true.astype(bool).ravel(), y_pred.ravel(), weights.ravel()
    counts = np.zeros((4, len(thresholds)))
    for start in range(0, preds.size, 65536):      # bounded memory: thresholds x 64k entries at a time
        p, lab, w = preds[start:start + 65536], labels[start:start + 65536], weights[start:start + 65536]
        above = p[None, :] > thresholds[:, None]
        counts[0] += np.sum(above * (w * lab), axis=1)
        counts[1] += np.sum(above * (w * ~lab), axis=1)
        counts[2] += np.sum(~above * (w * ~lab), axis=1)
        counts[3] += np.sum(~above * (w * lab), axis=1)
    return counts


class _ConfusionMetric(Metric):
    """Counts of the confusion matrix at thresholds, accumulated over the epoch."""

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None, default_threshold=0.5):
        self.init_thresholds = thresholds
        self.top_k, self.class_id = top_k, class_id
        owner = type(self).__name__
        if top_k is not None and (not isinstance(top_k, (int, np.integer)) or top_k < 1):
            raise ValueError(f"{owner}: top_k must be a positive integer. Received: top_k={top_k!r}")
        self.thresholds = _thresholds(thresholds, -np.inf if top_k is not None else default_threshold, owner)
        super().__init__(name=name or backend.auto_name(owner), dtype=dtype)

    def reset_state(self):
        self.counts = np.zeros((4, len(self.thresholds)))

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.counts += confusion_counts(y_true, y_pred, self.thresholds, sample_weight, self.top_k, self.class_id)

    def _one_or_all(self, values):
        return float(values[0]) if len(self.thresholds) == 1 else values

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds}


def _count_metric(class_name, row):
    def result(self):
        return self._one_or_all(self.counts[row])

    def __init__(self, thresholds=None, name=None, dtype=None):
        _ConfusionMetric.__init__(self, thresholds=thresholds, name=name, dtype=dtype)

    return type(class_name, (_ConfusionMetric,), {"__init__": __init__, "result": result,
                                                  "__doc__": f"The weighted count of {class_name} at thresholds."})


TruePositives = _count_metric("TruePositives", 0)
FalsePositives = _count_metric("FalsePositives", 1)
TrueNegatives = _count_metric("TrueNegatives", 2)
FalseNegatives = _count_metric("FalseNegatives", 3)


class Precision(_ConfusionMetric):
    """TP / (TP + FP) at each threshold (0.5 by default), 0 when nothing is predicted positive."""

    def result(self):
        tp, fp = self.counts[0], self.counts[1]
        return self._one_or_all(_divide_no_nan(tp, tp + fp))

    def get_config(self):
        return {**super().get_config(), "top_k": self.top_k, "class_id": self.class_id}


class Recall(_ConfusionMetric):
    """TP / (TP + FN) at each threshold (0.5 by default), 0 when no label is positive."""

    def result(self):
        tp, fn = self.counts[0], self.counts[3]
        return self._one_or_all(_divide_no_nan(tp, tp + fn))

    def get_config(self):
        return {**super().get_config(), "top_k": self.top_k, "class_id": self.class_id}


class AUC(_ConfusionMetric):
    """The area under the ROC (default) or precision-recall curve, as Keras approximates it: the
    confusion matrix at ``num_thresholds`` thresholds evenly spaced in [0, 1] (plus -eps and
    1 + eps), the curve's points joined by trapezoids ('interpolation'; for PR, Davis &
    Goadrich's interpolation of precision), or by the smaller / larger of the two heights
    ('minoring' / 'majoring')."""

    CURVES = ("ROC", "PR")
    SUMMATIONS = ("interpolation", "minoring", "majoring")

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name=None, dtype=None,
                 thresholds=None, multi_label=False, num_labels=None, label_weights=None, from_logits=False):
        if str(curve).upper() not in self.CURVES:
            raise ValueError(f'Invalid `curve` argument value "{curve}". Expected one of: {list(self.CURVES)} '
                             "(fastconv.keras has no PRGAIN)")
        if str(summation_method).lower() not in self.SUMMATIONS:
            raise ValueError(f'Invalid `summation_method` argument value "{summation_method}". Expected one of: '
                             f"{list(self.SUMMATIONS)}")
        if multi_label or num_labels is not None or label_weights is not None:
            raise ValueError("AUC: multi_label, num_labels and label_weights are not supported by fastconv.keras "
                             "(one AUC over every entry, Keras's default)")
        if thresholds is None:
            if num_thresholds <= 1:
                raise ValueError(f"Argument `num_thresholds` must be an integer > 1. Received: "
                                 f"num_thresholds={num_thresholds}")
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        else:
            inner = sorted(float(t) for t in np.atleast_1d(thresholds))
            num_thresholds = len(inner) + 2
        self.num_thresholds = num_thresholds
        self.curve, self.summation_method = str(curve).upper(), str(summation_method).lower()
        self.multi_label, self.num_labels, self.label_weights = False, None, None
        self._from_logits, self._init_from_thresholds = from_logits, thresholds is not None
        eps = backend.epsilon()
        super().__init__(thresholds=[0.0] + inner + [1.0], name=name, dtype=dtype)
        self.thresholds = np.array([0.0 - eps] + inner + [1.0 + eps])
        self.reset_state()

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = np.asarray(y_pred, np.float64)
        if self._from_logits:
            y_pred = 1 / (1 + np.exp(-y_pred))
        super().update_state(y_true, y_pred, sample_weight)

    def _interpolated_pr_auc(self):
        tp, fp, fn = self.counts[0], self.counts[1], self.counts[3]
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = _divide_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = np.where(both, _divide_no_nan(p[:-1], np.maximum(p[1:], 0)), 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = np.where(ratio > 0, np.log(np.where(ratio > 0, ratio, 1.0)), 0.0)
        return float(np.sum(_divide_no_nan(slope * (dtp + intercept * log_ratio), np.maximum(tp[1:] + fn[1:], 0))))

    def result(self):
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolated_pr_auc()
        tp, fp, tn, fn = self.counts
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        else:
            x, y = recall, _divide_no_nan(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return float(np.sum((x[:-1] - x[1:]) * heights))

    def get_config(self):
        config = {**Metric.get_config(self), "num_thresholds": self.num_thresholds, "curve": self.curve,
                  "summation_method": self.summation_method, "multi_label": False, "num_labels": None,
                  "label_weights": None, "from_logits": self._from_logits}
        if self._init_from_thresholds:
            config["thresholds"] = list(self.thresholds[1:-1])
        return config


_CLASSES = {cls.__name__: cls for cls in (
    Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy, MeanSquaredError, MeanAbsoluteError, Mean,
    TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, BinaryCrossentropy, CategoricalCrossentropy,
    SparseCategoricalCrossentropy, RootMeanSquaredError, TruePositives, FalsePositives, TrueNegatives, FalseNegatives,
    Precision, Recall, AUC)}
_BY_NAME = {"binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
            "sparse_categorical_accuracy": SparseCategoricalAccuracy, "mean_squared_error": MeanSquaredError,
            "mse": MeanSquaredError, "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
            "top_k_categorical_accuracy": TopKCategoricalAccuracy,
            "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
            "binary_crossentropy": BinaryCrossentropy, "categorical_crossentropy": CategoricalCrossentropy,
            "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
            "root_mean_squared_error": RootMeanSquaredError, "auc": AUC, "precision": Precision, "recall": Recall,
            "true_positives": TruePositives, "false_positives": FalsePositives, "true_negatives": TrueNegatives,
            "false_negatives": FalseNegatives}


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
