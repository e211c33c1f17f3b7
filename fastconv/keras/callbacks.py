"""Callbacks, as ``keras.callbacks``: hooks that ``fit``, ``evaluate`` and ``predict`` call.

``fit`` calls, in this order: ``on_train_begin``; per epoch ``on_epoch_begin(epoch)``, per batch
``on_train_batch_begin(batch)`` and ``on_train_batch_end(batch, logs)`` (logs: the running means
of the loss and metrics over the epoch so far), the validation (``on_test_*``), then
``on_epoch_end(epoch, logs)`` with the epoch's means and the ``val_`` ones; ``on_train_end``.
A callback may set ``self.model.stop_training = True`` to end training after the current epoch.

``TensorBoard`` writes its event files with the optional ``tensorboardX`` package
(``pip install 'fastconv[tensorboard]'``); everything else needs NumPy only.
"""
import collections
import csv
import json
import math
import os
import random
import shutil
import sys
import time
import warnings
import zipfile

import numpy as np

from fastconv.keras import backend
from fastconv.keras.saving.atomic import atomic_write
from fastconv.keras.utils import Progbar


class Callback:
    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    # What BackupAndRestore keeps of a callback that has a state across epochs: a JSON-able
    # dict and a list of arrays (nothing for a callback without such state).
    def _backup_state(self):
        return None

    def _restore_state(self, state, arrays):
        pass

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_batch_begin(self, batch, logs=None):
        """Alias of on_train_batch_begin (Keras 2's name)."""

    def on_batch_end(self, batch, logs=None):
        """Alias of on_train_batch_end (Keras 2's name)."""

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs)

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass


class CallbackList:
    """The callbacks of one fit/evaluate/predict call, plus History and the progress bar."""

    def __init__(self, callbacks=None, model=None, add_history=False, add_progbar=False, **params):
        self.callbacks = list(callbacks or [])
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be fastconv.keras.callbacks.Callback instances; received "
                                f"{type(cb).__name__}")
        # As Keras: History, then the progress bar, after the user's callbacks (which therefore
        # see the logs first and may add to them: ReduceLROnPlateau's learning_rate is recorded).
        if add_history and not any(isinstance(cb, History) for cb in self.callbacks):
            self.callbacks.append(History())
        if add_progbar and not any(isinstance(cb, ProgbarLogger) for cb in self.callbacks):
            self.callbacks.append(ProgbarLogger())
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(dict(params))
            if isinstance(cb, BackupAndRestore):
                cb._others = [other for other in self.callbacks if other is not cb]

    @property
    def history(self):
        return next((cb for cb in self.callbacks if isinstance(cb, History)), None)

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        indexed = "batch" in hook or "epoch" in hook

        def call_all(*args, logs=None):
            # As Keras's CallbackList: every callback gets its logs argument, None when not given.
            args = list(args)
            index = args.pop(0) if indexed else None
            if args:
                logs = args.pop()
            for cb in self.callbacks:
                if indexed:
                    getattr(cb, hook)(index, logs)
                else:
                    getattr(cb, hook)(logs)
        return call_all


