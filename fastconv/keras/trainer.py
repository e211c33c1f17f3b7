"""compile, fit, evaluate and predict: the training loop of a model (Keras's Trainer).

One training step: the forward pass through the graph keeping each layer's cache, the loss of
every output (weighted by ``sample_weight`` / ``class_weight`` as Keras 3 does, then by
``loss_weights``) plus the regularization penalties of the layers, the gradients, the backward
pass, one optimizer update followed by the weights' constraints, then the running means of the
loss and metrics (the ``logs`` that callbacks and the progress bar see).

Logged names are Keras 3's: ``loss`` (the total: weighted output losses plus penalties), and for a
model with several outputs ``<output>_loss`` (each output's unweighted loss) and
``<output>_<metric>``; ``weighted_<metric>`` when a metric is both in ``metrics`` and
``weighted_metrics``; ``val_`` before each for the validation data.

Ctrl-C (SIGINT) during ``fit``: the training step under way is finished (its update is applied
to every weight and to the optimizer state, or, if the interrupt came before the update, the
step is completed all the same: a step is never left half-applied), then ``on_train_end`` runs
(CSVLogger closes its file, EarlyStopping restores its weights...), ``model.history`` holds the
epochs completed so far, and the KeyboardInterrupt is raised again, as Keras raises it.
"""
import contextlib
import math
import signal
import threading
import warnings
from typing import NamedTuple, Optional

import numpy as np

from fastconv.keras import callbacks as callbacks_module
from fastconv.keras import losses as losses_module
from fastconv.keras import metrics as metrics_module
from fastconv.keras import optimizers as optimizers_module
from fastconv.keras.data import (
    ArraySource,
    EpochIterator,
    IterableSource,
    SequenceSource,
    Standardizer,
    check_class_weight,
    class_weight_to_sample_weight,
    is_batch_source,
    is_py_dataset,
    is_sequence,
    source_kind,
    validation_split_arrays,
)


class OutputLoss(NamedTuple):
    """The loss of one model output: the Loss (None: this output is not trained), its weight in
    the total (None: 1) and the name Keras logs it under (``<name>_loss``)."""
    loss: Optional[losses_module.Loss]
    weight: Optional[float]
    name: str


class OutputMetric(NamedTuple):
    metric: metrics_module.Metric
    output: int      # index of the model output it watches
    weighted: bool   # from weighted_metrics: updated with the sample weights
    log_name: str


def _flat_identifiers(value):
    if value is None:
        return []
    if isinstance(value, dict):
        return [m for v in value.values() for m in _flat_identifiers(v)]
    if isinstance(value, (list, tuple)):
        return [m for v in value for m in _flat_identifiers(v)]
    return [value]


def _has_regularizer(layer):
    """Whether a layer (or a layer it holds, or a model's layer) has a weight or activity
    regularizer, or a call() that may add_loss(), i.e. may have ``losses``."""
    if getattr(layer, "activity_regularizer", None) is not None or layer._traced_kind() or \
            any(getattr(w, "regularizer", None) is not None for w in layer.weights):
        return True
    inner = layer.layers if isinstance(layer, Trainer) else layer._sublayers()
    return any(_has_regularizer(sub) for sub in inner)


def _resolve_losses(loss):
    """The loss argument of compile with every identifier resolved, in its structure."""
    if isinstance(loss, dict):
        return {k: None if v is None else losses_module.get(v) for k, v in loss.items()}
    if isinstance(loss, (list, tuple)):
        return [None if v is None else losses_module.get(v) for v in loss]
    return None if loss is None else losses_module.get(loss)


class _InterruptGuard:
    """Defers Ctrl-C (SIGINT) while a training step runs: the handler installed for the duration
    of ``fit`` only notes a signal that arrives inside :meth:`step`, and hands it to the previous
    handler (Python's, which raises KeyboardInterrupt) as soon as the step is complete.  Only
    the main thread can install handlers; elsewhere (where SIGINT is never delivered anyway)
    the guard does nothing."""

    def __init__(self):
        self._previous = None
        self._in_step = False
        self._pending = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if callable(previous):
                self._previous = previous
                signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        return False

    def _handler(self, signum, frame):
        if self._in_step:
            self._pending = (signum, frame)
        else:
            self._previous(signum, frame)

    @contextlib.contextmanager
    def step(self):
        self._in_step = True
        try:
            yield
        finally:
            self._in_step = False
            pending, self._pending = self._pending, None
            if pending is not None:
                self._previous(*pending)


