"""Activation functions and their derivatives.

Each function maps the pre-activation ``z`` to ``y``; its derivative is written in terms of
the output ``y`` (``gradient(fn)(y, dy)`` returns dL/dz from dL/dy), so that a layer keeps only
its output for the backward pass.  ``sigmoid`` and ``softmax`` also mark their layer's ``z`` as
*logits*: a cross-entropy loss computed on such an output uses ``z`` directly, as Keras on
TensorFlow does (see fastconv.keras.losses).
"""
import numpy as np

import fastconv


def linear(x):
    return x


def relu(x):
    # np.maximum keeps NaN, as tf.nn.relu does.
    return np.maximum(x, 0)


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


def _linear_grad(y, dy):
    return dy


def _relu_grad(y, dy):
    return fastconv.relu_grad(dy, y)   # dy * (y > 0) in one threaded pass


def _sigmoid_grad(y, dy):
    return dy * y * (1 - y)


def _tanh_grad(y, dy):
    return dy * (1 - y * y)


def _softmax_grad(y, dy):
    # Jacobian diag(y) - y y^T applied to dy, along the last axis.
    return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))


_GRADIENTS = {linear: _linear_grad, relu: _relu_grad, sigmoid: _sigmoid_grad, tanh: _tanh_grad,
              softmax: _softmax_grad}
_BY_NAME = {fn.__name__: fn for fn in _GRADIENTS}
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
        fn = _BY_NAME.get(identifier.lower())
    elif callable(identifier):
        fn = identifier if identifier in _GRADIENTS else _BY_NAME.get(getattr(identifier, "__name__", None))
    else:
        fn = None
    if fn is None:
        raise ValueError(f"Could not interpret activation function identifier: {identifier!r}. "
                         f"fastconv.keras knows {sorted(_BY_NAME)}.")
    return fn


def gradient(fn):
    """The derivative of activation ``fn``: a function (y, dy) -> dz."""
    return _GRADIENTS[fn]


def serialize(fn):
    return fn.__name__


def deserialize(name):
    return get(name)
