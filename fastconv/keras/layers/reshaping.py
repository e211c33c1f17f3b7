"""Reshaping layers: ``Flatten``, ``Reshape``, ``Permute``, ``RepeatVector``, and on images
``ZeroPadding2D``, ``Cropping2D`` and ``UpSampling2D`` (nearest or bilinear)."""
import math
from typing import NamedTuple, Optional

import numpy as np

from fastconv.keras.layers._arguments import spatial_axes, standardize_data_format, standardize_tuple
from fastconv.keras.layers.base import InputSpec, Layer

__all__ = ["Cropping2D", "Flatten", "Permute", "RepeatVector", "Reshape", "UpSampling2D", "ZeroPadding2D"]


class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1 * d2 * ...); channels-first inputs are first put in
    channels-last order, as Keras does, so that the weights after it mean the same thing."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format, f'Flatten "{self.name}"')
        self.input_spec = InputSpec(min_ndim=1)

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        return (input_shape[0], None if any(d is None for d in rest) else math.prod(rest))

    def _channels_last(self, x):
        if self.data_format == "channels_first" and x.ndim > 2:
            return x.transpose(0, *range(2, x.ndim), 1)
        return x

    def forward(self, x, training=False):
        xc = self._channels_last(x)
        return xc.reshape(x.shape[0], -1), xc.shape

    def backward(self, shape, grad, need_input_grad=True):
        g = grad.reshape(shape)
        if self.data_format == "channels_first" and g.ndim > 2:
            g = g.transpose(0, g.ndim - 1, *range(1, g.ndim - 1))
        return g, {}

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class Reshape(Layer):
    """(batch, ...) -> (batch, *target_shape); one entry of ``target_shape`` may be -1, the size
    that keeps the number of elements."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        try:
            target_shape = tuple(target_shape)
        except TypeError:
            raise ValueError(f'Reshape "{self.name}": target_shape must be a tuple of ints. '
                             f"Received: target_shape={target_shape!r}") from None
        if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in target_shape):
            raise ValueError(f'Reshape "{self.name}": target_shape must be a tuple of ints. '
                             f"Received: target_shape={target_shape}")
        if any(d < -1 for d in target_shape):
            raise ValueError(f'Reshape "{self.name}": each dimension in `target_shape` must be a non-negative '
                             f"integer, or `-1` for a single unknown dimension. Received: target_shape={target_shape}.")
        if target_shape.count(-1) > 1:
            raise ValueError(f'Reshape "{self.name}": there must be at most one unknown dimension (-1) in '
                             f"`target_shape`. Received: target_shape={target_shape}.")
        self.target_shape = tuple(int(d) for d in target_shape)

    def compute_output_shape(self, input_shape):
        rest = tuple(input_shape[1:])
        if None in rest:
            return (input_shape[0], *(None if d == -1 else d for d in self.target_shape))
        size = math.prod(rest)
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 not in self.target_shape:
            if known != size:
                raise ValueError(f'Reshape "{self.name}": the total size of the tensor must be unchanged. '
                                 f"Received: input_shape={rest}, target_shape={self.target_shape}")
            return (input_shape[0], *self.target_shape)
        if known == 0 or size % known:
            raise ValueError(f'Reshape "{self.name}": the total size of the tensor must be unchanged, and '
                             f"{size} elements cannot fill target_shape={self.target_shape}. "
                             f"Received: input_shape={rest}")
        return (input_shape[0], *(size // known if d == -1 else d for d in self.target_shape))

    def _check_input(self, shapes):
        self.compute_output_shape(shapes[0])

    def forward(self, x, training=False):
        return x.reshape((x.shape[0],) + self.compute_output_shape(x.shape)[1:]), x.shape

    def backward(self, shape, grad, need_input_grad=True):
        return grad.reshape(shape), {}

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}


class Permute(Layer):
    """Reorders the axes after the batch: ``Permute((2, 1))`` swaps the two axes of a
    (batch, a, b) input."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        try:
            dims = tuple(dims)
        except TypeError:
            dims = (dims,)
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f'Permute "{self.name}": invalid permutation argument `dims` for Permute Layer. The set '
                             f"of indices in `dims` must be consecutive and start from 1. Received dims={dims}")
        self.dims = tuple(int(d) for d in dims)
        self.input_spec = InputSpec(ndim=len(self.dims) + 1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *(input_shape[d] for d in self.dims))

    def forward(self, x, training=False):
        return x.transpose((0,) + self.dims), None

    def backward(self, cache, grad, need_input_grad=True):
        return grad.transpose(np.argsort((0,) + self.dims)), {}

    def get_config(self):
        return {**super().get_config(), "dims": self.dims}


