"""The update rules of the optimizers, as in Keras 3 (``keras/src/optimizers/*.py``).

Each ``_update(w, g, state, f, lr)`` changes the weights ``w`` in place from the gradient ``g``
(already clipped, and after the weight decay) and the variable's ``state`` arrays.  ``f`` is the
weights' scalar type: a constant goes through :func:`_cast` where Keras casts it to the weights'
dtype (``ops.cast(self.beta_1, dtype)``: later ``1 - beta_1`` is computed in that dtype), and is
computed in double precision first where Keras leaves it a Python number (``1 - self.beta_1``),
which is exactly how the results agree with Keras's to the last bits.  The common arguments
(``weight_decay``, ``clipnorm``, ``use_ema``, ``name``...) are those of :class:`Optimizer`.
"""
import numpy as np

from fastconv.keras.optimizers.base import Optimizer


def _cast(value, f):
    """Keras's ``ops.cast(value, dtype)`` of a Python number, as on TensorFlow: the number becomes a
    float32 tensor first, then the weights' type ``f``.  For float32 weights this is ``f(value)``;
    float64 weights see beta_2 = 0.99900001287 where 0.999 was written (Adam's first steps then
    differ by 7e-6 relative from a float64 0.999)."""
    return f(np.float32(value))


class SGD(Optimizer):
    """``w -= lr * g``; with momentum ``m = momentum * m - lr * g`` and ``w += m`` (Nesterov:
    ``w += momentum * m - lr * g``)."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum <= 1:
            raise ValueError("`momentum` must be a float between [0, 1].")
        self.momentum = momentum
        self.nesterov = nesterov
        self._slot_names = ("momentum",) if momentum != 0 else ()

    def _update(self, w, g, state, f, lr):
        lr = f(lr)
        if self.momentum == 0:
            w -= g * lr
            return
        momentum = _cast(self.momentum, f)
        m = state["momentum"]
        m[...] = m * momentum - g * lr
        if self.nesterov:
            w += m * momentum - g * lr
        else:
            w += m

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """With t the step (from 1): ``m += (g - m)(1 - beta_1)``, ``v += (g^2 - v)(1 - beta_2)``,
    ``w -= lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)``: Keras's form, with
    epsilon outside the square root and not bias-corrected.  ``amsgrad``: the running maximum of v."""

    _slot_groups = (("momentum", "velocity"), ("velocity_hat",))

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = beta_1, beta_2, epsilon, amsgrad
        self._slot_names = ("momentum", "velocity") + (("velocity_hat",) if amsgrad else ())

    def _update(self, w, g, state, f, lr):
        t = f(self.iterations + 1)
        alpha = f(lr) * np.sqrt(1 - _cast(self.beta_2, f) ** t) / (1 - _cast(self.beta_1, f) ** t)
        m, v = state["momentum"], state["velocity"]
        m += (g - m) * f(1 - self.beta_1)
        v += (g * g - v) * f(1 - self.beta_2)
        if self.amsgrad:
            np.maximum(state["velocity_hat"], v, out=state["velocity_hat"])
            v = state["velocity_hat"]
        w -= (m * alpha) / (np.sqrt(v) + f(self.epsilon))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (``w -= w * weight_decay * lr`` before each Adam step);
    ``weight_decay`` is required (default 0.004)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay=weight_decay, **kwargs)
        if self.weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")


class Nadam(Optimizer):
    """Adam with Nesterov momentum and Dozat's momentum schedule ``u_t = beta_1 (1 - 0.96^t / 2)``,
    whose running product (the "momentum cache", shared by all variables) corrects the bias of m."""

    _slot_groups = (("momentum", "velocity"),)

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self._slot_names = ("momentum", "velocity")
        self._u_product = np.array(1.0, dtype=np.float32)

    def _own_scalars(self):
        return [("u_product", self._u_product)]

    def _momentum_at(self, step, f):
        return _cast(self.beta_1, f) * (f(1) - f(0.5) * _cast(0.96, f) ** f(step))

    def _prepare_step(self, f):
        self._u_product[...] = f(self._u_product) * f(self.beta_1) * (f(1) - f(0.5) * f(0.96) ** f(self.iterations + 1))

    def _update(self, w, g, state, f, lr):
        beta_1, beta_2 = _cast(self.beta_1, f), _cast(self.beta_2, f)
        u_t, u_next = self._momentum_at(self.iterations + 1, f), self._momentum_at(self.iterations + 2, f)
        u_product = f(self._u_product)
        u_product_next = u_product * u_next
        m, v = state["momentum"], state["velocity"]
        m += (g - m) * (f(1) - beta_1)
        v += (g * g - v) * (f(1) - beta_2)
        m_hat = (u_next * m) / (f(1) - u_product_next) + ((f(1) - u_t) * g) / (f(1) - u_product)
        v_hat = v / (f(1) - beta_2 ** f(self.iterations + 1))
        w -= (m_hat * f(lr)) / (np.sqrt(v_hat) + f(self.epsilon))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class Adamax(Optimizer):
    """Adam with the infinity norm: ``u = max(beta_2 u, |g|)``,
    ``w -= lr m / ((1 - beta_1^t)(u + epsilon))``."""

    _slot_groups = (("momentum", "norm"),)

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self._slot_names = ("momentum", "norm")

    def _update(self, w, g, state, f, lr):
        beta_1_power = _cast(self.beta_1, f) ** f(self.iterations + 1)
        m, u = state["momentum"], state["norm"]
        m += (g - m) * f(1 - self.beta_1)
        np.maximum(f(self.beta_2) * u, np.abs(g), out=u)
        w -= (f(lr) * m) / ((f(1) - beta_1_power) * (u + f(self.epsilon)))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class Adagrad(Optimizer):
    """``a += g^2`` (a starts at ``initial_accumulator_value``), ``w -= lr g / sqrt(a + epsilon)``."""

    _slot_names = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value, self.epsilon = initial_accumulator_value, epsilon
        self._slot_initial = {"accumulator": initial_accumulator_value}

    def _update(self, w, g, state, f, lr):
        a = state["accumulator"]
        a += g * g
        w -= (f(lr) * g) / np.sqrt(a + f(self.epsilon))

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class Adadelta(Optimizer):
    """Running means of g^2 and of the squared steps:
    ``step = -sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps) * g``, ``w += lr * step``."""

    _slot_names = ("accumulated_grad", "accumulated_delta_var")
    _slot_groups = (_slot_names,)

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho, self.epsilon = rho, epsilon

    def _update(self, w, g, state, f, lr):
        rho, one_minus_rho, eps = f(self.rho), f(1 - self.rho), f(self.epsilon)
        grad_mean, delta_mean = state["accumulated_grad"], state["accumulated_delta_var"]
        grad_mean[...] = rho * grad_mean + one_minus_rho * (g * g)
        delta = -((np.sqrt(delta_mean + eps) * g) / np.sqrt(grad_mean + eps))
        delta_mean[...] = rho * delta_mean + one_minus_rho * (delta * delta)
        w += f(lr) * delta

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class RMSprop(Optimizer):
    """``v = rho v + (1 - rho) g^2``; ``w -= lr g / sqrt(v + epsilon)`` (centered: the variance
    ``v - mean(g)^2`` instead of v; with momentum: ``m = momentum m + step``, ``w -= m``)."""

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho, self.momentum, self.epsilon, self.centered = rho, momentum, epsilon, centered
        self._slot_names = ("velocity",) + (("momentum",) if momentum > 0 else ()) + \
            (("average_gradient",) if centered else ())

    def _update(self, w, g, state, f, lr):
        rho, one_minus_rho = f(self.rho), f(1 - self.rho)
        v = state["velocity"]
        v[...] = rho * v + one_minus_rho * (g * g)
        if self.centered:
            average = state["average_gradient"]
            average[...] = rho * average + one_minus_rho * g
            denominator = v - average * average + f(self.epsilon)
        else:
            denominator = v + f(self.epsilon)
        step = f(lr) * g / np.sqrt(denominator)
        if self.momentum > 0:
            m = state["momentum"]
            m[...] = f(self.momentum) * m + step
            w -= m
        else:
            w -= step

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


class Lion(Optimizer):
    """Sign momentum (Chen et al. 2023): ``w -= lr sign(beta_1 m + (1 - beta_1) g)``, then
    ``m = beta_2 m + (1 - beta_2) g``."""

    _slot_names = ("momentum",)

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2 = beta_1, beta_2
        if beta_1 <= 0 or beta_1 > 1:
            raise ValueError("Argument `beta_1` must be in the [0, 1] range. Otherwise, the optimizer degenerates to "
                             f"SignSGD. Received: beta_1={beta_1}.")

    def _update(self, w, g, state, f, lr):
        beta_1, beta_2 = _cast(self.beta_1, f), _cast(self.beta_2, f)
        m = state["momentum"]
        w -= f(lr) * np.sign(m * beta_1 + g * (f(1) - beta_1))
        m[...] = m * beta_2 + g * (f(1) - beta_2)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}