class History(Callback):
    """Records the logs of every epoch: ``history.history['val_loss']``; fit returns it."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        self.model.history = self


class ProgbarLogger(Callback):
    """Prints "Epoch i/n" (when there are several epochs) and a progress line per epoch
    (verbose=1), or one line per epoch (2)."""

    def __init__(self):
        super().__init__()
        self._progbar = None
        self._in_fit = False

    def _new_progbar(self):
        self._progbar = Progbar(self.params.get("steps"), verbose=self.params.get("verbose", 1))

    def on_train_begin(self, logs=None):
        self._in_fit = True

    def on_train_end(self, logs=None):
        self._in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        self._new_progbar()
        epochs = self.params.get("epochs", 1)
        if self.params.get("verbose", 1) and epochs > 1:
            print(f"Epoch {epoch + 1}/{epochs}", flush=True)

    def on_train_batch_end(self, batch, logs=None):
        self._progbar.update(batch + 1, logs, finalize=False)

    def on_epoch_end(self, epoch, logs=None):
        self._progbar.update(self._progbar.seen, logs, finalize=True)

    def on_test_begin(self, logs=None):
        if not self._in_fit:
            self._new_progbar()

    def on_test_batch_end(self, batch, logs=None):
        if not self._in_fit:
            self._progbar.update(batch + 1, logs, finalize=False)

    def on_test_end(self, logs=None):
        if not self._in_fit:
            self._progbar.update(self._progbar.seen, logs, finalize=True)

    def on_predict_begin(self, logs=None):
        self._new_progbar()

    def on_predict_batch_end(self, batch, logs=None):
        self._progbar.update(batch + 1, finalize=False)

    def on_predict_end(self, logs=None):
        self._progbar.update(self._progbar.seen, finalize=True)


class MonitorCallback(Callback):
    """Base of the callbacks that watch one logged quantity (``monitor``) for improvements.

    mode 'min' or 'max', or 'auto': 'min' for a loss, else the direction of the metric of that
    name (accuracy up, mse down), settled at the first epoch end, as Keras does.  An
    improvement must beat the best value by more than ``min_delta``.
    """

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"{type(self).__name__} mode '{mode}' is unknown, fallback to auto mode.", stacklevel=3)
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(min_delta)
        self._sign = None  # +1: larger is better; -1: smaller is better

    def _set_monitor_op(self):
        if self._sign is not None:
            return
        if self.mode != "auto":
            self._sign = 1 if self.mode == "max" else -1
            return
        name = self.monitor[4:] if self.monitor.startswith("val_") else self.monitor
        if name == "loss":
            self._sign = -1
            return
        for metric in getattr(self.model, "metrics", []):
            if metric.name == name and hasattr(metric, "_direction"):
                self._sign = 1 if metric._direction == "up" else -1
                return
        raise ValueError(f"{type(self).__name__} callback received monitor={self.monitor}, but cannot tell whether "
                         "that metric should be maximized or minimized. Pass `mode='max'` in order to monitor based on "
                         "the highest metric value, or pass `mode='min'` in order to use the lowest value.")

    def _is_improvement(self, value, reference):
        if reference is None:
            return True
        self._set_monitor_op()
        if self._sign > 0:
            return value - self.min_delta > reference
        return value + self.min_delta < reference


class EarlyStopping(MonitorCallback):
    """Stops training when ``monitor`` has not improved for ``patience`` epochs (counted from
    ``start_from_epoch``; an improvement resets the count only if it also beats ``baseline``).

    With ``restore_best_weights=True`` the weights of the best epoch are put back at the end of
    training.  The state (wait count, best value) is reset at every ``fit``.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.wait = 0
        self.stopped_epoch = 0
        self.restore_best_weights = restore_best_weights
        self.best_weights = None
        self.start_from_epoch = start_from_epoch
        self.best_epoch = 0

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        self._set_monitor_op()
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not available. Available "
                          f"metrics are: {','.join(logs or {})}", stacklevel=2)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            # The wait restarts only when the baseline is beaten too.
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def _backup_state(self):
        best = None if self.best is None else float(self.best)
        state = {"best": best, "wait": self.wait, "stopped_epoch": self.stopped_epoch, "best_epoch": self.best_epoch,
                 "has_best_weights": self.best_weights is not None}
        return state, list(self.best_weights or [])

    def _restore_state(self, state, arrays):
        self.best, self.wait = state["best"], state["wait"]
        self.stopped_epoch, self.best_epoch = state["stopped_epoch"], state["best_epoch"]
        self.best_weights = list(arrays) if state["has_best_weights"] else None

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class _BatchCounter:
    """Keras's count of the batches since the last save, for ``save_freq=<int>``."""

    def __init__(self, save_freq):
        self.save_freq = save_freq
        self.seen_since_save = 0
        self.last_batch = None

    def due(self, batch):
        if self.save_freq == "epoch":
            return False
        # A batch index not above the last one starts a new epoch (indexes count from 0).
        added = batch + 1 if self.last_batch is None or batch <= self.last_batch else batch - self.last_batch
        self.seen_since_save += added
        self.last_batch = batch
        if self.seen_since_save >= self.save_freq:
            self.seen_since_save = 0
            return True
        return False