class RepeatVector(Layer):
    """(batch, features) -> (batch, n, features): the input repeated ``n`` times."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
            raise TypeError(f'RepeatVector "{self.name}": expected an integer value for `n`, got {type(n)}.')
        if n <= 0:
            raise ValueError(f'RepeatVector "{self.name}": argument `n` should be a positive integer. Received: n={n}')
        self.n = int(n)
        self.input_spec = InputSpec(ndim=2)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def forward(self, x, training=False):
        return np.repeat(x[:, None, :], self.n, axis=1), None

    def backward(self, cache, grad, need_input_grad=True):
        return grad.sum(axis=1), {}

    def get_config(self):
        return {**super().get_config(), "n": self.n}


def _pair_of_pairs(value, argument, owner):
    """An int, a pair of ints (symmetric) or a pair of pairs ((top, bottom), (left, right)) ->
    ((top, bottom), (left, right)) of non-negative ints, as Keras's ZeroPadding2D and Cropping2D."""
    def non_negative(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0

    if non_negative(value):
        return ((int(value),) * 2,) * 2
    try:
        entries = tuple(value)
    except TypeError:
        entries = None
    if entries is not None and len(entries) == 2:
        pairs = []
        for entry in entries:
            entry = (entry, entry) if non_negative(entry) else entry
            try:
                entry = tuple(entry)
            except TypeError:
                break
            if len(entry) != 2 or not all(non_negative(v) for v in entry):
                break
            pairs.append(tuple(int(v) for v in entry))
        if len(pairs) == 2:
            return tuple(pairs)
    raise ValueError(f"{owner}: `{argument}` should be either a non-negative int, a tuple of 2 ints "
                     f"(symmetric_height_{argument}, symmetric_width_{argument}), or a tuple of 2 tuples of 2 ints "
                     f"((top_{argument}, bottom_{argument}), (left_{argument}, right_{argument})). "
                     f"Received: {argument}={value!r}.")


class ZeroPadding2D(Layer):
    """Adds rows and columns of zeros around images: ``padding`` an int (all sides), a pair
    (symmetric height, width) or ((top, bottom), (left, right))."""

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        owner = f'ZeroPadding2D "{self.name}"'
        self.data_format = standardize_data_format(data_format, owner)
        self.padding = _pair_of_pairs(padding, "padding", owner)
        self.input_spec = InputSpec(ndim=4)
        self._axes = spatial_axes(self.data_format)

    def compute_output_shape(self, input_shape):
        out = list(input_shape)
        for axis, (before, after) in zip(self._axes, self.padding):
            out[axis] = None if out[axis] is None else out[axis] + before + after
        return tuple(out)

    def forward(self, x, training=False):
        widths = [(0, 0)] * 4
        for axis, pair in zip(self._axes, self.padding):
            widths[axis] = pair
        return np.pad(x, widths), None

    def backward(self, cache, grad, need_input_grad=True):
        index = [slice(None)] * 4
        for axis, (before, after) in zip(self._axes, self.padding):
            index[axis] = slice(before, grad.shape[axis] - after)
        return grad[tuple(index)].copy(), {}

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "data_format": self.data_format}


class Cropping2D(Layer):
    """Removes rows and columns at the borders of images: ``cropping`` an int, a pair or
    ((top, bottom), (left, right)), as ZeroPadding2D's ``padding``."""

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        owner = f'Cropping2D "{self.name}"'
        self.data_format = standardize_data_format(data_format, owner)
        self.cropping = _pair_of_pairs(cropping, "cropping", owner)
        self.input_spec = InputSpec(ndim=4)
        self._axes = spatial_axes(self.data_format)

    def compute_output_shape(self, input_shape):
        out = list(input_shape)
        for axis, (before, after) in zip(self._axes, self.cropping):
            if out[axis] is not None and before + after >= out[axis]:
                raise ValueError(f'Cropping2D "{self.name}": values in `cropping` argument should be smaller than the '
                                 f"corresponding spatial dimension of the input. Received: "
                                 f"input_shape={tuple(input_shape)}, cropping={self.cropping}")
            out[axis] = None if out[axis] is None else out[axis] - before - after
        return tuple(out)

    def _check_input(self, shapes):
        super()._check_input(shapes)
        self.compute_output_shape(shapes[0])

    def forward(self, x, training=False):
        index = [slice(None)] * 4
        for axis, (before, after) in zip(self._axes, self.cropping):
            index[axis] = slice(before, x.shape[axis] - after)
        return x[tuple(index)], x.shape

    def backward(self, shape, grad, need_input_grad=True):
        widths = [(0, 0)] * 4
        for axis, pair in zip(self._axes, self.cropping):
            widths[axis] = pair
        return np.pad(grad, widths), {}

    def get_config(self):
        return {**super().get_config(), "cropping": self.cropping, "data_format": self.data_format}


