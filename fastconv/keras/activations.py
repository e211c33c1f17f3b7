"""Activation functions and their derivatives, as ``keras.activations``.

Each function maps the pre-activation ``z`` to ``y`` with Keras's definition on TensorFlow.  Its
derivative ``gradient(fn)(y, dy, z=None)`` returns dL/dz from dL/dy: written in terms of the
output ``y`` where the output determines it (relu, sigmoid, tanh, softmax, elu...), so that a
layer keeps only its output for the backward pass; the few whose output does not determine the
slope (silu, gelu, hard_silu, mish, which are not monotonic; hard_tanh at its bounds;
tanh_shrink and squareplus, simpler from z) need ``z`` too, which ``needs_input(fn)`` tells the
layers to keep.  At a kink the derivative is TensorFlow's (relu's is 0 at 0).

``sigmoid`` and ``softmax`` also mark their layer's ``z`` as *logits*: a cross-entropy loss
computed on such an output uses ``z`` directly, as Keras on TensorFlow does (see
fastconv.keras.losses).

The parameters of some functions (``leaky_relu``'s negative_slope, ``elu``'s alpha, ``gelu``'s
approximate, ``softmax``'s axis) can be passed when calling them; as a layer's ``activation=``
they take their defaults, as in Keras.
"""
import math

import numpy as np

import fastconv

# SELU's constants (Klambauer et al. 2017), as tf.nn.selu.
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
# sqrt(2 / pi) and the cubic coefficient of gelu's tanh approximation.
_GELU_TANH_SCALE = math.sqrt(2 / math.pi)
_GELU_CUBIC = 0.044715


def linear(x):
    return x


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """max(x, 0); with the arguments, as the ReLU layer: max_value above it, x above
    threshold, negative_slope * (x - threshold) below."""
    if negative_slope == 0 and max_value is None and threshold == 0:
        # np.maximum keeps NaN, as tf.nn.relu does.
        return np.maximum(x, 0)
    x = np.asarray(x)
    y = np.where(x > threshold, x, negative_slope * (x - threshold)).astype(x.dtype, copy=False)
    return y if max_value is None else np.minimum(y, max_value).astype(x.dtype, copy=False)


def leaky_relu(x, negative_slope=0.2):
    """x for x > 0, negative_slope * x otherwise."""
    x = np.asarray(x)
    return np.where(x > 0, x, x * x.dtype.type(negative_slope))


def relu6(x):
    """min(max(x, 0), 6)."""
    return np.clip(x, 0, 6)


def sigmoid(x):
    # 1 / (1 + exp(-x)) for x >= 0 and exp(x) / (1 + exp(x)) for x < 0: no overflow, and the
    # small values (sigmoid(-20) = 2e-9) are kept.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1, e) / (1 + e)


def tanh(x):
    return np.tanh(x)


def softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    """x - log(sum(exp(x))) along ``axis``, shifted by the maximum so that nothing overflows."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def elu(x, alpha=1.0):
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""
    x = np.asarray(x)
    return np.where(x > 0, x, x.dtype.type(alpha) * np.expm1(np.minimum(x, 0)))


def selu(x):
    """scale * elu(x, alpha) with SELU's fixed alpha and scale."""
    x = np.asarray(x)
    neg = x.dtype.type(_SELU_ALPHA) * np.expm1(np.minimum(x, 0))
    return x.dtype.type(_SELU_SCALE) * np.where(x > 0, x, neg)


def softplus(x):
    """log(1 + exp(x)), computed without overflow."""
    return np.logaddexp(np.zeros((), dtype=np.asarray(x).dtype), x)


def softsign(x):
    """x / (1 + |x|)."""
    return x / (1 + np.abs(x))


def silu(x):
    """x * sigmoid(x) (also called swish)."""
    return x * sigmoid(x)


def _erf(x):
    # NumPy has no erf: math.erf element by element, exact but slow (0.4 s for 10^6 float32
    # values on the development machine, 800 times relu): the tanh approximation is 9 times faster.
    x = np.asarray(x)
    return np.frompyfunc(math.erf, 1, 1)(x).astype(x.dtype)


def gelu(x, approximate=False):
    """x * Phi(x), Phi the standard normal distribution function: 0.5 x (1 + erf(x / sqrt(2)));
    with ``approximate=True``, 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))."""
    x = np.asarray(x)
    if approximate:
        return 0.5 * x * (1 + np.tanh(x.dtype.type(_GELU_TANH_SCALE) * (x + x.dtype.type(_GELU_CUBIC) * x ** 3)))
    return 0.5 * x * (1 + _erf(x / x.dtype.type(math.sqrt(2))))


def hard_sigmoid(x):
    """relu6(x + 3) / 6: 0 below -3, 1 above 3, linear between (Keras 3's definition)."""
    return relu6(x + 3) / 6