class ModelCheckpoint(MonitorCallback):
    """Saves the model (``.keras``/``.h5``) or its weights (``save_weights_only``, a
    ``.weights.h5`` file) at the end of every epoch (``save_freq="epoch"``) or every
    ``save_freq`` batches, or only when ``monitor`` improves (``save_best_only``; the first
    value must beat ``initial_value_threshold`` when given).  ``filepath`` may hold
    ``{epoch}``, ``{batch}`` and logged values, e.g. ``"model-{epoch:02d}-{val_loss:.2f}.keras"``."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__(monitor, mode, initial_value_threshold)
        self.verbose = verbose
        self.filepath = os.fspath(filepath)
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.save_freq = save_freq
        self._current_epoch = 0
        if save_freq != "epoch" and (not isinstance(save_freq, int) or isinstance(save_freq, bool)):
            raise ValueError(f"Unrecognized save_freq: {save_freq}. Expected save_freq are 'epoch' or integer values")
        self._counter = _BatchCounter(save_freq)
        if save_weights_only:
            if not self.filepath.endswith(".weights.h5"):
                raise ValueError("When using `save_weights_only=True` in `ModelCheckpoint`, the filepath provided must "
                                 f"end in `.weights.h5` (Keras weights format). Received: filepath={self.filepath}")
        elif not self.filepath.endswith((".keras", ".h5")):
            raise ValueError(f"The filepath provided must end in `.keras` (Keras model format). Received: "
                             f"filepath={self.filepath}")

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def _backup_state(self):
        return {"best": None if self.best is None else float(self.best)}, []

    def _restore_state(self, state, arrays):
        self.best = state["best"]

    def on_train_batch_end(self, batch, logs=None):
        if self._counter.due(batch):
            self._save_model(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._set_monitor_op()
        if self.save_freq == "epoch":
            self._save_model(epoch, None, logs)

    def _should_save(self, epoch, logs, filepath):
        if not self.save_best_only:
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=3)
            return True
        best = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to {current:.5f}, saving model to "
                      f"{filepath}")
            self.best = current
            return True
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}")
        return False

    def _save_model(self, epoch, batch, logs):
        logs = dict(logs or {})
        try:
            if batch is None or "batch" in logs:
                filepath = self.filepath.format(epoch=epoch + 1, **logs)
            else:
                filepath = self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as exc:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". Reason: {exc}') from None
        if not self._should_save(epoch, logs, filepath):
            return
        if os.path.isdir(filepath):
            raise IOError(f"Please specify a non-directory filepath for ModelCheckpoint. Filepath used is an existing "
                          f"directory: {filepath}")
        folder = os.path.dirname(filepath)
        if folder:
            os.makedirs(folder, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(filepath, overwrite=True)
        else:
            self.model.save(filepath, overwrite=True)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: finished saving model to {filepath}")


class CSVLogger(Callback):
    """Writes one CSV row per epoch: ``epoch`` then the logged values in alphabetical order
    (with ``append``, to the end of an existing file, whose header is kept)."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = append
        self.writer = None
        self.keys = None
        self.append_header = True
        self.csv_file = None

    def on_train_begin(self, logs=None):
        mode = "w"
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename) as f:
                    self.append_header = not f.readline()
            mode = "a"
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode, newline="")
        self.writer = None
        self.keys = None

    @staticmethod
    def _cell(value):
        if isinstance(value, str):
            return value
        if isinstance(value, collections.abc.Iterable) and not (isinstance(value, np.ndarray) and value.ndim == 0):
            return f'"[{", ".join(map(str, value))}]"'
        return value

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys += [f"val_{k}" for k in self.keys]
        if self.writer is None:
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys, delimiter=self.sep)
            if self.append_header:
                self.writer.writeheader()
        self.writer.writerow({"epoch": epoch, **{k: self._cell(logs.get(k, "NA")) for k in self.keys}})
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


