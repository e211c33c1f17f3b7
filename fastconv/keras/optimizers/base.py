"""The base of every optimizer: Keras 3's common arguments and the order of one step.

One ``apply`` (a training step), as Keras's does it:

1. the gradients are clipped (``clipnorm`` per gradient, ``global_clipnorm`` over all of them,
   or ``clipvalue`` element-wise; at most one of the three);
2. with ``gradient_accumulation_steps=n`` they are only summed, except every n-th step, which
   updates with their mean;
3. weight decay, decoupled from the gradient: ``w -= w * weight_decay * lr``;
4. the optimizer's own update rule (``_update``), variable by variable;
5. with ``use_ema``, the moving average of the weights; every ``ema_overwrite_frequency``
   steps it is copied into the weights (and at the end of ``fit``);
6. ``iterations`` counts the step.

Everything is computed in the weights' dtype, with the constants rounded where Keras rounds them
(the learning rate is kept in floatx, as Keras's learning-rate variable), so that the weights
agree with Keras's on TensorFlow to a few ulps, in float32 and in float64.
"""
import inspect
import numbers
import re
import warnings

import numpy as np

from fastconv.keras import backend
from fastconv.keras.optimizers import schedules


def _caller_stacklevel():
    """The stacklevel of the first frame outside this package (the user's ``Adam(lr=...)``)."""
    frame, level = inspect.currentframe().f_back, 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith(__package__):
        frame, level = frame.f_back, level + 1
    return level


class LearningRateValue(float):
    """What ``optimizer.learning_rate`` gives: the rate as a float, which also answers the
    methods of the Keras variable that Keras gives there: ``numpy()`` and ``assign(value)`` (which
    sets the optimizer's rate, as ``optimizer.learning_rate = value`` does)."""

    def __new__(cls, value, optimizer):
        obj = super().__new__(cls, value)
        obj._optimizer = optimizer
        return obj

    def numpy(self):
        return self._optimizer._learning_rate_type(self)

    def assign(self, value):
        self._optimizer.learning_rate = value