class Trainer:
    """Mixed into Model: needs ``self._graph_for(shape)``, ``self.dtype`` and the weights API."""

    def _init_trainer(self):
        self.compiled = False
        self.optimizer = None
        self.loss = None
        self.loss_weights = None
        self._metric_identifiers = []
        self._weighted_metric_identifiers = []
        self._output_losses = None     # resolved at the first batch, from the outputs
        self._output_metrics = None
        self._output_loss_trackers = []
        self._loss_tracker = None
        self.stop_training = False
        self.history = None

    # ---------------------------------------------------------------------------------- compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True):
        """Set the optimizer, the loss(es) and the metrics.  ``loss``, ``loss_weights``,
        ``metrics`` and ``weighted_metrics`` may be one entry per output (a list in the order of
        the outputs, or a dict keyed by output name).  ``run_eagerly``, ``jit_compile`` and
        ``auto_scale_loss`` are accepted and mean nothing here (fastconv always runs eagerly)."""
        if steps_per_execution != 1:
            raise ValueError("compile: steps_per_execution must be 1 in fastconv.keras")
        if loss_weights is not None and (isinstance(loss_weights, bool) or
                                         not isinstance(loss_weights, (list, tuple, dict, int, float))):
            raise ValueError("Expected `loss_weights` argument to be a float (single output case) or a list, tuple, or "
                             f"dict (multiple output case). Received instead: loss_weights={loss_weights} of type "
                             f"{type(loss_weights)}")
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = _resolve_losses(loss)
        self.loss_weights = loss_weights
        self._metric_identifiers = self._checked_metrics(metrics, "metrics")
        self._weighted_metric_identifiers = self._checked_metrics(weighted_metrics, "weighted_metrics")
        self._output_losses = None
        self._output_metrics = None
        self._output_loss_trackers = []
        self._loss_tracker = metrics_module.Mean(name="loss")
        self.compiled = True

    @staticmethod
    def _checked_metrics(metrics, argument):
        if metrics is None:
            return []
        if isinstance(metrics, (str, metrics_module.Metric)) or not hasattr(metrics, "__iter__"):
            metrics = [metrics]
        for m in _flat_identifiers(metrics):
            metrics_module.check_identifier(m)
        return metrics if isinstance(metrics, dict) else list(metrics)

    def get_compile_config(self):
        """The arguments of compile (serialized), as saving stores them."""
        if not self.compiled:
            return None

        def loss_config(value):
            if isinstance(value, dict):
                return {k: loss_config(v) for k, v in value.items()}
            if isinstance(value, list):
                return [loss_config(v) for v in value]
            return None if value is None else losses_module.serialize(value)

        def metric_config(value):
            if isinstance(value, dict):
                return {k: metric_config(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [metric_config(v) for v in value]
            return None if value is None else metrics_module.serialize(value)

        return {"optimizer": optimizers_module.serialize(self.optimizer), "loss": loss_config(self.loss),
                "loss_weights": self.loss_weights, "metrics": metric_config(self._metric_identifiers),
                "weighted_metrics": metric_config(self._weighted_metric_identifiers)}

    def compile_from_config(self, config):
        def metric(value):
            if isinstance(value, dict) and "class_name" not in value:
                return {k: metric(v) for k, v in value.items()}
            if isinstance(value, list):
                return [metric(v) for v in value]
            return value if value is None or isinstance(value, str) else metrics_module.get(value)

        self.compile(optimizer=optimizers_module.deserialize(config["optimizer"]), loss=config.get("loss"),
                     loss_weights=config.get("loss_weights"), metrics=metric(config.get("metrics")),
                     weighted_metrics=metric(config.get("weighted_metrics")))

    @property
    def metrics(self):
        """The loss tracker, the per-output loss trackers and the compiled metrics (once resolved)."""
        if not self.compiled:
            return []
        return [self._loss_tracker] + self._output_loss_trackers + [m.metric for m in self._output_metrics or []]

    @property
    def metrics_names(self):
        return list(self._log_values())

    def reset_metrics(self):
        for m in self.metrics:
            m.reset_state()

    def _check_compiled(self, fn):
        if not self.compiled:
            raise RuntimeError(f"{fn}: you must compile your model before training/testing. Use "
                               "`model.compile(optimizer, loss)`.")
        if self.loss is None:
            raise ValueError(f"{fn}: the model was compiled without a loss; pass loss=... to compile")

    # ------------------------------------------------------------------------- names and outputs
    def _input_names(self):
        return [t._keras_history[0].name for t in self.inputs] or [None]

    def _output_names(self):
        """The names that the targets, losses, metrics and logs of the outputs go by: the keys of
        a model built with a dict of outputs, else the output layers' names."""
        keys = vars(self).get("_output_dict_keys")
        return sorted(keys) if keys else [t._keras_history[0].name for t in self.outputs] or [None]

    def _structured(self, outputs, keep_list=False):
        """The outputs (a list, in the model's order) as the model returns them: a dict for a
        model built with a dict of outputs (in that dict's order), else the one array or the
        list (a list of one too with ``keep_list``)."""
        keys = vars(self).get("_output_dict_keys")
        if keys:
            by_key = dict(zip(sorted(keys), outputs))
            return {k: by_key[k] for k in keys}
        return outputs[0] if len(outputs) == 1 and not keep_list else outputs

    def _output_layer(self, index=0):
        return self.outputs[index]._keras_history[0]

    def _build_compiled(self, ys, y_preds):
        """Resolve losses and metrics per output at the first batch (Keras's CompileLoss and
        CompileMetrics .build): 'accuracy' needs the shapes of the targets and outputs."""
        if self._output_losses is not None:
            return
        names = self._output_names()
        n = len(names)
        loss = self.loss
        if isinstance(loss, dict):
            if set(loss) != set(names):
                raise ValueError(f"Expected keys {names} in loss dict, but found loss.keys()={list(loss)}")
            per_output = [loss[k] for k in names]
        elif isinstance(loss, list):
            if len(loss) != n:
                raise ValueError(f"compile: `loss` is a list of {len(loss)} losses, but the model has {n} output(s) "
                                 f"{names}: pass one loss per output (None for an output without loss)")
            per_output = loss
        else:
            per_output = [loss] * n
        weights = self.loss_weights
        if weights is None or isinstance(weights, (int, float)):
            per_weight = [None if weights is None else float(weights)] * n
        elif isinstance(weights, dict):
            unknown = [k for k in weights if k not in names]
            if unknown:
                raise ValueError(f"compile: loss_weights has keys {unknown} that are not output names {names}")
            per_weight = [None if weights.get(k) is None else float(weights[k]) for k in names]
        else:
            if len(weights) != n:
                raise ValueError(f"`loss_weights` must match the number of losses, got {n} losses and "
                                 f"{len(weights)} weights.")
            per_weight = [None if w is None else float(w) for w in weights]
        self._output_losses = [OutputLoss(lo, w, name if n > 1 else (lo.name if lo is not None else name))
                               for lo, w, name in zip(per_output, per_weight, names)]
        if all(entry.loss is None for entry in self._output_losses):
            raise ValueError("compile: every output's loss is None: there is nothing to train")
        # The layers with a regularizer somewhere (their losses are read at every step).
        self._penalized_layers = [layer for layer in self.layers if _has_regularizer(layer)]
        trained = [entry for entry in self._output_losses if entry.loss is not None]
        # Keras tracks each output's loss only when there are several.
        self._output_loss_trackers = ([metrics_module.Mean(name=f"{e.name}_loss") for e in trained]
                                      if len(trained) > 1 else [])

        self._output_metrics = []
        used = {}
        for weighted, identifiers, argument in ((False, self._metric_identifiers, "metrics"),
                                                (True, self._weighted_metric_identifiers, "weighted_metrics")):
            for i, ids in enumerate(self._metrics_per_output(identifiers, names, argument)):
                if ys[i] is None:
                    continue
                for identifier in ids:
                    metric = metrics_module.get(identifier, ys[i].shape, y_preds[i].shape)
                    self._output_metrics.append(OutputMetric(metric, i, weighted,
                                                             self._metric_log_name(metric, names, i, weighted, used)))

    @staticmethod
    def _metrics_per_output(identifiers, names, argument):
        n = len(names)
        if not identifiers:
            return [[] for _ in names]
        if n == 1:
            return [_flat_identifiers(identifiers)]
        if isinstance(identifiers, (list, tuple)) and len(identifiers) == n:
            per_output = list(identifiers)
        elif isinstance(identifiers, dict) and set(identifiers) <= set(names):
            per_output = [identifiers.get(k) for k in names]
        else:
            raise ValueError(f"Invalid `{argument}`. `{argument}` should contain metrics objects and either be a dict "
                             f"or a list matching the output names of the functional model {names} or match the "
                             f"output structure of the model: {['X'] * n}.\nReceived: {argument}={identifiers}")
        return [_flat_identifiers(ids) for ids in per_output]

    @staticmethod
    def _metric_log_name(metric, names, i, weighted, used):
        """Keras's CompileMetrics.result naming: ``<output>_<metric>`` with several outputs,
        ``_1``, ``_2``... for repeats, ``weighted_<metric>`` for a weighted repeat."""
        prefix = f"{names[i]}_" if len(names) > 1 else ""
        name = prefix + metric.name
        if name not in used:
            used[name] = 1
            return name
        if weighted:
            name = f"{prefix}weighted_{metric.name}"
            if name not in used:
                used[name] = 1
                return name
        index = used[name]
        used[name] += 1
        return f"{name}_{index}"

    def _log_values(self):
        """Loss, per-output losses, then metrics, in Keras's order (evaluate's list)."""
        if not self.compiled:
            return {}
        values = {"loss": float(self._loss_tracker.result())}
        for tracker in self._output_loss_trackers:
            values[tracker.name] = float(tracker.result())
        for m in self._output_metrics or []:
            values[m.log_name] = float(m.metric.result())
        return values

    def _logs(self):
        return dict(sorted(self._log_values().items()))

    # ------------------------------------------------------------------------------- one batch
    def _loss_and_grad(self, entry, index, y, y_pred, logits, sample_weight, fn):
        try:
            return entry.loss.value_and_grad(y, y_pred, logits, sample_weight)
        except ValueError as exc:
            layer = self._output_layer(index)
            hint = ""
            if y_pred.ndim > 2 and y.ndim <= 2:
                hint = (f" Layer \"{layer.name}\" ({type(layer).__name__}) gives {y_pred.ndim}-D outputs: a Dense "
                        "layer on a 4-D tensor acts on its last axis only and keeps the spatial axes. Add Flatten() "
                        "(or GlobalAveragePooling2D()) before it.")
            raise ValueError(f"{fn}: the loss cannot compare y (shape {y.shape}) with the output of layer "
                             f'"{layer.name}" ({type(layer).__name__}, shape {y_pred.shape}): {exc}.{hint}') from None

    @property
    def losses(self):
        """The penalties of the model's layers (weight regularizers at the weights' current
        values, activity regularizers of the last call), as Keras's ``model.losses``."""
        return list(vars(self).get("_added_losses", ())) + [loss for layer in self.layers for loss in layer.losses]

    def _forward_and_loss(self, xs, ys, sws, training, fn):
        """(graph, outputs, tape, total loss (with the layers' penalties), per-output gradients,
        whether each is w.r.t. logits, unweighted loss per trained output)."""
        graph = self._graph_for(xs[0].shape)
        if ys is None:
            raise ValueError(f"{fn}: the data have no targets y")
        added = []     # the terms that a subclassed model's own call() gave add_loss()
        outputs, tape, logits = graph.run(xs, training=training, record=training, want_logits=True,
                                          context=self._data_context(xs[0]), loss_values=added)
        self._added_losses = [float(v) for v in added]
        self._build_compiled(ys, outputs)
        total = 0.0
        grads, wrt_logits, values = [], [], []
        for i, entry in enumerate(self._output_losses):
            if entry.loss is None:
                grads.append(None)
                wrt_logits.append(False)
                continue
            if ys[i] is None:
                raise ValueError(f'{fn}: no targets for output "{self._output_names()[i]}", which has a loss')
            value, grad, flag = self._loss_and_grad(entry, i, ys[i], outputs[i], logits[i],
                                                    None if sws is None else sws[i], fn)
            values.append(value)
            if entry.weight is not None:
                value *= entry.weight
                grad = grad * grad.dtype.type(entry.weight)
            total += value
            grads.append(grad)
            wrt_logits.append(flag)
        # Keras logs the total: the outputs' losses plus the regularization penalties.
        total += float(sum(self._added_losses) + sum(loss for layer in self._penalized_layers for loss in layer.losses))
        return graph, outputs, tape, total, grads, wrt_logits, values

    def _train_step(self, xs, ys, sws, where):
        graph, outputs, tape, loss, grads, wrt_logits, values = self._forward_and_loss(xs, ys, sws, True, "fit")
        if not math.isfinite(loss):
            tape.clear()
            self._stop_on_nonfinite(f"the loss is {loss}", xs, ys, where)
        else:
            # The activity penalties' gradients join in the backward pass (Graph asks the layers).
            _, weight_grads = graph.backprop(tape, grads, wrt_logits)
            pairs = []
            for v in self.trainable_weights:
                g = weight_grads.get(v)
                if v.regularizer is not None:
                    penalty = v.regularizer.gradient(v.value)
                    g = penalty if g is None else g + penalty
                if g is not None:
                    pairs.append((g, v))
            bad = next((v for g, v in pairs if not np.isfinite(g).all()), None)
            if bad is None:
                self.optimizer.apply_gradients(pairs)
                # As Keras's optimizer: the constraints project the weights right after the update.
                for _, v in pairs:
                    if v.constraint is not None:
                        v.assign(v.constraint(v.value))
            else:
                self._stop_on_nonfinite(f"the gradient of {bad.path} is not finite", xs, ys, where)
        self._update_metrics(xs, ys, sws, outputs, loss, values)
        return self._logs()

    def _test_step(self, xs, ys, sws):
        _, outputs, _, loss, _, _, values = self._forward_and_loss(xs, ys, sws, False, "evaluate")
        self._update_metrics(xs, ys, sws, outputs, loss, values)
        return self._logs()

    def _update_metrics(self, xs, ys, sws, y_preds, loss, values):
        batch = len(xs[0])
        self._loss_tracker.update_state(loss, sample_weight=batch)
        for tracker, value in zip(self._output_loss_trackers, values):
            # Keras 3 on TensorFlow averages the per-output losses over batches, each batch
            # counting once (measured: a last, smaller batch weighs as much as a full one), while
            # the total loss is weighted by the batch sizes.
            tracker.update_state(value)
        for m in self._output_metrics:
            weights = sws[m.output] if (m.weighted and sws is not None) else None
            m.metric.update_state(ys[m.output], y_preds[m.output], sample_weight=weights)

    def _stop_on_nonfinite(self, what, xs, ys, where):
        """Stop training, before the update (the weights keep the values that gave finite
        results), with a message that says where the non-finite values come from."""
        if not all(np.isfinite(x).all() for x in xs):
            origin = "the input batch x itself holds NaN or Inf values"
        elif any(y is not None and y.dtype.kind == "f" and not np.isfinite(y).all() for y in ys):
            origin = "the targets y of this batch hold NaN or Inf values"
        else:
            origin = self._first_nonfinite_layer(xs)
        warnings.warn(
            f'fit: {what} at epoch {where[0] + 1}, batch {where[1]}; training stops. {origin}. '
            "The weights were not updated with this batch. Common causes: a learning rate too large, inputs "
            "not scaled (e.g. pixels in 0..255 instead of 0..1), or a loss that does not fit the last activation.",
            RuntimeWarning, stacklevel=4)
        self.stop_training = True

    def _first_nonfinite_layer(self, xs):
        for layer in self.layers:
            for w in layer.weights:
                if not np.isfinite(w.value).all():
                    return f'The weight {w.name} of layer "{layer.name}" ({type(layer).__name__}) is not finite'
        found = []

        def check(node, outputs):
            if not found and not all(np.isfinite(v).all() for v in outputs):
                found.append(node.layer)

        self._graph_for(xs[0].shape).run(xs, training=False, observer=check)
        if found:
            return (f'The first non-finite values appear in the output of layer "{found[0].name}" '
                    f"({type(found[0]).__name__}), whose inputs are finite")
        return "Every layer's output is finite: the loss itself overflowed (e.g. log(0) of a probability)"

    # ------------------------------------------------------------------------------------- data
    def _source(self, fn, x, y, sample_weight, batch_size, shuffle, steps, validation_split=0.0):
        """(batch source, held-out (xs, ys, sws) of validation_split or None) of fit/evaluate/predict."""
        standardize = Standardizer(fn, self._input_names(), self._output_names(), self.dtype)
        if is_batch_source(x):
            kind = source_kind(x)
            for given, argument, what in ((y, "y", "the targets"),
                                          (sample_weight, "sample_weight", "the sample weights")):
                if given is not None:
                    raise ValueError(f"{fn}: when providing `x` as a {kind}, `{argument}` should not be passed. "
                                     f"Instead, {what} should be included as part of the {kind}.")
            if validation_split:
                raise ValueError(f"{fn}: validation_split works with arrays only; pass validation_data=... with a "
                                 f"{kind}")
            if batch_size is not None:
                raise ValueError(f"{fn}: batch_size must not be given when x is a {kind}: its batches have the size "
                                 "it delivers")
            if shuffle is True and fn == "fit" and not is_py_dataset(x):
                warnings.warn(f"`shuffle=True` was passed, but will be ignored since the data `x` was provided as a "
                              f"{kind}. The {kind} is expected to yield already-shuffled data.", UserWarning,
                              stacklevel=4)
            if is_sequence(x):
                return SequenceSource(x, standardize, shuffle=shuffle is True and is_py_dataset(x)), None
            return IterableSource(x, standardize), None
        if x is None:
            raise ValueError(f"{fn}: x is required")
        if not isinstance(x, (list, tuple, dict, np.ndarray)) and not hasattr(x, "__array__") \
                and not np.isscalar(x):
            raise TypeError(f"{fn}: unsupported type of x: {type(x).__name__}. fastconv.keras takes arrays (one, or a "
                            "list / dict keyed by input name for several inputs), a keras.utils.PyDataset or "
                            "Sequence, a Python generator, a tf.data.Dataset, or any iterable of (x, y) or "
                            "(x, y, sample_weight) batches")
        if y is None and fn != "predict":
            raise ValueError(f"{fn}: y is required with array inputs (the targets, one per sample); or pass an object "
                             "that delivers (x, y) batches (a generator, a PyDataset, a tf.data.Dataset)")
        arrays = standardize(x, y, sample_weight)
        self._ensure_built(arrays[0][0].shape)
        held_out = None
        if validation_split:
            arrays, held_out = validation_split_arrays(arrays, validation_split, fn)
        if batch_size is None:
            batch_size = int(math.ceil(len(arrays[0][0]) / steps)) if steps else 32
        if shuffle not in (True, False):
            raise ValueError(f"{fn}: shuffle must be True or False. Received: shuffle={shuffle!r}")
        return ArraySource(arrays, batch_size, shuffle=bool(shuffle)), held_out

    def _validation_iterator(self, validation_data, held_out, batch_size, validation_batch_size, steps):
        fn = "fit (validation_data)"
        if validation_data is None:
            if held_out is None:
                return None
            return EpochIterator(ArraySource(held_out, validation_batch_size or batch_size or 32), steps, fn,
                                 "validation_steps")
        if is_batch_source(validation_data):
            source, _ = self._source(fn, validation_data, None, None, validation_batch_size, False, steps)
        elif isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3):
            vx, vy = validation_data[0], validation_data[1]
            vsw = validation_data[2] if len(validation_data) == 3 else None
            source, _ = self._source(fn, vx, vy, vsw, validation_batch_size or batch_size, False, steps)
        else:
            raise ValueError("fit: validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                             "val_sample_weight), "
                             "or an object that delivers batches (a generator, a PyDataset, a tf.data.Dataset). "
                             f"Received: {type(validation_data).__name__}")
        return EpochIterator(source, steps, fn, "validation_steps")

    @staticmethod
    def _class_weighted(sws, ys, class_weight, dtype):
        if class_weight is None:
            return sws
        if sws is not None:
            raise ValueError("fit: you cannot pass `class_weight` and `sample_weight` at the same time")
        if len(ys) > 1:
            raise ValueError("fit: `class_weight` is only supported for models with a single output")
        return [class_weight_to_sample_weight(ys[0], class_weight, dtype)]

    # -------------------------------------------------------------------------------------- fit
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
        """Train for ``epochs`` epochs; returns the History (``history.history['val_loss']``...).

        ``x`` is arrays (with ``y``), or an object that delivers batches: a PyDataset/Sequence,
        a generator, a tf.data.Dataset or any iterable of (x, y) / (x, y, sample_weight).
        ``validation_split`` keeps the last fraction of the arrays for validation, before
        shuffling.  Ctrl-C finishes the step under way, runs on_train_end and re-raises (see
        the module docstring).
        """
        self._check_compiled("fit")
        if class_weight is not None:
            check_class_weight(class_weight, "fit")
        verbose = 1 if verbose == "auto" else verbose
        train, held_out = self._source("fit", x, y, sample_weight, batch_size, shuffle, steps_per_epoch,
                                       validation_split)
        epochs_iter = EpochIterator(train, steps_per_epoch, "fit")
        val = self._validation_iterator(validation_data, held_out, getattr(train, "batch_size", None),
                                        validation_batch_size, validation_steps)
        cbs = callbacks_module.CallbackList(callbacks, model=self, add_history=True, add_progbar=verbose != 0,
                                            verbose=verbose, epochs=epochs, steps=epochs_iter.num_batches)
        self.stop_training = False
        self.history = cbs.history
        epoch_logs = {}
        # Every hook gets its logs positionally (None at the begin hooks), as Keras's CallbackList
        # passes them: a LambdaCallback(on_train_begin=lambda logs: ...) works.
        with _InterruptGuard() as guard:
            try:
                cbs.on_train_begin(None)
                # BackupAndRestore sets the epoch to resume from (as Keras's fit reads it).
                initial_epoch = getattr(self, "_initial_epoch", None) or initial_epoch
                for epoch in range(initial_epoch, epochs):
                    self.reset_metrics()
                    cbs.on_epoch_begin(epoch, None)
                    steps_done = 0
                    for step, (xs, ys, sws) in epochs_iter.epoch():
                        cbs.on_train_batch_begin(step, None)
                        with guard.step():
                            logs = self._train_step(xs, self._require_targets(ys, step),
                                                    self._class_weighted(sws, ys, class_weight, self.dtype),
                                                    (epoch, step))
                        cbs.on_train_batch_end(step, logs)
                        steps_done += 1
                        if self.stop_training:
                            break
                    if steps_done == 0:
                        if epoch == initial_epoch:
                            raise ValueError(f"fit: the {source_kind(x)} delivered no batch")
                        break  # the data ran out (warned): an empty epoch is not recorded
                    epoch_logs = self._logs()
                    if val is not None and (epoch + 1) % validation_freq == 0:
                        val.reset()
                        val_logs = self._evaluate_epoch(val, cbs)
                        epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
                    cbs.on_epoch_end(epoch, epoch_logs)
                    if self.stop_training:
                        break
            except KeyboardInterrupt:
                cbs.on_train_end(epoch_logs)
                raise
        if epochs > initial_epoch:
            # With use_ema the weights take their moving averages (Keras does this after the last epoch).
            self.optimizer.finalize_variable_values(self.trainable_weights)
        cbs.on_train_end(epoch_logs)
        return cbs.history

    @staticmethod
    def _require_targets(ys, step):
        if ys is None:
            raise ValueError(f"fit: batch {step} has no targets y")
        return ys

    # --------------------------------------------------------------------------------- evaluate
    def _evaluate_epoch(self, batches, cbs):
        self.reset_metrics()
        cbs.on_test_begin(None)
        logs = {}
        for step, (xs, ys, sws) in batches.epoch():
            if ys is None:
                raise ValueError(f"evaluate: batch {step} has no targets y")
            cbs.on_test_batch_begin(step, None)
            logs = self._test_step(xs, ys, sws)
            cbs.on_test_batch_end(step, logs)
        if not logs:
            raise ValueError("evaluate: the data delivered no batch")
        cbs.on_test_end(logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """The loss (and metrics) over the data, in inference mode: a float, or [loss, output losses...,
        metrics...] in Keras's order, or a dict with ``return_dict=True``."""
        self._check_compiled("evaluate")
        verbose = 1 if verbose == "auto" else verbose
        source, _ = self._source("evaluate", x, y, sample_weight, batch_size, False, steps)
        batches = EpochIterator(source, steps, "evaluate", "steps")
        cbs = callbacks_module.CallbackList(callbacks, model=self, add_progbar=verbose != 0, verbose=verbose,
                                            epochs=1, steps=batches.num_batches)
        logs = self._evaluate_epoch(batches, cbs)
        return logs if return_dict else self._as_values()

    def _as_values(self):
        values = list(self._log_values().values())
        return values[0] if len(values) == 1 else values

    # ---------------------------------------------------------------------------------- predict
    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """The model's outputs for ``x``, computed batch by batch in inference mode (an array, a
        list of arrays for a model with several outputs, a dict for one built with a dict)."""
        verbose = 1 if verbose == "auto" else verbose
        source, _ = self._source("predict", x, None, None, batch_size, False, steps)
        batches = EpochIterator(source, steps, "predict", "steps")
        cbs = callbacks_module.CallbackList(callbacks, model=self, add_progbar=verbose != 0, verbose=verbose,
                                            epochs=1, steps=batches.num_batches)
        cbs.on_predict_begin(None)
        chunks = None
        for step, (xs, _, _) in batches.epoch():
            cbs.on_predict_batch_begin(step, None)
            outputs = self._inference_outputs(xs)
            chunks = [[o] for o in outputs] if chunks is None else [c + [o] for c, o in zip(chunks, outputs)]
            cbs.on_predict_batch_end(step, {"outputs": outputs})
        cbs.on_predict_end(None)
        if chunks is None:
            raise ValueError("predict: received no data (x has 0 samples)")
        return self._structured([np.concatenate(c, axis=0) for c in chunks])

    # ------------------------------------------------------------------------------ on a batch
    def _one_batch(self, fn, x, y, sample_weight):
        self._check_compiled(fn)
        xs, ys, sws = Standardizer(fn, self._input_names(), self._output_names(), self.dtype)(x, y, sample_weight)
        self._ensure_built(xs[0].shape)
        self.reset_metrics()
        return xs, ys, sws

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        if class_weight is not None:
            check_class_weight(class_weight, "train_on_batch")
        xs, ys, sws = self._one_batch("train_on_batch", x, y, sample_weight)
        with _InterruptGuard() as guard, guard.step():
            logs = self._train_step(xs, ys, self._class_weighted(sws, ys, class_weight, self.dtype), (0, 0))
        return logs if return_dict else self._as_values()

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        xs, ys, sws = self._one_batch("test_on_batch", x, y, sample_weight)
        logs = self._test_step(xs, ys, sws)
        return logs if return_dict else self._as_values()

    def predict_on_batch(self, x):
        standardize = Standardizer("predict_on_batch", self._input_names(), self._output_names(), self.dtype)
        xs, _, _ = standardize(x, None, None)
        return self._structured(self._inference_outputs(xs))

    def _inference_outputs(self, xs):
        """The outputs (a list) for the input arrays ``xs`` in inference mode, as predict computes
        them: through a frozen :class:`~fastconv.keras.inference.InferenceModel` of the model
        (BatchNormalization folded into the convolutions, bias, ReLU and residual adds in their
        epilogue, plans, packed filters and buffers kept: on ResNet50 at batch 32 2.8x the layer by
        layer run), kept until a weight changes (every write gives a variable a new version).  The
        folded products round differently: the outputs agree with the layer by layer run within
        1e-5 relative.  Subclassed models run layer by layer."""
        frozen = self._frozen_inference()
        if frozen is not None:
            try:
                return frozen.run_list(xs)
            except ValueError:
                pass  # bad input: the layers' own checks below say what is wrong, in Keras's words
        return self._graph_for(xs[0].shape).run(xs, training=False, context=self._data_context(xs[0]))[0]

    def _frozen_inference(self):
        if vars(self).get("_subclassed", True):
            return None
        from fastconv.keras.inference import InferenceModel  # it builds on the layers, imported after this
        from fastconv.keras.layers.base import writes_so_far
        writes = writes_so_far()
        cached = vars(self).get("_frozen_for_predict")  # (writes, versions, frozen copy)
        if cached is not None and cached[0] == writes:
            return cached[2]  # no variable anywhere changed (listing the weights took 4 ms on MobileNetV2)
        versions = tuple(v.version for v in self.weights)
        frozen = cached[2] if cached is not None and cached[1] == versions else InferenceModel(self)
        self._frozen_for_predict = (writes, versions, frozen)
        return frozen

    def __getstate__(self):
        # The frozen copy is rebuilt at the next predict (its buffers are per thread).
        state = dict(self.__dict__)
        state.pop("_frozen_for_predict", None)
        return state

    # ------------------------------------------------------------- Keras 2 names, deprecated
    def fit_generator(self, generator, steps_per_epoch=None, epochs=1, verbose=1, callbacks=None,
                      validation_data=None, validation_steps=None, validation_freq=1, class_weight=None,
                      max_queue_size=10, workers=1, use_multiprocessing=False, shuffle=True, initial_epoch=0):
        """Keras 2's ``fit_generator``: ``fit`` takes generators."""
        warnings.warn("`Model.fit_generator` is deprecated and will be removed in a future version. Please use "
                      "`Model.fit`, which supports generators.", DeprecationWarning, stacklevel=2)
        return self.fit(generator, steps_per_epoch=steps_per_epoch, epochs=epochs, verbose=verbose,
                        callbacks=callbacks, validation_data=validation_data, validation_steps=validation_steps,
                        validation_freq=validation_freq, class_weight=class_weight, shuffle=shuffle,
                        initial_epoch=initial_epoch)

    def evaluate_generator(self, generator, steps=None, callbacks=None, max_queue_size=10, workers=1,
                           use_multiprocessing=False, verbose=0):
        """Keras 2's ``evaluate_generator``: ``evaluate`` takes generators."""
        warnings.warn("`Model.evaluate_generator` is deprecated and will be removed in a future version. Please use "
                      "`Model.evaluate`, which supports generators.", DeprecationWarning, stacklevel=2)
        return self.evaluate(generator, steps=steps, callbacks=callbacks, verbose=verbose)

    def predict_generator(self, generator, steps=None, callbacks=None, max_queue_size=10, workers=1,
                          use_multiprocessing=False, verbose=0):
        """Keras 2's ``predict_generator``: ``predict`` takes generators."""
        warnings.warn("`Model.predict_generator` is deprecated and will be removed in a future version. Please use "
                      "`Model.predict`, which supports generators.", DeprecationWarning, stacklevel=2)
        return self.predict(generator, steps=steps, callbacks=callbacks, verbose=verbose)