# --------------------------------------------------------------------------------- learning rate
def _current_learning_rate(optimizer):
    if optimizer is None or not hasattr(optimizer, "learning_rate"):
        raise ValueError('Optimizer must have a "learning_rate" attribute.')
    return float(optimizer.learning_rate)


class ReduceLROnPlateau(MonitorCallback):
    """Multiplies the learning rate by ``factor`` when ``monitor`` has not improved (by more
    than ``min_delta``) for ``patience`` epochs, then waits ``cooldown`` epochs; never below
    ``min_lr``.  Adds ``learning_rate`` to the epoch's logs (History records it), as Keras."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0, **kwargs):
        if "epsilon" in kwargs:
            # tf.keras 2's name of min_delta.
            min_delta = kwargs.pop("epsilon")
            warnings.warn("ReduceLROnPlateau: the `epsilon` argument is deprecated, use `min_delta` instead.",
                          DeprecationWarning, stacklevel=2)
        if kwargs:
            raise TypeError(f"ReduceLROnPlateau: unrecognized keyword arguments: {kwargs}")
        super().__init__(monitor, mode, min_delta=min_delta)
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        self.factor = factor
        self.min_lr = min_lr
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def _backup_state(self):
        best = None if self.best is None else float(self.best)
        return {"best": best, "wait": self.wait, "cooldown_counter": self.cooldown_counter}, []

    def _restore_state(self, state, arrays):
        self.best, self.wait, self.cooldown_counter = state["best"], state["wait"], state["cooldown_counter"]

    def on_epoch_end(self, epoch, logs=None):
        self._set_monitor_op()
        logs = logs if logs is not None else {}
        optimizer = self.model.optimizer
        logs["learning_rate"] = _current_learning_rate(optimizer)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` which is not available. "
                          f"Available metrics are: {','.join(logs)}.", stacklevel=2)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = logs["learning_rate"]
                if old_lr > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    optimizer.learning_rate = new_lr
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class LearningRateScheduler(Callback):
    """Sets the learning rate at the start of every epoch to ``schedule(epoch, lr)`` (or
    ``schedule(epoch)``, the older form), epochs counted from 0; adds ``learning_rate`` to the
    epoch's logs."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        try:
            learning_rate = self.schedule(epoch, _current_learning_rate(optimizer))
        except TypeError:  # the one-argument form (as Keras, which tries both)
            learning_rate = self.schedule(epoch)
        if not isinstance(learning_rate, (float, np.float32, np.float64)):
            raise ValueError(f"The output of the `schedule` function should be a float. Got: {learning_rate}")
        optimizer.learning_rate = learning_rate
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {learning_rate}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = _current_learning_rate(self.model.optimizer)