def hard_silu(x):
    """x * hard_sigmoid(x) (also called hard_swish)."""
    return x * hard_sigmoid(x)


def exponential(x):
    return np.exp(x)


def mish(x):
    """x * tanh(softplus(x))."""
    return x * np.tanh(softplus(x))


def celu(x, alpha=1.0):
    """max(x, 0) + alpha * (exp(min(x, 0) / alpha) - 1)."""
    x = np.asarray(x)
    return np.maximum(x, 0) + x.dtype.type(alpha) * np.expm1(np.minimum(x, 0) / x.dtype.type(alpha))


def hard_tanh(x):
    """x clipped to [-1, 1]."""
    return np.clip(x, -1, 1)


def log_sigmoid(x):
    """log(sigmoid(x)) = -softplus(-x), without overflow."""
    return -softplus(-np.asarray(x))


def soft_shrink(x, threshold=0.5):
    """x - threshold above threshold, x + threshold below -threshold, 0 between."""
    x = np.asarray(x)
    t = x.dtype.type(threshold)
    return np.where(x > t, x - t, np.where(x < -t, x + t, x.dtype.type(0)))


def hard_shrink(x, threshold=0.5):
    """x where |x| > threshold, 0 elsewhere."""
    x = np.asarray(x)
    return np.where(np.abs(x) > threshold, x, x.dtype.type(0))


def tanh_shrink(x):
    """x - tanh(x)."""
    return x - np.tanh(x)


def squareplus(x, b=4):
    """(x + sqrt(x^2 + b)) / 2, a smooth relu."""
    x = np.asarray(x)
    return (x + np.sqrt(x * x + x.dtype.type(b))) / 2


def sparse_plus(x):
    """0 below -1, (x + 1)^2 / 4 between -1 and 1, x above."""
    x = np.asarray(x)
    return np.where(x <= -1, x.dtype.type(0), np.where(x < 1, (x + 1) ** 2 / 4, x))


def sparse_sigmoid(x):
    """0 below -1, (x + 1) / 2 between -1 and 1, 1 above."""
    return np.clip((np.asarray(x) + 1) / 2, 0, 1)


# Keras's other names for the same functions.
swish = silu
hard_swish = hard_silu


# ------------------------------------------------------------------------------------ derivatives
# Each takes (y, dy, z=None) and returns dL/dz.
def _linear_grad(y, dy, z=None):
    return dy


def _relu_grad(y, dy, z=None):
    return fastconv.relu_grad(dy, y)   # dy * (y > 0) in one threaded pass


def _leaky_relu_grad(y, dy, z=None):
    # y > 0 exactly where z > 0 (the slope 0.2 keeps the sign).
    return np.where(y > 0, dy, dy * dy.dtype.type(0.2))


def _relu6_grad(y, dy, z=None):
    return dy * ((y > 0) & (y < 6))


def _sigmoid_grad(y, dy, z=None):
    return dy * y * (1 - y)


def _tanh_grad(y, dy, z=None):
    return dy * (1 - y * y)


def _softmax_grad(y, dy, z=None):
    # Jacobian diag(y) - y y^T applied to dy, along the last axis.
    return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))


def _log_softmax_grad(y, dy, z=None):
    # d(z_i - logsumexp z) = dy_i - softmax_i * sum(dy), softmax = exp(y).
    return dy - np.exp(y) * np.sum(dy, axis=-1, keepdims=True)


def _elu_grad(y, dy, z=None):
    # Below 0, y = exp(z) - 1, so the slope exp(z) is y + 1 (TensorFlow's EluGrad).
    return np.where(y < 0, dy * (y + 1), dy)


def _selu_grad(y, dy, z=None):
    # Below 0, y = scale * alpha * (exp(z) - 1): the slope scale * alpha * exp(z) is y + scale * alpha.
    return np.where(y < 0, dy * (y + dy.dtype.type(_SELU_SCALE * _SELU_ALPHA)), dy * dy.dtype.type(_SELU_SCALE))


def _softplus_grad(y, dy, z=None):
    # The slope sigmoid(z) = 1 - exp(-y), since exp(y) = 1 + exp(z).
    return dy * -np.expm1(-y)


def _softsign_grad(y, dy, z=None):
    # 1 / (1 + |z|)^2, and 1 - |y| = 1 / (1 + |z|).
    return dy * (1 - np.abs(y)) ** 2


def _exponential_grad(y, dy, z=None):
    return dy * y


def _hard_sigmoid_grad(y, dy, z=None):
    # 1/6 strictly between the kinks (where 0 < y < 1), 0 elsewhere, as relu6's gradient.
    return dy * ((y > 0) & (y < 1)) / 6


def _celu_grad(y, dy, z=None):
    # exp(z) = y + 1 below 0; at 0 itself both max(z, 0) and min(z, 0) pass the gradient in
    # TensorFlow (ties go to their first argument), which makes it 2.
    return dy * (np.where(y > 0, 1, y + 1) + (y == 0))