def _bilinear_matrix(size, factor, dtype):
    """The (size * factor, size) matrix of a bilinear upscaling along one axis, with half-pixel
    centers as tf.image.resize: output i samples the input at (i + 0.5) / factor - 0.5, between
    floor and floor + 1 (clamped to the edges) with the fractional part as weight."""
    position = (np.arange(size * factor) + 0.5) / factor - 0.5
    below = np.floor(position)
    weight_above = position - below
    lower = np.clip(below, 0, size - 1).astype(int)
    upper = np.clip(below + 1, 0, size - 1).astype(int)
    matrix = np.zeros((size * factor, size))
    rows = np.arange(size * factor)
    np.add.at(matrix, (rows, lower), 1 - weight_above)
    np.add.at(matrix, (rows, upper), weight_above)
    return matrix.astype(dtype)


class UpSamplingCache(NamedTuple):
    rows: Optional[np.ndarray]     # the bilinear matrices (None for nearest)
    columns: Optional[np.ndarray]


class UpSampling2D(Layer):
    """Enlarges images by ``size`` = (rows, columns) factors: each pixel repeated
    (``interpolation="nearest"``) or bilinear interpolation with half-pixel centers as
    ``tf.image.resize`` (``"bilinear"``)."""

    _INTERPOLATIONS = ("nearest", "bilinear")

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        owner = f'UpSampling2D "{self.name}"'
        self.data_format = standardize_data_format(data_format, owner)
        self.size = standardize_tuple(size, 2, "size", owner)
        mode = interpolation.lower() if isinstance(interpolation, str) else interpolation
        if mode not in self._INTERPOLATIONS:
            raise ValueError(f'{owner}: fastconv.keras implements interpolation "nearest" and "bilinear" only. '
                             f"Received: interpolation={interpolation!r}")
        self.interpolation = mode
        self.input_spec = InputSpec(ndim=4)
        self._axes = spatial_axes(self.data_format)

    def compute_output_shape(self, input_shape):
        out = list(input_shape)
        for axis, factor in zip(self._axes, self.size):
            out[axis] = None if out[axis] is None else out[axis] * factor
        return tuple(out)

    def forward(self, x, training=False):
        h_axis, w_axis = self._axes
        if self.interpolation == "nearest":
            y = np.repeat(np.repeat(x, self.size[0], axis=h_axis), self.size[1], axis=w_axis)
            return y, UpSamplingCache(None, None)
        rows = _bilinear_matrix(x.shape[h_axis], self.size[0], x.dtype)
        columns = _bilinear_matrix(x.shape[w_axis], self.size[1], x.dtype)
        return self._apply(x, rows, columns), UpSamplingCache(rows, columns)

    def _apply(self, x, rows, columns):
        """rows @ image @ columns^T for each image and channel."""
        h_axis, w_axis = self._axes
        y = np.moveaxis(np.tensordot(rows, x, axes=([1], [h_axis])), 0, h_axis)
        return np.moveaxis(np.tensordot(columns, y, axes=([1], [w_axis])), 0, w_axis)

    def backward(self, cache, grad, need_input_grad=True):
        h_axis, w_axis = self._axes
        if cache.rows is None:
            # Each input pixel receives the sum of the gradients of its copies.
            shape = list(grad.shape)
            shape[w_axis:w_axis + 1] = [grad.shape[w_axis] // self.size[1], self.size[1]]
            shape[h_axis:h_axis + 1] = [grad.shape[h_axis] // self.size[0], self.size[0]]
            return grad.reshape(shape).sum(axis=(h_axis + 1, w_axis + 2)), {}
        return self._apply(grad, cache.rows.T, cache.columns.T), {}

    def get_config(self):
        return {**super().get_config(), "size": self.size, "data_format": self.data_format,
                "interpolation": self.interpolation}