class SwapEMAWeights(Callback):
    """With an optimizer made with ``use_ema=True``: validation, ``evaluate`` and ``predict``
    run on the moving averages of the weights (swapped in, then back).  ``swap_on_epoch=True``
    also keeps the averages in the model from each epoch's end to the next epoch's start, so
    that the callbacks after this one (ModelCheckpoint...) see them.

    As Keras's, except that ``predict`` swaps the training weights back at its end (Keras 3.15
    leaves the averages in the model after a ``predict``)."""

    def __init__(self, swap_on_epoch=False):
        super().__init__()
        self.swap_on_epoch = swap_on_epoch
        self._ema_weights_in_model = False

    def _optimizer(self):
        optimizer = self.model.optimizer
        if not getattr(optimizer, "use_ema", False):
            raise ValueError("SwapEMAWeights must be used when `use_ema=True` is set on the optimizer. Received: "
                             f"use_ema={getattr(optimizer, 'use_ema', None)}")
        return optimizer

    def _swap_in(self, averages):
        if averages != self._ema_weights_in_model:
            self._optimizer()._swap_with_averages()
            self._ema_weights_in_model = averages

    def on_epoch_begin(self, epoch, logs=None):
        if self.swap_on_epoch:
            self._swap_in(False)

    def on_epoch_end(self, epoch, logs=None):
        if self.swap_on_epoch and not self._ema_weights_in_model:
            self._swap_in(True)
            if epoch == self.params.get("epochs", 0) - 1:
                # fit ends by copying the averages into the weights: they must be the averages still.
                self._optimizer()._set_averages_to_weights()

    def on_test_begin(self, logs=None):
        self._swap_in(True)

    def on_test_end(self, logs=None):
        self._swap_in(False)

    def on_predict_begin(self, logs=None):
        self._swap_in(True)

    def on_predict_end(self, logs=None):
        self._swap_in(False)


# ----------------------------------------------------------------------------------- TensorBoard
def _summary_writer_class():
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise ImportError("TensorBoard: fastconv.keras writes TensorBoard's event files with the tensorboardX package, "
                          "which is not installed. Install it with `pip install tensorboardX` (or "
                          "`pip install 'fastconv[tensorboard]'`).") from None
    return SummaryWriter


