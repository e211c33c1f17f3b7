"""Merging layers: the element-wise ``Add``, ``Subtract``, ``Multiply``, ``Average``, ``Maximum``,
``Minimum``, and ``Concatenate``; with Keras's functional forms (``add([a, b])``...).

As in Keras, the element-wise layers broadcast their inputs: inputs of lower rank get axes of
size 1 inserted after the batch axis until every input has the same rank, then sizes of 1
stretch.  The backward pass sums each gradient back over the axes that were stretched.
"""
from typing import NamedTuple

import numpy as np

from fastconv.keras.layers.base import Layer

__all__ = ["Add", "Average", "Concatenate", "Maximum", "Minimum", "Multiply", "Subtract", "add", "average",
           "concatenate", "maximum", "minimum", "multiply", "subtract"]


def _unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting stretched, back to ``shape``."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    axes = tuple(i for i, d in enumerate(shape) if d == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


def _check_list_of_shapes(layer, input_shapes):
    if not isinstance(input_shapes, (list, tuple)) or not input_shapes or \
            not all(isinstance(s, (list, tuple)) for s in input_shapes):
        raise ValueError(f'{type(layer).__name__} "{layer.name}": a merge layer should be called on a list of at '
                         f"least 1 input. Received: input_shape={input_shapes}")


def _batch_size(layer, input_shapes):
    sizes = {s[0] for s in input_shapes if s} - {None}
    if len(sizes) > 1:
        raise ValueError(f'{type(layer).__name__} "{layer.name}": cannot merge tensors with different batch sizes. '
                         f"Received tensors with shapes {list(input_shapes)}")
    return sizes.pop() if sizes else None


class MergeCache(NamedTuple):
    merge: object   # what the layer's own gradient needs (the inputs of Multiply, the winners of Maximum...)
    shapes: list    # the inputs' shapes, to sum the gradients back over broadcast axes


class _ElementwiseMerge(Layer):
    """An element-wise merge of a list of inputs (Keras's ``Merge``); subclasses define
    ``_merge(inputs) -> (output, cache)`` and ``_merge_grads(cache, grad) -> [grad per input]``
    on inputs already of the same rank."""

    _multiple_inputs = True

    def compute_output_shape(self, input_shapes):
        _check_list_of_shapes(self, input_shapes)
        batch = _batch_size(self, input_shapes)
        rank = max(len(s) for s in input_shapes)
        out = [1] * (rank - 1)  # the non-batch axes, aligned on the right
        for shape in input_shapes:
            for i, d in enumerate(shape[1:], start=rank - len(shape)):
                if out[i] is None or d is None:
                    out[i] = None  # unknown stays unknown, as in Keras
                elif out[i] == 1:
                    out[i] = d
                elif d != 1 and d != out[i]:
                    raise ValueError(f'{type(self).__name__} "{self.name}": inputs have incompatible shapes. '
                                     f"Received shapes {[tuple(s) for s in input_shapes]}")
        return (batch, *out)

    def _check_input(self, shapes):
        self.compute_output_shape([tuple(s) for s in shapes])

    def _same_rank(self, inputs):
        """Axes of size 1 after the batch axis, until every input has the rank of the largest."""
        rank = max(x.ndim for x in inputs)
        return [x.reshape(x.shape[:1] + (1,) * (rank - x.ndim) + x.shape[1:]) for x in inputs]

    def call(self, inputs, training=False):
        return self._merge(self._same_rank(inputs))[0]

    def forward(self, inputs, training=False):
        y, merge = self._merge(self._same_rank(inputs))
        return y, MergeCache(merge, [x.shape for x in inputs])

    def backward(self, cache, grad, need_input_grad=True):
        grads = self._merge_grads(cache.merge, grad)
        # Each gradient summed over its stretched axes, then back to the input's own rank.
        return [_unbroadcast(g, s[:1] + (1,) * (grad.ndim - len(s)) + s[1:]).reshape(s)
                for g, s in zip(grads, cache.shapes)], {}


class Add(_ElementwiseMerge):
    """The element-wise sum of a list of inputs: ``Add()([x, shortcut])``."""

    def _merge(self, inputs):
        y = inputs[0]
        for x in inputs[1:]:
            y = y + x
        return y, len(inputs)

    def _merge_grads(self, count, grad):
        return [grad] * count


class Subtract(_ElementwiseMerge):
    """``inputs[0] - inputs[1]`` (exactly two inputs)."""

    def compute_output_shape(self, input_shapes):
        _check_list_of_shapes(self, input_shapes)
        if len(input_shapes) != 2:
            raise ValueError(f'Subtract "{self.name}": a `Subtract` layer should be called on exactly 2 inputs. '
                             f"Received: input_shape={list(input_shapes)}")
        return super().compute_output_shape(input_shapes)

    def _merge(self, inputs):
        return inputs[0] - inputs[1], None

    def _merge_grads(self, cache, grad):
        return [grad, -grad]