class Optimizer:
    """Base class: a learning rate (a float or a schedule), the step counter ``iterations``, and
    per trained variable the state arrays named in ``_slot_names`` (zeros unless ``_slot_initial``
    says otherwise)."""

    _slot_names = ()
    _slot_initial = {}
    # Keras creates the slots in groups (one add_optimizer_variables call each), variable by
    # variable within a group: that is the order of ``variables`` (and of Keras's saved files).
    # Default: one group per slot.
    _slot_groups = ()

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        cls = type(self).__name__
        if "lr" in kwargs:
            # tf.keras 2 spelling; Keras 3 refuses it.
            learning_rate = kwargs.pop("lr")
            warnings.warn(f"{cls}: the `lr` argument is deprecated, use `learning_rate` instead.",
                          DeprecationWarning, stacklevel=_caller_stacklevel())
        # tf.keras 2's legacy time decay, lr / (1 + decay * iterations); Keras 3 ignores it.
        self.decay = float(kwargs.pop("decay", 0.0) or 0.0)
        if self.decay < 0:
            raise ValueError(f"{cls}: decay must be >= 0. Received: decay={self.decay}")
        if self.decay:
            warnings.warn(f"{cls}: `decay` is a tf.keras 2 argument (Keras 3 ignores it); fastconv.keras applies it as "
                          "tf.keras 2 did: learning_rate / (1 + decay * iterations). Prefer "
                          "learning_rate=keras.optimizers.schedules.InverseTimeDecay(lr, 1, decay).",
                          DeprecationWarning, stacklevel=_caller_stacklevel())
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        # Keras's learning-rate variable takes floatx when the optimizer is made.
        self._learning_rate_type = np.dtype(backend.floatx()).type
        if loss_scale_factor is not None:
            raise ValueError(f"{cls}: fastconv.keras does not implement loss_scale_factor (loss scaling is for "
                             "mixed-precision training; fastconv trains in float32). Received: "
                             f"loss_scale_factor={loss_scale_factor!r}")
        if gradient_accumulation_steps is not None and not (
                isinstance(gradient_accumulation_steps, (int, np.integer)) and gradient_accumulation_steps >= 2):
            raise ValueError("`gradient_accumulation_steps` must be an integer >= 2. Received: "
                             f"gradient_accumulation_steps={gradient_accumulation_steps}")
        if use_ema:
            if not 0 <= ema_momentum <= 1:
                raise ValueError(f"`ema_momentum` must be in the range [0, 1]. Received: ema_momentum={ema_momentum}")
            frequency = ema_overwrite_frequency
            if frequency and (not isinstance(frequency, int) or frequency < 1):
                raise ValueError("`ema_overwrite_frequency` must be an integer >= 1 or None. Received: "
                                 f"ema_overwrite_frequency={ema_overwrite_frequency}")
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                             f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}")
        self.name = name if name is not None else backend.auto_name(cls)
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.use_ema = use_ema
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.loss_scale_factor = loss_scale_factor
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self._learning_rate = None
        self.learning_rate = learning_rate
        self._iterations = 0
        self._variables = []  # the trained variables, in the order they were first seen
        self._slots = {}      # id(variable) -> {slot name: array}
        self._exclude_ids, self._exclude_pattern = set(), None

    # -------------------------------------------------------------------------- learning rate
    @property
    def learning_rate(self):
        """The learning rate of the current step (a schedule's value at ``iterations``)."""
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            lr = self._learning_rate(np.int64(self._iterations))
        elif callable(self._learning_rate):
            lr = self._learning_rate()
        else:
            lr = self._learning_rate
        return LearningRateValue(self._learning_rate_type(lr), self)

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(value, schedules.LearningRateSchedule) or callable(value):
            self._learning_rate = value
            return
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            raise TypeError("This optimizer was created with a `LearningRateSchedule` object as its `learning_rate` "
                            "constructor argument, hence its learning rate is not settable. If you need the learning "
                            "rate to be settable, you should instantiate the optimizer with a float `learning_rate` "
                            "argument.")
        if isinstance(value, np.ndarray) and value.ndim == 0 or isinstance(value, np.generic):
            value = value.item()
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not value >= 0:
            raise ValueError("Argument `learning_rate` should be a float >= 0, or an instance of LearningRateSchedule, "
                             "or a callable (that takes in the current iteration value and returns the corresponding "
                             f"learning rate value). Received instead: learning_rate={value!r}")
        # Keras keeps the learning rate in a variable of floatx.
        self._learning_rate = float(self._learning_rate_type(value))

    def _step_learning_rate(self):
        lr = float(self.learning_rate)
        if self.decay:
            f = self._learning_rate_type
            lr = float(f(lr) / (f(1) + f(self.decay) * f(self._iterations)))
        return lr

    @property
    def iterations(self):
        """The number of updates made (of optimizer steps with gradient accumulation)."""
        if self.gradient_accumulation_steps:
            return self._iterations // self.gradient_accumulation_steps
        return self._iterations

    @iterations.setter
    def iterations(self, value):
        self._iterations = int(value) * (self.gradient_accumulation_steps or 1)

    # ------------------------------------------------------------------------------- state
    @property
    def built(self):
        return bool(self._variables)

    def build(self, variables):
        """Create the state of ``variables`` (done by the first update otherwise)."""
        for variable in variables:
            self._state(variable)

    def _state(self, variable):
        state = self._slots.get(id(variable))
        if state is None:
            names = (("average",) if self.use_ema else ()) + \
                (("gradient_accumulator",) if self.gradient_accumulation_steps else ()) + self._slot_names
            state = {name: np.full_like(variable.value, self._slot_initial.get(name, 0)) for name in names}
            self._slots[id(variable)] = state
            self._variables.append(variable)
        return state

    def _learning_rate_state(self):
        """The learning rate as state (when it is a number: callbacks change it)."""
        if isinstance(self._learning_rate, float):
            return [("learning_rate", np.array(self._learning_rate, dtype=self._learning_rate_type))]
        return []

    def _own_scalars(self):
        """(name, 0-d array) of an optimizer's own state shared by all variables."""
        return []

    def _groups(self):
        groups = [("average",)] if self.use_ema else []
        if self.gradient_accumulation_steps:
            groups.append(("gradient_accumulator",))
        own = self._slot_groups or tuple((name,) for name in self._slot_names)
        own = [tuple(n for n in group if n in self._slot_names) for group in own]
        return groups + [group for group in own if group]

    @property
    def variables(self):
        """(name, array) of the optimizer's whole state, in the order of Keras's variables: the
        iteration counter (int64), the learning rate (float32, when it is a number), the state
        arrays (group by group, each variable by variable), then the optimizer's own scalars."""
        out = [("iteration", np.array(self._iterations, dtype=np.int64))] + self._learning_rate_state()
        for group in self._groups():
            for variable in self._variables:
                prefix = variable.path.replace("/", "_")
                out.extend((f"{prefix}_{name}", self._slots[id(variable)][name]) for name in group)
        return out + self._own_scalars()

    def save_own_variables(self, store):
        """``store[str(i)]``: a copy of the i-th array of ``variables`` (as Keras's)."""
        for i, (_, arr) in enumerate(self.variables):
            store[str(i)] = np.array(arr)

    def load_own_variables(self, store):
        """Back from ``save_own_variables``'s store (the optimizer built on the same variables
        first, with ``build``).  A store of another length is skipped with a warning, as Keras."""
        entries = self.variables
        if len(store) != len(entries):
            warnings.warn(f"Skipping variable loading for optimizer '{self.name}', because it has {len(entries)} "
                          f"variables whereas the saved optimizer has {len(store)} variables. ", stacklevel=2)
            return
        for i, (name, arr) in enumerate(entries):
            value = np.asarray(store[str(i)])
            if value.shape != arr.shape:
                raise ValueError(f"Optimizer variable {name} has shape {arr.shape} not compatible with provided "
                                 f"weight shape {value.shape}.")
            if name == "iteration":
                self._iterations = int(value)
            elif name == "learning_rate" and arr.ndim == 0 and i == 1:
                self._learning_rate = float(value)
            else:
                arr[...] = value

    def state_arrays(self, variables):
        """The slots named in ``_slot_names`` of ``variables``, variable by variable (what a
        saved model file holds)."""
        return [self._state(v)[name] for v in variables for name in self._slot_names]

    def load_state_arrays(self, variables, iterations, arrays):
        arrays = list(arrays)
        expected = len(variables) * len(self._slot_names)
        if len(arrays) != expected:
            raise ValueError(f"{self.name}: the saved optimizer state has {len(arrays)} arrays, expected {expected}")
        it = iter(arrays)
        for v in variables:
            state = self._state(v)
            for name in self._slot_names:
                state[name][...] = next(it)
        self.iterations = iterations

    # -------------------------------------------------------------------------------- a step
    def apply_gradients(self, grads_and_vars):
        """One step from (gradient, variable) pairs; returns ``iterations``."""
        pairs = list(grads_and_vars)
        self.apply([g for g, _ in pairs], [v for _, v in pairs])
        return self._iterations

    def apply(self, grads, trainable_variables=None):
        """One step: ``grads`` in the order of ``trainable_variables`` (or of the variables the
        optimizer was built with)."""
        grads = list(grads)
        if trainable_variables is None:
            if not self.built:
                raise ValueError("When passing `grads` without `variables`, the optimizer must already be built on a "
                                 "list of variables. Call `optimizer.build(trainable_variables)` first. ")
            trainable_variables = self._variables
        trainable_variables = list(trainable_variables)
        if len(grads) != len(trainable_variables):
            raise ValueError(f"{self.name}: received {len(grads)} gradients for {len(trainable_variables)} variables")
        pairs = [(g, v) for g, v in zip(grads, trainable_variables) if g is not None]
        if not pairs:
            if grads:
                raise ValueError("No gradients provided for any variable.")
            return
        if len(pairs) < len(grads):
            missing = [v.path for g, v in zip(grads, trainable_variables) if g is None]
            warnings.warn(f"Gradients do not exist for variables {missing} when minimizing the loss. If using "
                          "`model.compile()`, did you forget to provide a `loss` argument?", stacklevel=2)
        grads = [np.asarray(g, dtype=v.value.dtype) for g, v in pairs]
        variables = [v for _, v in pairs]
        states = [self._state(v) for v in variables]
        update = True
        if self.gradient_accumulation_steps:
            steps = self.gradient_accumulation_steps
            update = (self._iterations + 1) % steps == 0
            accumulators = [s["gradient_accumulator"] for s in states]
            if update:
                grads = [(g + acc) / g.dtype.type(steps) for g, acc in zip(grads, accumulators)]
                for acc in accumulators:
                    acc[...] = 0
            else:
                for g, acc in zip(grads, accumulators):
                    acc += g
        if update:
            grads = self._clip(grads)
            lr = self._step_learning_rate()
            self._apply_weight_decay(variables, lr)
            self._prepare_step(variables[0].value.dtype.type)
            for g, v, s in zip(grads, variables, states):
                with v._writable() as w:
                    self._update(w, g, s, w.dtype.type, lr)
        if self.use_ema:
            self._update_moving_averages()
        self._iterations += 1

    def _prepare_step(self, f):
        """Hook for the state shared by all variables (Nadam's momentum cache), before the updates."""

    def _update(self, value, grad, state, f, lr):
        """Update ``value`` in place from ``grad``; ``f`` casts constants to the weights' dtype."""
        raise NotImplementedError

    def _clip(self, grads):
        if self.clipnorm and self.clipnorm > 0:
            out = []
            for g in grads:
                f = g.dtype.type
                norm = np.sqrt(np.sum(g * g, dtype=g.dtype))
                out.append(g * f(self.clipnorm) / max(norm, f(self.clipnorm)))
            return out
        if self.global_clipnorm and self.global_clipnorm > 0:
            f = grads[0].dtype.type
            norm = np.sqrt(f(sum(np.sum(g * g, dtype=g.dtype) for g in grads)))
            with np.errstate(divide="ignore"):
                inverse_norm = f(1) / norm
            # + (norm - norm): a NaN scale (every weight NaN) when the norm is not finite, as Keras.
            scale = f(self.global_clipnorm) * min(inverse_norm, f(1.0 / self.global_clipnorm)) + (norm - norm)
            return [g * scale for g in grads]
        if self.clipvalue and self.clipvalue > 0:
            return [np.clip(g, -self.clipvalue, self.clipvalue).astype(g.dtype, copy=False) for g in grads]
        return grads

    # -------------------------------------------------------------------------- weight decay
    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Keep ``var_list``, and the variables whose name contains one of ``var_names`` (e.g.
        ``["bias"]``), out of the weight decay.  Call it before the first update."""
        if self.built:
            raise ValueError("`exclude_from_weight_decay()` can only be configured before the optimizer is built.")
        self._exclude_ids = {id(v) for v in var_list or []}
        self._exclude_pattern = re.compile("|".join(set(var_names))) if var_names else None

    def _use_weight_decay(self, variable):
        if id(variable) in self._exclude_ids:
            return False
        return self._exclude_pattern is None or self._exclude_pattern.search(variable.name) is None

    def _apply_weight_decay(self, variables, lr):
        if self.weight_decay is None:
            return
        for v in variables:
            if self._use_weight_decay(v):
                f = v.value.dtype.type
                with v._writable() as w:
                    w -= w * f(self.weight_decay) * f(lr)

    # ----------------------------------------------------------------------------------- EMA
    def _update_moving_averages(self):
        """``average = m * average + (1 - m) * w`` with m = ema_momentum (0 at the first step)."""
        for v in self._variables:
            f = v.value.dtype.type
            momentum = f(self.ema_momentum) if self.iterations != 0 else f(0)
            average = self._slots[id(v)]["average"]
            average[...] = momentum * average + (f(1) - momentum) * v.value
        if self.ema_overwrite_frequency and (self.iterations + 1) % self.ema_overwrite_frequency == 0:
            self._overwrite_with_averages(self._variables)

    def _overwrite_with_averages(self, variables):
        for v in variables:
            if id(v) in self._slots:
                v.assign(self._slots[id(v)]["average"])

    def _swap_with_averages(self):
        """Exchange each weight with its moving average (SwapEMAWeights)."""
        for v in self._variables:
            average = self._slots[id(v)]["average"]
            weights = v.value.copy()
            v.assign(average)
            average[...] = weights

    def _set_averages_to_weights(self):
        for v in self._variables:
            self._slots[id(v)]["average"][...] = v.value

    def finalize_variable_values(self, var_list):
        """End of training: with ``use_ema`` the weights take their moving averages (``fit``
        calls it after the last epoch)."""
        if self.use_ema:
            self._overwrite_with_averages(var_list)

    # ---------------------------------------------------------------------------------- config
    def get_config(self):
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            learning_rate = schedules.serialize(self._learning_rate)
        elif callable(self._learning_rate):
            raise ValueError(f"{self.name}: a learning_rate given as a function cannot be serialized; use a "
                             "keras.optimizers.schedules.LearningRateSchedule subclass instead")
        else:
            learning_rate = self._learning_rate
        config = {"name": self.name, "learning_rate": learning_rate, "weight_decay": self.weight_decay,
                  "clipnorm": self.clipnorm, "global_clipnorm": self.global_clipnorm, "clipvalue": self.clipvalue,
                  "use_ema": self.use_ema, "ema_momentum": self.ema_momentum,
                  "ema_overwrite_frequency": self.ema_overwrite_frequency,
                  "loss_scale_factor": self.loss_scale_factor,
                  "gradient_accumulation_steps": self.gradient_accumulation_steps}
        if self.decay:
            config["decay"] = self.decay
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"], custom_objects)
        return cls(**config)