class TensorBoard(Callback):
    """Event files for TensorBoard, as Keras writes them: in ``log_dir/train`` the scalars
    ``epoch_<name>`` of the training logs and ``epoch_learning_rate`` (step: the epoch), in
    ``log_dir/validation`` the ``val_`` logs under the same names and
    ``evaluation_<name>_vs_iterations`` (step: the optimizer's iterations).  With
    ``update_freq="batch"`` (or every N batches) also ``batch_<name>`` (step: the batch count
    since the start of fit).  ``histogram_freq``: weight histograms every that many epochs;
    ``write_graph``: the model's configuration for TensorBoard's graph page.

    Written with the ``tensorboardX`` package (an optional dependency, the
    ``fastconv[tensorboard]`` extra).  ``write_images``, ``profile_batch`` and the embeddings are
    not implemented and are refused.
    """

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0, embeddings_freq=0,
                 embeddings_metadata=None):
        super().__init__()
        for arg, value, default in (("write_images", write_images, False), ("profile_batch", profile_batch, 0),
                                    ("embeddings_freq", embeddings_freq, 0),
                                    ("embeddings_metadata", embeddings_metadata, None)):
            if value != default:
                raise ValueError(f"TensorBoard: {arg} is not implemented in fastconv.keras; leave it at its default "
                                 f"({default!r}). Received: {arg}={value!r}")
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and (not isinstance(update_freq, int) or isinstance(update_freq, bool)
                                       or update_freq < 1):
            raise ValueError(f"TensorBoard: update_freq must be 'epoch', 'batch' or an integer >= 1. Received: "
                             f"update_freq={update_freq!r}")
        self._writer_class = _summary_writer_class()
        self.log_dir = str(log_dir)
        self.histogram_freq = histogram_freq
        self.write_graph = write_graph
        self.write_images = write_images
        self.write_steps_per_second = write_steps_per_second
        self.update_freq = update_freq
        self._writers = {}
        self._global_train_batch = 0
        self._global_test_batch = 0
        self._batch_start_time = 0.0
        self._epoch_start_time = 0.0
        self._previous_epoch_iterations = 0

    def _writer(self, which):
        if which not in self._writers:
            folder = os.path.join(self.log_dir, "train" if which == "train" else "validation")
            self._writers[which] = self._writer_class(logdir=folder)
        return self._writers[which]

    def _recording(self, step):
        """Keras records a batch's (and, in batch mode, an epoch's) values only when the batch
        count at that moment is a multiple of update_freq."""
        return self.update_freq == "epoch" or step % self.update_freq == 0

    def set_model(self, model):
        super().set_model(model)
        self._close_writers()
        if self.write_graph and hasattr(model, "to_json"):
            self._write_model_config(model)

    def _write_model_config(self, model):
        # TensorBoard's graph page shows a Keras model from its JSON configuration, stored as a
        # string tensor with the "graph_keras_model" plugin tag (what Keras's keras_model_summary writes).
        from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata
        from tensorboardX.proto.tensor_pb2 import TensorProto
        metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="graph_keras_model",
                                                                          content=b"1"))
        tensor = TensorProto(dtype="DT_STRING", string_val=[model.to_json().encode("utf-8")])
        summary = Summary(value=[Summary.Value(tag="keras", metadata=metadata, tensor=tensor)])
        self._writer("train")._get_file_writer().add_summary(summary, 0)

    def _close_writers(self):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def on_train_begin(self, logs=None):
        self._global_train_batch = 0
        self._previous_epoch_iterations = 0

    def on_train_end(self, logs=None):
        self._close_writers()

    def on_train_batch_begin(self, batch, logs=None):
        self._global_train_batch += 1
        if self.write_steps_per_second:
            self._batch_start_time = time.time()

    def on_train_batch_end(self, batch, logs=None):
        if self.update_freq == "epoch" or not self._recording(self._global_train_batch):
            return
        step, writer = self._global_train_batch, self._writer("train")
        if self.write_steps_per_second:
            writer.add_scalar("batch_steps_per_second", 1.0 / (time.time() - self._batch_start_time), step)
        for name, value in (logs or {}).items():
            writer.add_scalar(f"batch_{name}", float(value), step)

    def on_test_batch_begin(self, batch, logs=None):
        self._global_test_batch += 1

    def on_test_end(self, logs=None):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None or not self._recording(self._global_test_batch):
            return
        writer = self._writer("validation")
        for name, value in (logs or {}).items():
            writer.add_scalar(f"evaluation_{name}_vs_iterations", float(value), int(optimizer.iterations))
        writer.flush()

    def on_epoch_begin(self, epoch, logs=None):
        if self.write_steps_per_second:
            self._previous_epoch_iterations = int(self.model.optimizer.iterations)
            self._epoch_start_time = time.time()

    def on_epoch_end(self, epoch, logs=None):
        if logs and self._recording(self._global_train_batch):
            train_logs = {k: v for k, v in logs.items() if not k.startswith("val_")}
            val_logs = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
            optimizer = getattr(self.model, "optimizer", None)
            if optimizer is not None:
                train_logs["learning_rate"] = float(optimizer.learning_rate)
            if self.write_steps_per_second:
                steps = int(optimizer.iterations) - self._previous_epoch_iterations
                train_logs["steps_per_second"] = steps / (time.time() - self._epoch_start_time)
            for which, values in (("train", train_logs), ("validation", val_logs)):
                if values:
                    writer = self._writer(which)
                    for name, value in values.items():
                        writer.add_scalar(f"epoch_{name}", float(value), epoch)
                    writer.flush()
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            writer = self._writer("train")
            for layer in self.model.layers:
                for weight in layer.weights:
                    writer.add_histogram(f"{weight.path.replace(':', '_')}/histogram", weight.value, epoch)
            writer.flush()


# ----------------------------------------------------------------------------- BackupAndRestore
def _layers_within(model):
    for layer in getattr(model, "layers", []):
        yield layer
        yield from _layers_within(layer)


def _random_states(model):
    """Every random state that training draws from, as JSON: fastconv.keras's generator
    (shuffling, dropout without a seed), the generators of layers (a seeded Dropout), NumPy's
    global one and Python's."""
    generators = {f"{layer.name}.{attr}": value.bit_generator.state
                  for layer in _layers_within(model) for attr, value in vars(layer).items()
                  if isinstance(value, np.random.Generator)}
    name, keys, position, has_gauss, cached = np.random.get_state()
    version, python_state, gauss_next = random.getstate()
    return {"backend": backend.random_generator().bit_generator.state, "layers": generators,
            "numpy": [name, keys.tolist(), position, has_gauss, cached],
            "python": [version, list(python_state), gauss_next]}