class Multiply(_ElementwiseMerge):
    """The element-wise product of a list of inputs."""

    def _merge(self, inputs):
        y = inputs[0]
        for x in inputs[1:]:
            y = y * x
        return y, inputs

    def _merge_grads(self, inputs, grad):
        # d/dx_i = grad * (the product of the other inputs): products of the inputs before i and
        # after i, so that a zero input needs no division.
        before = [None]
        for x in inputs[:-1]:
            before.append(x if before[-1] is None else before[-1] * x)
        grads, after = [None] * len(inputs), None
        for i in range(len(inputs) - 1, -1, -1):
            others = [p for p in (before[i], after) if p is not None]
            g = grad
            for p in others:
                g = g * p
            grads[i] = g
            after = inputs[i] if after is None else inputs[i] * after
        return grads


class Average(_ElementwiseMerge):
    """The element-wise mean of a list of inputs."""

    def _merge(self, inputs):
        y = inputs[0]
        for x in inputs[1:]:
            y = y + x
        return y / len(inputs), len(inputs)

    def _merge_grads(self, count, grad):
        return [grad / count] * count


class _ExtremumCache(NamedTuple):
    winner: np.ndarray  # index of the input that gave each output element
    count: int


class _Extremum(_ElementwiseMerge):
    """Maximum and Minimum: the gradient of each output element goes to the input that gave
    it; on ties, to the first of them, as TensorFlow's gradient of maximum(a, b) goes to a
    when a == b and Keras folds the list from the left."""

    _beats = None  # np.greater or np.less: when a later input replaces the current extremum

    def _merge(self, inputs):
        y = inputs[0]
        winner = np.zeros(np.broadcast_shapes(*(x.shape for x in inputs)), dtype=np.min_scalar_type(len(inputs)))
        for i, x in enumerate(inputs[1:], start=1):
            winner[type(self)._beats(x, y)] = i
            y = self._fold(y, x)
        return y, _ExtremumCache(winner, len(inputs))

    def _merge_grads(self, cache, grad):
        zero = grad.dtype.type(0)
        return [np.where(cache.winner == i, grad, zero) for i in range(cache.count)]


class Maximum(_Extremum):
    """The element-wise maximum of a list of inputs."""

    _beats = np.greater
    _fold = staticmethod(np.maximum)


class Minimum(_Extremum):
    """The element-wise minimum of a list of inputs."""

    _beats = np.less
    _fold = staticmethod(np.minimum)


class ConcatenateCache(NamedTuple):
    axis: int
    sizes: list


class Concatenate(Layer):
    """Joins a list of inputs along ``axis`` (default: the last, the channels of images); the
    other axes must match."""

    _multiple_inputs = True

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
            raise ValueError(f'Concatenate "{self.name}": axis must be an int. Received: axis={axis!r}')
        self.axis = int(axis)

    def compute_output_shape(self, input_shapes):
        if not isinstance(input_shapes, (list, tuple)) or not input_shapes or \
                not all(isinstance(s, (list, tuple)) for s in input_shapes):
            raise ValueError(f'Concatenate "{self.name}": a `Concatenate` layer should be called on a list of at '
                             f"least 1 input. Received: input_shape={input_shapes}")
        rank = len(input_shapes[0])
        if not -rank <= self.axis < rank:
            raise ValueError(f'Concatenate "{self.name}": axis {self.axis} is out of range for inputs of rank {rank}. '
                             f"Received: input_shape={[tuple(s) for s in input_shapes]}")
        axis = self.axis % rank
        out = list(input_shapes[0])
        mismatch = ValueError(f'Concatenate "{self.name}": a `Concatenate` layer requires inputs with matching shapes '
                              f"except for the concatenation axis. Received: input_shape="
                              f"{[tuple(s) for s in input_shapes]}")
        for shape in input_shapes[1:]:
            if len(shape) != rank:
                raise mismatch
            for i, d in enumerate(shape):
                if i == axis:
                    out[i] = None if out[i] is None or d is None else out[i] + d
                elif out[i] is None:
                    out[i] = d
                elif d is not None and d != out[i]:
                    raise mismatch
        return tuple(out)

    def _check_input(self, shapes):
        self.compute_output_shape([tuple(s) for s in shapes])

    def call(self, inputs, training=False):
        return np.concatenate(inputs, axis=self.axis)

    def forward(self, inputs, training=False):
        return self.call(inputs), ConcatenateCache(self.axis, [x.shape[self.axis] for x in inputs])

    def backward(self, cache, grad, need_input_grad=True):
        bounds = np.cumsum(cache.sizes)[:-1]
        return np.split(grad, bounds, axis=cache.axis), {}

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


# Keras's functional forms: add([a, b]) is Add()([a, b]).
def add(inputs, **kwargs):
    """The element-wise sum of ``inputs`` (an ``Add`` layer called on them)."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    """``inputs[0] - inputs[1]`` (a ``Subtract`` layer called on them)."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    """The element-wise product of ``inputs`` (a ``Multiply`` layer called on them)."""
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    """The element-wise mean of ``inputs`` (an ``Average`` layer called on them)."""
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    """The element-wise maximum of ``inputs`` (a ``Maximum`` layer called on them)."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    """The element-wise minimum of ``inputs`` (a ``Minimum`` layer called on them)."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    """``inputs`` joined along ``axis`` (a ``Concatenate`` layer called on them)."""
    return Concatenate(axis=axis, **kwargs)(inputs)
