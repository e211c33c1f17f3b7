"""Optimizers, as ``keras.optimizers``: SGD (momentum, Nesterov), Adam and RMSprop with Keras 3's
defaults and update formulas, computed in the weights' dtype (float32) with NumPy.

``apply(grads_and_vars)`` updates each variable in place; the per-variable state (momentum,
velocity...) is created at the first update and kept by variable.
"""
import numpy as np

from fastconv.keras import backend


# Keras optimizer arguments that fastconv does not implement, and their defaults (accepted as such).
_KERAS_DEFAULTS = {"weight_decay": None, "clipnorm": None, "clipvalue": None, "global_clipnorm": None,
                   "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
                   "loss_scale_factor": None, "gradient_accumulation_steps": None}


class Optimizer:
    """Base class: a learning rate, an iteration counter, and one state per variable."""

    # Names of the per-variable state arrays (for the summary's count and for saving).
    _slot_names = ()

    def __init__(self, learning_rate=0.001, name=None, **kwargs):
        for key, value in kwargs.items():
            if key not in _KERAS_DEFAULTS:
                raise TypeError(f"Unrecognized keyword arguments passed to {type(self).__name__}: {{{key!r}: {value!r}}}")
            if value != _KERAS_DEFAULTS[key]:
                raise ValueError(f"{type(self).__name__}: fastconv.keras does not implement {key}; "
                                 f"leave it at its default ({_KERAS_DEFAULTS[key]!r}). Received: {key}={value!r}")
        self.name = name or backend.to_snake_case(type(self).__name__)
        self.learning_rate = learning_rate
        self.iterations = 0
        self._slots = {}  # id(variable) -> (variable, {slot name: array})

    @property
    def learning_rate(self):
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        value = float(value)
        if not value >= 0:
            raise ValueError(f"{type(self).__name__}: learning_rate must be a number >= 0. Received: {value!r}")
        # Keras keeps the learning rate in a float32 variable.
        self._learning_rate = float(np.float32(value))

    @property
    def built(self):
        return bool(self._slots)

    def _state(self, variable):
        entry = self._slots.get(id(variable))
        if entry is None or entry[0] is not variable:
            entry = (variable, {name: np.zeros_like(variable.value) for name in self._slot_names})
            self._slots[id(variable)] = entry
        return entry[1]

    def apply(self, grads_and_vars):
        """One step: update every (gradient, variable) pair, then count the iteration."""
        for grad, variable in grads_and_vars:
            dtype = variable.value.dtype
            self._update(variable.value, np.asarray(grad, dtype=dtype), self._state(variable), dtype.type)
        self.iterations += 1

    def apply_gradients(self, grads_and_vars):
        self.apply(grads_and_vars)

    def _update(self, value, grad, state, f):
        """Update ``value`` in place from ``grad``; ``f`` casts constants to the weights' dtype."""
        raise NotImplementedError

    @property
    def variables(self):
        """(name, array) of the optimizer's state, as Keras counts it in a summary: the iteration
        counter (int64), the learning rate (float32) and the per-variable slots."""
        out = [("iteration", np.array(self.iterations, dtype=np.int64)),
               ("learning_rate", np.array(self._learning_rate, dtype=np.float32))]
        for variable, slots in self._slots.values():
            out.extend((f"{variable.path}/{name}", arr) for name, arr in slots.items())
        return out

    def state_arrays(self, variables):
        """The slots of ``variables`` in order, for saving."""
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
        self.iterations = int(iterations)

    def get_config(self):
        return {"name": self.name, "learning_rate": self._learning_rate}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class SGD(Optimizer):
    """``m = momentum * m - lr * g``; ``w += m`` (Nesterov: ``w += momentum * m - lr * g``);
    without momentum ``w -= lr * g``."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name=None, **kwargs):
        if not 0 <= momentum <= 1:
            raise ValueError(f"SGD: momentum must be in [0, 1]. Received: momentum={momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self._slot_names = ("momentum",) if self.momentum != 0 else ()
        super().__init__(learning_rate, name, **kwargs)

    def _update(self, value, grad, state, f):
        lr = f(self._learning_rate)
        if self.momentum == 0:
            value -= grad * lr
            return
        momentum = f(self.momentum)
        m = state["momentum"]
        m[...] = m * momentum - grad * lr
        if self.nesterov:
            value += m * momentum - grad * lr
        else:
            value += m

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam, in Keras's form: with t the step (from 1),
    ``alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)``, ``m += (g - m)(1 - beta_1)``,
    ``v += (g^2 - v)(1 - beta_2)``, ``w -= alpha m / (sqrt(v) + epsilon)`` (epsilon 1e-7)."""

    _slot_names = ("momentum", "velocity")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, name=None,
                 **kwargs):
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.amsgrad = bool(amsgrad)
        if self.amsgrad:
            self._slot_names = ("momentum", "velocity", "velocity_hat")
        super().__init__(learning_rate, name, **kwargs)

    def _update(self, value, grad, state, f):
        # The constants are rounded to the weights' dtype where Keras rounds them: the powers of
        # the betas are taken in float32, while 1 - beta is computed in double precision and then
        # rounded (1 - 0.999 is 0.001 in float32, not 1 - float32(0.999) = 0.00100005).
        t = f(self.iterations + 1)
        alpha = f(self._learning_rate) * np.sqrt(1 - f(self.beta_2) ** t) / (1 - f(self.beta_1) ** t)
        m, v = state["momentum"], state["velocity"]
        m += (grad - m) * f(1 - self.beta_1)
        v += (grad * grad - v) * f(1 - self.beta_2)
        if self.amsgrad:
            np.maximum(state["velocity_hat"], v, out=state["velocity_hat"])
            v = state["velocity_hat"]
        value -= (m * alpha) / (np.sqrt(v) + f(self.epsilon))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


class RMSprop(Optimizer):
    """``v = rho v + (1 - rho) g^2``; ``w -= lr g / sqrt(v + epsilon)`` (centered: the variance
    ``v - mean(g)^2`` instead of ``v``; with momentum: ``m = momentum m + step``, ``w -= m``)."""

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, name=None,
                 **kwargs):
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)
        self.centered = bool(centered)
        self._slot_names = ("velocity",) + (("momentum",) if self.momentum > 0 else ()) + \
            (("average_gradient",) if self.centered else ())
        super().__init__(learning_rate, name, **kwargs)

    def _update(self, value, grad, state, f):
        rho, one_minus_rho = f(self.rho), f(1 - self.rho)
        v = state["velocity"]
        v[...] = rho * v + one_minus_rho * (grad * grad)
        if self.centered:
            avg = state["average_gradient"]
            avg[...] = rho * avg + one_minus_rho * grad
            denominator = v - avg * avg + f(self.epsilon)
        else:
            denominator = v + f(self.epsilon)
        step = f(self._learning_rate) * grad / np.sqrt(denominator)
        if self.momentum > 0:
            m = state["momentum"]
            m[...] = f(self.momentum) * m + step
            value -= m
        else:
            value -= step

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


_CLASSES = {"SGD": SGD, "Adam": Adam, "RMSprop": RMSprop}


def get(identifier):
    """An optimizer from a name ('adam', 'sgd', 'rmsprop'), a config dict or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        for name, cls in _CLASSES.items():
            if identifier.lower() == name.lower():
                return cls()
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}. fastconv.keras knows "
                     "'adam', 'sgd' and 'rmsprop' (or fastconv.keras.optimizers.Adam(...) etc.).")


def serialize(optimizer):
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config):
    cls = _CLASSES.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"Unknown optimizer in a model configuration: {config!r}")
    return cls.from_config(config.get("config", {}))
