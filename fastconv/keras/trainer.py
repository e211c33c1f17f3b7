"""compile, fit, evaluate and predict: the training loop of a model (Keras's Trainer).

One training step: the forward pass through the graph keeping each layer's cache, the loss and
its gradient, the backward pass, one optimizer update, then the running means of the loss and
metrics (the ``logs`` that callbacks and the progress bar see).
"""
import math
import warnings

import numpy as np

from fastconv.keras import callbacks as callbacks_module
from fastconv.keras import losses as losses_module
from fastconv.keras import metrics as metrics_module
from fastconv.keras import optimizers as optimizers_module
from fastconv.keras.data import (
    ArrayBatches,
    SourceBatches,
    as_input_array,
    as_target_array,
    check_same_length,
    is_batch_source,
    validation_split_arrays,
)


class Trainer:
    """Mixed into Model: needs ``self._graph_for(shape)``, ``self.dtype`` and the weights API."""

    def _init_trainer(self):
        self.compiled = False
        self.optimizer = None
        self.loss = None
        self._metric_identifiers = []
        self._compiled_metrics = None
        self._loss_tracker = None
        self.stop_training = False
        self.history = None

    # ---------------------------------------------------------------------------------- compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True):
        """Set the optimizer, the loss and the metrics.  ``run_eagerly``, ``jit_compile`` and
        ``auto_scale_loss`` are accepted and mean nothing here (fastconv always runs eagerly)."""
        if loss_weights is not None or weighted_metrics is not None:
            raise ValueError("compile: loss_weights and weighted_metrics are not implemented in fastconv.keras")
        if steps_per_execution != 1:
            raise ValueError("compile: steps_per_execution must be 1 in fastconv.keras")
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = None if loss is None else losses_module.get(loss)
        if metrics is None:
            metrics = []
        elif isinstance(metrics, (str, metrics_module.Metric)) or not hasattr(metrics, "__iter__"):
            metrics = [metrics]
        elif isinstance(metrics, dict):
            raise ValueError("compile: metrics must be a list (one output); received a dict")
        for m in metrics:
            metrics_module.check_identifier(m)
        self._metric_identifiers = list(metrics)
        self._compiled_metrics = None  # resolved at the first batch, from the shapes of y and the output
        self._loss_tracker = metrics_module.Mean(name="loss")
        self.compiled = True

    @property
    def metrics(self):
        """The loss tracker and the compiled metrics (once resolved)."""
        if not self.compiled:
            return []
        return [self._loss_tracker] + list(self._compiled_metrics or [])

    @property
    def metrics_names(self):
        return [m.name for m in self.metrics]

    def reset_metrics(self):
        for m in self.metrics:
            m.reset_state()

    def _check_compiled(self, fn):
        if not self.compiled:
            raise RuntimeError(f"{fn}: you must compile your model before training/testing. Use "
                               "`model.compile(optimizer, loss)`.")
        if self.loss is None:
            raise ValueError(f"{fn}: the model was compiled without a loss; pass loss=... to compile")

    def _resolve_metrics(self, y, y_pred):
        if self._compiled_metrics is None:
            self._compiled_metrics = [metrics_module.get(m, y.shape, y_pred.shape) for m in self._metric_identifiers]

    def _logs(self):
        logs = {m.name: float(m.result()) for m in self.metrics}
        return dict(sorted(logs.items()))

    # ------------------------------------------------------------------------------- one batch
    def _single_io(self, fn):
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            raise ValueError(f"{fn}: fastconv.keras trains models with one input and one output; model "
                             f'"{self.name}" has {len(self.inputs)} inputs and {len(self.outputs)} outputs')

    def _loss_and_grad(self, y, y_pred, logits, fn):
        try:
            return self.loss.value_and_grad(y, y_pred, logits)
        except ValueError as exc:
            layer = self._output_layer()
            hint = ""
            if y_pred.ndim > 2 and y.ndim <= 2:
                hint = (f" Layer \"{layer.name}\" ({type(layer).__name__}) gives {y_pred.ndim}-D outputs: a Dense "
                        "layer on a 4-D tensor acts on its last axis only and keeps the spatial axes. Add Flatten() "
                        "(or GlobalAveragePooling2D()) before it.")
            raise ValueError(f"{fn}: the loss cannot compare y (shape {y.shape}) with the output of layer "
                             f'"{layer.name}" ({type(layer).__name__}, shape {y_pred.shape}): {exc}.{hint}') from None

    def _output_layer(self):
        return self.outputs[0]._keras_history[0]

    def _train_step(self, x, y, where):
        graph = self._graph_for(x.shape)
        self._single_io("fit")
        outputs, tape, logits = graph.run([x], training=True, record=True, want_logits=True,
                                          context=self._data_context(x))
        y_pred = outputs[0]
        loss, grad, wrt_logits = self._loss_and_grad(y, y_pred, logits[0], "fit")
        if not math.isfinite(loss):
            tape.clear()
            self._stop_on_nonfinite(f"the loss is {loss}", x, y, where)
        else:
            _, weight_grads = graph.backprop(tape, [grad], [wrt_logits])
            pairs = [(weight_grads[v], v) for v in self.trainable_weights if v in weight_grads]
            bad = next((v for g, v in pairs if not np.isfinite(g).all()), None)
            if bad is None:
                self.optimizer.apply_gradients(pairs)
            else:
                self._stop_on_nonfinite(f"the gradient of {bad.path} is not finite", x, y, where)
        self._update_metrics(x, y, y_pred, loss)
        return self._logs()

    def _test_step(self, x, y):
        graph = self._graph_for(x.shape)
        self._single_io("evaluate")
        outputs, _, logits = graph.run([x], training=False, want_logits=True, context=self._data_context(x))
        loss, _, _ = self._loss_and_grad(y, outputs[0], logits[0], "evaluate")
        self._update_metrics(x, y, outputs[0], loss)
        return self._logs()

    def _update_metrics(self, x, y, y_pred, loss):
        self._resolve_metrics(y, y_pred)
        self._loss_tracker.update_state(loss, sample_weight=len(x))
        for m in self._compiled_metrics:
            m.update_state(y, y_pred)

    def _stop_on_nonfinite(self, what, x, y, where):
        """Stop training, before the update (the weights keep the values that gave finite
        results), with a message that says where the non-finite values come from."""
        if not np.isfinite(x).all():
            origin = "the input batch x itself holds NaN or Inf values"
        elif y.dtype.kind == "f" and not np.isfinite(y).all():
            origin = "the targets y of this batch hold NaN or Inf values"
        else:
            origin = self._first_nonfinite_layer(x)
        warnings.warn(
            f'fit: {what} at epoch {where[0] + 1}, batch {where[1]}; training stops. {origin}. '
            "The weights were not updated with this batch. Common causes: a learning rate too large, inputs "
            "not scaled (e.g. pixels in 0..255 instead of 0..1), or a loss that does not fit the last activation.",
            RuntimeWarning, stacklevel=4)
        self.stop_training = True

    def _first_nonfinite_layer(self, x):
        for layer in self.layers:
            for w in layer.weights:
                if not np.isfinite(w.value).all():
                    return f'The weight {w.name} of layer "{layer.name}" ({type(layer).__name__}) is not finite'
        found = []

        def check(node, outputs):
            if not found and not all(np.isfinite(v).all() for v in outputs):
                found.append(node.layer)

        self._graph_for(x.shape).run([x], training=False, observer=check)
        if found:
            return (f'The first non-finite values appear in the output of layer "{found[0].name}" '
                    f"({type(found[0]).__name__}), whose inputs are finite")
        return "Every layer's output is finite: the loss itself overflowed (e.g. log(0) of a probability)"

    # -------------------------------------------------------------------------------------- fit
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
        """Train for ``epochs`` epochs; returns the History (``history.history['val_loss']``...).

        ``x`` is an array (with ``y``), or an object that delivers (x, y) batches (``len`` and
        ``[i]``, e.g. ``ImageDataGenerator().flow(x, y)``).  ``validation_split`` keeps the last
        fraction of the arrays for validation, before shuffling.
        """
        self._check_compiled("fit")
        if class_weight is not None or sample_weight is not None:
            raise ValueError("fit: class_weight and sample_weight are not implemented in fastconv.keras")
        verbose = 1 if verbose == "auto" else verbose
        train, batch_size, held_out = self._batches("fit", x, y, batch_size, shuffle, steps_per_epoch, validation_split)
        val = None
        if validation_data is not None:
            val = self._validation_batches(validation_data, validation_batch_size or batch_size, validation_steps)
        elif held_out is not None:
            val = ArrayBatches(*held_out, validation_batch_size or batch_size, steps=validation_steps)

        cbs = callbacks_module.CallbackList(callbacks, model=self, add_history=True, add_progbar=verbose != 0,
                                            verbose=verbose, epochs=epochs, steps=len(train))
        self.stop_training = False
        cbs.on_train_begin()
        # BackupAndRestore sets the epoch to resume from (as Keras's fit reads it).
        initial_epoch = getattr(self, "_initial_epoch", None) or initial_epoch
        epoch_logs = {}
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            cbs.on_epoch_begin(epoch)
            for step, (xb, yb) in enumerate(train.batches()):
                if yb is None:
                    raise ValueError(f"fit: batch {step} has no targets y")
                cbs.on_train_batch_begin(step)
                logs = self._train_step(xb, yb, (epoch, step))
                cbs.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            train.on_epoch_end()
            epoch_logs = self._logs()
            if val is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self._evaluate_batches(val, cbs)
                epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
            cbs.on_epoch_end(epoch, epoch_logs)
            if self.stop_training:
                break
        cbs.on_train_end(epoch_logs)
        return cbs.history

    def _batches(self, fn, x, y, batch_size, shuffle, steps, validation_split=0.0):
        """(batch source, batch size, held-out (x, y) of validation_split or None) of fit/evaluate."""
        if is_batch_source(x):
            if y is not None:
                raise ValueError(f"{fn}: y must not be given when x is a {type(x).__name__} that delivers (x, y) batches")
            if validation_split:
                raise ValueError(f"{fn}: validation_split works with arrays only; pass validation_data=... with a "
                                 f"{type(x).__name__}")
            if batch_size is not None:
                raise ValueError(f"{fn}: batch_size must not be given when x is a {type(x).__name__}: its batches "
                                 "have the size it delivers")
            return SourceBatches(x, fn, self.dtype, steps), None, None
        if y is None:
            raise ValueError(f"{fn}: y is required with array inputs (the targets, one per sample)")
        if self.built:
            self._single_io(fn)
        xa = as_input_array(x, fn, self.dtype)
        ya = as_target_array(y, fn)
        check_same_length(xa, ya, fn)
        self._ensure_built(xa.shape)
        self._single_io(fn)
        held_out = None
        if validation_split:
            (xa, ya), held_out = validation_split_arrays(xa, ya, validation_split, fn)
        batch_size = 32 if batch_size is None else batch_size
        if shuffle not in (True, False):
            raise ValueError(f"{fn}: shuffle must be True or False. Received: shuffle={shuffle!r}")
        return ArrayBatches(xa, ya, batch_size, shuffle=bool(shuffle), steps=steps), batch_size, held_out

    def _validation_batches(self, data, batch_size, steps):
        if is_batch_source(data):
            return SourceBatches(data, "fit (validation_data)", self.dtype, steps)
        if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
            raise ValueError("fit: validation_data must be a tuple (x_val, y_val) or an object that delivers batches")
        if len(data) == 3 and data[2] is not None:
            raise ValueError("fit: sample weights in validation_data are not implemented")
        xv = as_input_array(data[0], "fit (validation_data)", self.dtype)
        yv = as_target_array(data[1], "fit (validation_data)")
        check_same_length(xv, yv, "fit (validation_data)")
        return ArrayBatches(xv, yv, batch_size or 32, steps=steps)

    # --------------------------------------------------------------------------------- evaluate
    def _evaluate_batches(self, batches, cbs):
        self.reset_metrics()
        cbs.on_test_begin()
        logs = {}
        for step, (xb, yb) in enumerate(batches.batches()):
            if yb is None:
                raise ValueError(f"evaluate: batch {step} has no targets y")
            cbs.on_test_batch_begin(step)
            logs = self._test_step(xb, yb)
            cbs.on_test_batch_end(step, logs)
        cbs.on_test_end(logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """The loss (and metrics) over the data, in inference mode: a float, or [loss, metrics...]
        in the order of compile's metrics, or a dict with ``return_dict=True``."""
        self._check_compiled("evaluate")
        if sample_weight is not None:
            raise ValueError("evaluate: sample_weight is not implemented in fastconv.keras")
        verbose = 1 if verbose == "auto" else verbose
        batches, _, _ = self._batches("evaluate", x, y, batch_size, False, steps)
        cbs = callbacks_module.CallbackList(callbacks, model=self, add_progbar=verbose != 0, verbose=verbose,
                                            epochs=1, steps=len(batches))
        logs = self._evaluate_batches(batches, cbs)
        if return_dict:
            return logs
        values = [logs["loss"]] + [logs[m.name] for m in self._compiled_metrics or []]
        return values[0] if len(values) == 1 else values

    # ---------------------------------------------------------------------------------- predict
    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """The model's outputs for ``x``, computed batch by batch in inference mode (an array, or
        a list of arrays for a model with several outputs)."""
        verbose = 1 if verbose == "auto" else verbose
        if is_batch_source(x):
            if batch_size is not None:
                raise ValueError(f"predict: batch_size must not be given when x is a {type(x).__name__}")
            batches = SourceBatches(x, "predict", self.dtype, steps)
            inputs_list = None
        else:
            inputs_list = self._predict_inputs(x)
            first = inputs_list[0]
            self._ensure_built(first.shape)
            for arr in inputs_list[1:]:
                check_same_length(first, arr, "predict")
            batches = ArrayBatches(inputs_list if len(inputs_list) > 1 else first, None,
                                   32 if batch_size is None else batch_size, steps=steps)
        cbs = callbacks_module.CallbackList(callbacks, model=self, add_progbar=verbose != 0, verbose=verbose,
                                            epochs=1, steps=len(batches))
        cbs.on_predict_begin()
        chunks = None
        for step, (xb, _) in enumerate(batches.batches()):
            cbs.on_predict_batch_begin(step)
            arrays = xb if isinstance(xb, list) else [xb]
            self._ensure_built(arrays[0].shape)
            outputs = self._graph_for(arrays[0].shape).run(arrays, training=False,
                                                          context=self._data_context(arrays[0]))[0]
            chunks = [[o] for o in outputs] if chunks is None else [c + [o] for c, o in zip(chunks, outputs)]
            cbs.on_predict_batch_end(step, {"outputs": outputs})
        cbs.on_predict_end()
        if chunks is None:
            raise ValueError("predict: received no data (x has 0 samples)")
        results = [np.concatenate(c, axis=0) for c in chunks]
        return results[0] if len(results) == 1 else results

    def _predict_inputs(self, x):
        n_inputs = len(self.inputs) if self.built else 1
        if n_inputs > 1:
            if not isinstance(x, (list, tuple)) or len(x) != n_inputs:
                raise ValueError(f'predict: model "{self.name}" has {n_inputs} inputs; pass a list of {n_inputs} arrays')
            return [as_input_array(a, "predict", self.dtype) for a in x]
        return [as_input_array(x, "predict", self.dtype)]

    # ------------------------------------------------------------------------------ on a batch
    def train_on_batch(self, x, y, return_dict=False):
        self._check_compiled("train_on_batch")
        xa = as_input_array(x, "train_on_batch", self.dtype)
        ya = as_target_array(y, "train_on_batch")
        check_same_length(xa, ya, "train_on_batch")
        self._ensure_built(xa.shape)
        self._single_io("train_on_batch")
        self.reset_metrics()
        logs = self._train_step(xa, ya, (0, 0))
        return logs if return_dict else self._as_values(logs)

    def test_on_batch(self, x, y, return_dict=False):
        self._check_compiled("test_on_batch")
        xa = as_input_array(x, "test_on_batch", self.dtype)
        ya = as_target_array(y, "test_on_batch")
        check_same_length(xa, ya, "test_on_batch")
        self._ensure_built(xa.shape)
        self.reset_metrics()
        logs = self._test_step(xa, ya)
        return logs if return_dict else self._as_values(logs)

    def predict_on_batch(self, x):
        return self.predict(x, batch_size=len(np.asarray(x)) or 1, verbose=0)

    def _as_values(self, logs):
        values = [logs["loss"]] + [logs[m.name] for m in self._compiled_metrics or []]
        return values[0] if len(values) == 1 else values