def _restore_random_states(model, states):
    backend.random_generator().bit_generator.state = states["backend"]
    layer_generators = {f"{layer.name}.{attr}": value for layer in _layers_within(model)
                        for attr, value in vars(layer).items() if isinstance(value, np.random.Generator)}
    if set(layer_generators) != set(states["layers"]):
        raise ValueError(f"BackupAndRestore: the backup holds the random generators of layers "
                         f"{sorted(states['layers'])}, the model has {sorted(layer_generators)}")
    for key, generator in layer_generators.items():
        generator.bit_generator.state = states["layers"][key]
    name, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, cached))
    version, python_state, gauss_next = states["python"]
    random.setstate((version, tuple(python_state), gauss_next))


class BackupAndRestore(Callback):
    """Backs the training up at the end of every epoch into ``backup_dir``, and resumes a
    training that was stopped (killed, crashed, Ctrl-C) from the last backup when the same
    ``fit`` runs again with this callback.

    The backup holds everything the next epochs depend on: all weights, the optimizer's whole
    state (iterations, learning rate, slots), the number of epochs done, and the states of the
    random generators that shuffling and dropout draw from.  A run killed at any point and
    resumed therefore ends with the same weights, bit for bit, as a run never interrupted
    (with a seed, ``keras.utils.set_random_seed``).  The backup is one file, written atomically
    (a temporary file in the same folder, flushed, fsync'ed, renamed over the previous one):
    a kill during the write leaves the previous backup.  ``double_checkpoint`` keeps the
    previous backup too (``.bkp``), used when the latest cannot be read.  The folder is deleted
    when training ends normally (``delete_checkpoint``), not after an interruption.

    The other callbacks of the same ``fit`` that carry a state from epoch to epoch are backed
    up too (EarlyStopping's wait count, best value and best weights, ReduceLROnPlateau's wait
    and cooldown counts, ModelCheckpoint's best value), which Keras does not do: without them a
    resumed run could reduce the learning rate or stop at other epochs.  ``save_freq`` must be
    "epoch": a run killed mid-epoch resumes from that epoch's start, which gives the same result
    as backing up every few batches.
    """

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ValueError("Empty `backup_dir` argument passed")
        if save_freq != "epoch":
            if isinstance(save_freq, int) and not isinstance(save_freq, bool):
                raise ValueError("BackupAndRestore: fastconv.keras backs up at epoch ends only (a run killed "
                                 "mid-epoch resumes from that epoch's start and ends exactly as an uninterrupted run); "
                                 f"save_freq must be 'epoch'. Received: save_freq={save_freq}")
            raise ValueError(f"Invalid value for argument `save_freq`. Received: save_freq={save_freq}. Expected "
                             "either 'epoch' or an integer value.")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq
        self.double_checkpoint = double_checkpoint
        self.delete_checkpoint = delete_checkpoint
        self._backup_path = os.path.join(self.backup_dir, "latest.backup.npz")
        self._previous_backup_path = f"{self._backup_path}.bkp"
        self._others = []                  # the other callbacks of the fit (set by CallbackList)
        self._pending_callback_states = None

    def _callback_keys(self):
        return {f"{i}.{type(cb).__name__}": cb for i, cb in enumerate(self._others)}

    def on_train_begin(self, logs=None):
        if not self.model.built:
            raise ValueError(f"To use the BackupAndRestore callback, you model must be built before you call `fit()`. "
                             f"Model {self.model} is unbuilt. You can build it beforehand by calling it on a batch of "
                             "data.")
        if not os.path.exists(self._backup_path):
            return
        try:
            self._restore(self._backup_path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            if not (self.double_checkpoint and os.path.exists(self._previous_backup_path)):
                raise
            warnings.warn(f"BackupAndRestore: the latest backup cannot be read ({exc}); using the previous one.",
                          stacklevel=2)
            self._restore(self._previous_backup_path)

    def _restore(self, path):
        model, optimizer = self.model, self.model.optimizer
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["metadata"]))
            weights = [data[f"weight_{i}"] for i in range(meta["n_weights"])]
            store = {str(i): data[f"optimizer_{i}"] for i in range(meta["n_optimizer"])}
            callback_states = {key: (state, [data[f"callback_{key}_{i}"] for i in range(n_arrays)])
                               for key, (state, n_arrays) in meta["callbacks"].items()}
        if meta["optimizer"] != type(optimizer).__name__:
            raise ValueError(f"BackupAndRestore: the backup in {path} was made with the optimizer {meta['optimizer']}; "
                             f"the model is compiled with {type(optimizer).__name__}")
        model.set_weights(weights)
        optimizer.build(model.trainable_weights)
        if len(store) != len(optimizer.variables):
            raise ValueError(f"BackupAndRestore: the backup in {path} holds {len(store)} optimizer arrays; "
                             f"{optimizer.name} has {len(optimizer.variables)}")
        optimizer.load_own_variables(store)
        _restore_random_states(model, meta["random"])
        model._initial_epoch = meta["epoch"]
        # Given back at the first epoch's start, once every callback's on_train_begin has reset it.
        self._pending_callback_states = callback_states

    def on_epoch_begin(self, epoch, logs=None):
        states, self._pending_callback_states = self._pending_callback_states, None
        if not states:
            return
        callbacks = self._callback_keys()
        missing = sorted(set(states) - set(callbacks))
        if missing:
            warnings.warn(f"BackupAndRestore: the backup holds the state of callbacks {missing} that this fit does "
                          "not have (the callbacks and their order must be the same to resume exactly)", stacklevel=2)
        for key, (state, arrays) in states.items():
            if key in callbacks:
                callbacks[key]._restore_state(state, arrays)

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint and os.path.exists(self._backup_path):
            with open(self._backup_path, "rb") as src, atomic_write(self._previous_backup_path) as dst:
                shutil.copyfileobj(src, dst)
        store = {}
        self.model.optimizer.save_own_variables(store)
        weights = self.model.get_weights()
        callback_states = {}
        arrays = {f"weight_{i}": w for i, w in enumerate(weights)}
        arrays.update({f"optimizer_{k}": v for k, v in store.items()})
        for key, cb in self._callback_keys().items():
            backup = cb._backup_state()
            if backup is not None:
                state, cb_arrays = backup
                callback_states[key] = (state, len(cb_arrays))
                arrays.update({f"callback_{key}_{i}": a for i, a in enumerate(cb_arrays)})
        meta = {"epoch": epoch + 1, "n_weights": len(weights), "n_optimizer": len(store),
                "optimizer": type(self.model.optimizer).__name__, "random": _random_states(self.model),
                "callbacks": callback_states}
        with atomic_write(self._backup_path) as f:
            np.savez(f, metadata=np.array(json.dumps(meta)), **arrays)

    def on_train_end(self, logs=None):
        self.model._initial_epoch = None
        # on_train_end also runs when fit is interrupted (Ctrl-C); the backup is kept then.
        if self.delete_checkpoint and sys.exc_info()[0] is None and os.path.exists(self.backup_dir):
            shutil.rmtree(self.backup_dir)


class TerminateOnNaN(Callback):
    """Stops training when a batch's loss is NaN or infinite (``raise_error=True``: raises instead)."""

    def __init__(self, raise_error=False):
        super().__init__()
        self.raise_error = raise_error

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. "
                                   "Terminating training immediately.")
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback from functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        hooks = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_train_begin=on_train_begin,
                     on_train_end=on_train_end, on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end, **kwargs)
        for hook, fn in hooks.items():
            if not hook.startswith("on_") or not hasattr(Callback, hook):
                raise TypeError(f"LambdaCallback: unknown hook {hook!r}")
            if fn is not None:
                setattr(self, hook, fn)