def _log_sigmoid_grad(y, dy, z=None):
    # The slope sigmoid(-z) = 1 - sigmoid(z) = 1 - exp(y).
    return dy * -np.expm1(y)


def _shrink_grad(y, dy, z=None):
    # soft_shrink and hard_shrink: slope 1 where the output is not 0 (|z| > threshold).
    return dy * (y != 0)


def _sparse_plus_grad(y, dy, z=None):
    # (z + 1) / 2 = sqrt(y) between -1 and 1, 0 below, 1 above.
    return dy * np.sqrt(np.minimum(y, 1))


def _sparse_sigmoid_grad(y, dy, z=None):
    return dy * ((y > 0) & (y < 1)) / 2


def _hard_tanh_grad(y, dy, z):
    # TensorFlow's clip_by_value passes the gradient at the bounds themselves.
    return dy * ((z >= -1) & (z <= 1))


def _tanh_shrink_grad(y, dy, z):
    t = np.tanh(z)
    return dy * t * t


def _squareplus_grad(y, dy, z):
    return dy * (1 + z / np.sqrt(z * z + z.dtype.type(4))) / 2


def _silu_grad(y, dy, z):
    s = sigmoid(z)
    return dy * s * (1 + z * (1 - s))


def _gelu_grad(y, dy, z):
    # Phi(z) + z * phi(z), phi the standard normal density.
    t = z.dtype.type
    cdf = 0.5 * (1 + _erf(z / t(math.sqrt(2))))
    pdf = np.exp(-0.5 * z * z) / t(math.sqrt(2 * math.pi))
    return dy * (cdf + z * pdf)


def _hard_silu_grad(y, dy, z):
    inside = (z > -3) & (z < 3)
    return dy * (hard_sigmoid(z) + z * inside / 6)


def _mish_grad(y, dy, z):
    t = np.tanh(softplus(z))
    return dy * (t + z * (1 - t * t) * sigmoid(z))


_GRADIENTS = {linear: _linear_grad, relu: _relu_grad, leaky_relu: _leaky_relu_grad, relu6: _relu6_grad,
              sigmoid: _sigmoid_grad, tanh: _tanh_grad, softmax: _softmax_grad, log_softmax: _log_softmax_grad,
              elu: _elu_grad, selu: _selu_grad, softplus: _softplus_grad, softsign: _softsign_grad,
              exponential: _exponential_grad, hard_sigmoid: _hard_sigmoid_grad, silu: _silu_grad,
              gelu: _gelu_grad, hard_silu: _hard_silu_grad, mish: _mish_grad, celu: _celu_grad,
              hard_tanh: _hard_tanh_grad, log_sigmoid: _log_sigmoid_grad, soft_shrink: _shrink_grad,
              hard_shrink: _shrink_grad, tanh_shrink: _tanh_shrink_grad, squareplus: _squareplus_grad,
              sparse_plus: _sparse_plus_grad, sparse_sigmoid: _sparse_sigmoid_grad}
# The derivatives that need the pre-activation z.
_NEEDS_INPUT = frozenset({silu, gelu, hard_silu, mish, hard_tanh, tanh_shrink, squareplus})
# The names keras.activations.get accepts: each function's own name, and Keras's aliases.
_BY_NAME = {**{fn.__name__: fn for fn in _GRADIENTS}, "swish": silu, "hard_swish": hard_silu}
# Outputs of these carry their pre-activation as logits for the cross-entropy losses.
LOGIT_ACTIVATIONS = (sigmoid, softmax)


def get(identifier):
    """An activation function from its name, the function itself, or None (linear).

    A function from another library (``tf.keras.activations.relu``) is accepted by its name.
    Functions other than the ones above are refused: fastconv differentiates layer by layer and
    knows the derivative of these only.
    """
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        fn = _BY_NAME.get(identifier, _BY_NAME.get(identifier.lower()))
    elif callable(identifier):
        fn = identifier if identifier in _GRADIENTS else _BY_NAME.get(getattr(identifier, "__name__", None))
    else:
        fn = None
    if fn is None:
        raise ValueError(f"Could not interpret activation function identifier: {identifier!r}. "
                         f"fastconv.keras knows {sorted(_BY_NAME)}.")
    return fn


def gradient(fn):
    """The derivative of activation ``fn``: a function (y, dy, z=None) -> dz (``z`` needed only
    when :func:`needs_input` says so)."""
    return _GRADIENTS[fn]


def needs_input(fn):
    """Whether the derivative of ``fn`` needs the pre-activation z besides the output y."""
    return fn in _NEEDS_INPUT


def serialize(fn):
    """Keras's name of the function (``swish`` is saved as ``silu``, as Keras does)."""
    return fn.__name__


def deserialize(name):
    return get(name)
