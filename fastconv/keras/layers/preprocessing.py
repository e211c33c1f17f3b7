"""Preprocessing and augmentation layers, as Keras 3's ``keras.layers``: ``Rescaling``,
``Normalization`` (with ``adapt``), ``Resizing``, ``CenterCrop``, and the random
augmentations ``RandomCrop``, ``RandomFlip``, ``RandomRotation``, ``RandomZoom``,
``RandomTranslation``, ``RandomContrast`` and ``RandomBrightness``.

The random layers act only in training (``training=True``, as ``fit`` calls them) and return
their input unchanged otherwise, as in Keras 3.  Each splits its work as Keras's does:
``get_random_transformation(data, training, seed)`` draws a dictionary of parameters for the
batch (the same keys as Keras's), ``transform_images(images, transformation, training)``
applies it.  A dictionary drawn by Keras, converted to NumPy, therefore gives the same images
here.

The geometric layers build Keras's projective transform ``[a0, a1, a2, b0, b1, b2, c0, c1]``,
which maps OUTPUT pixel (x=column, y=row) to INPUT position (a0 x + a1 y + a2, b0 x + b1 y + b2),
and warp with :func:`fastconv.image.affine_transform`, whose inverse map is written in (row,
column) order: the matrix ``[[b1, b0, b2], [a1, a0, a2]]``.  TensorFlow's fill rules and
SciPy's agree for 'reflect' and 'nearest'; for 'constant' TensorFlow blends the edge pixels with
the fill value over the one-pixel band just outside the image, which fastconv reproduces by
warping the image with a one-pixel border of the fill value.  TensorFlow's 'wrap' (period n, a
jump inside the band at the seam) has no counterpart in the kernel: it is refused.
"""
import itertools
import math
import numbers
from typing import NamedTuple

import numpy as np

from fastconv.image import affine_transform, nearest_indices, resize
from fastconv.keras import backend
from fastconv.keras.layers._arguments import standardize_data_format
from fastconv.keras.layers.base import Layer, Variable

__all__ = ["CenterCrop", "Normalization", "RandomBrightness", "RandomContrast", "RandomCrop", "RandomFlip",
           "RandomRotation", "RandomTranslation", "RandomZoom", "Rescaling", "Resizing"]

_FILL_MODES = ("reflect", "wrap", "constant", "nearest")
_INTERPOLATIONS = ("nearest", "bilinear")


def _owner(layer):
    return f'{type(layer).__name__} "{layer.name}"'


def _plain(value):
    """A configuration value as JSON holds it (an array becomes a list)."""
    return np.asarray(value).tolist() if isinstance(value, np.ndarray) else value


def _pair(value):
    """A factor as a configuration keeps it: a number, None, or a tuple (a JSON list read back)."""
    return tuple(value) if isinstance(value, (list, tuple, np.ndarray)) else value


def _check_fill_and_interpolation(layer, fill_mode, interpolation):
    if fill_mode not in _FILL_MODES:
        raise NotImplementedError(f"Unknown `fill_mode` {fill_mode}. Expected of one {_FILL_MODES}.")
    if interpolation not in _INTERPOLATIONS:
        raise NotImplementedError(f"Unknown `interpolation` {interpolation}. Expected of one {_INTERPOLATIONS}.")
    if fill_mode == "wrap":
        raise NotImplementedError(
            f"{_owner(layer)}: fill_mode='wrap' is not implemented by fastconv.keras (TensorFlow's wrap, period n "
            "with a jump at the seam, is not the kernel's); use 'reflect', 'nearest' or 'constant'. "
            "Received: fill_mode='wrap'")


# ------------------------------------------------------------------------------------ resizing
def _bilinear_weights(in_size, out_size):
    """The (out_size, in_size) matrix of TensorFlow's bilinear resize with half-pixel centres:
    output i reads input position (i + 0.5) * in/out - 0.5, between its floor and ceiling
    clamped into the image."""
    position = (np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5
    low = np.floor(position)
    frac = position - low
    lo = np.clip(low, 0, in_size - 1).astype(np.int64)
    hi = np.clip(low + 1, 0, in_size - 1).astype(np.int64)
    weights = np.zeros((out_size, in_size))
    np.add.at(weights, (np.arange(out_size), lo), 1 - frac)
    np.add.at(weights, (np.arange(out_size), hi), frac)
    return weights


def _resize_nhwc(x, height, width, interpolation):
    """Resize an NHWC batch as ``tf.image.resize`` (no antialiasing), keeping its dtype."""
    if tuple(x.shape[1:3]) == (height, width):
        return x
    return resize(x, (height, width), method=interpolation, dtype=x.dtype).astype(x.dtype, copy=False)


def _resize_nhwc_grad(grad, in_hw, interpolation):
    """The gradient of :func:`_resize_nhwc` with respect to its input (the transposed map)."""
    (h, w), (height, width) = in_hw, grad.shape[1:3]
    if (h, w) == (height, width):
        return grad
    if interpolation == "nearest":
        out = np.zeros((grad.shape[0], h, w, grad.shape[3]), dtype=grad.dtype)
        rows, cols = nearest_indices(h, height), nearest_indices(w, width)
        np.add.at(out, (slice(None), rows[:, None], cols[None, :]), grad)
        return out
    rh, rw = _bilinear_weights(h, height).astype(grad.dtype), _bilinear_weights(w, width).astype(grad.dtype)
    return np.einsum("ih,nijc,jw->nhwc", rh, grad, rw, optimize=True)


def _aspect_crop_box(h, w, height, width):
    """Keras's centred crop of an (h, w) image to the aspect ratio height:width: (top, left,
    crop height, crop width)."""
    crop_h = max(min(h, int(float(w * height) / width)), 1)
    crop_w = max(min(w, int(float(h * width) / height)), 1)
    return int(float(h - crop_h) / 2), int(float(w - crop_w) / 2), crop_h, crop_w


class _CropResizeCache(NamedTuple):
    input_shape: tuple       # NHWC
    box: tuple               # (top, left, height, width) of the crop before the resize
    interpolation: str
    pad: tuple = (0, 0)      # rows, columns of fill added on each side before the resize


def _crop_resize_backward(cache, grad_nhwc):
    top, left, ch, cw = cache.box
    pad_h, pad_w = cache.pad
    g = _resize_nhwc_grad(grad_nhwc, (ch + 2 * pad_h, cw + 2 * pad_w), cache.interpolation)
    out = np.zeros(cache.input_shape, dtype=grad_nhwc.dtype)
    out[:, top:top + ch, left:left + cw] = g[:, pad_h:pad_h + ch, pad_w:pad_w + cw]
    return out


def _aspect_pad(h, w, height, width):
    """Keras's padding of an (h, w) image to the aspect ratio height:width: the rows and the
    columns of fill added on each side (TensorFlow pads both sides by the same amount)."""
    pad_h = max(h, int(float(w * height) / width))
    pad_w = max(w, int(float(h * width) / height))
    return int(float(pad_h - h) / 2), int(float(pad_w - w) / 2)


# ------------------------------------------------------------------------------- image base class
class _ImageLayer(Layer):
    """Images of rank 4 (a batch) or 3 (one image), channels last or first; the work is done in
    NHWC on batches."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format, _owner(self))

    def _hw_axes(self, ndim):
        return (ndim - 3, ndim - 2) if self.data_format == "channels_last" else (ndim - 2, ndim - 1)

    def _check_rank(self, images):
        if images.ndim not in (3, 4):
            raise ValueError("Expected image tensor to have rank 3 (single image) or 4 (batch of images). "
                             f"Received: data.shape={images.shape}")

    def _to_nhwc(self, images):
        self._check_rank(images)
        x = images if images.ndim == 4 else images[None]
        return x if self.data_format == "channels_last" else x.transpose(0, 2, 3, 1)

    def _from_nhwc(self, x, like):
        x = x if self.data_format == "channels_last" else x.transpose(0, 3, 1, 2)
        return x if like.ndim == 4 else x[0]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class _RandomImageLayer(_ImageLayer):
    """A random augmentation: ``get_random_transformation`` then ``transform_images``, in
    training only."""

    def __init__(self, seed=None, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise ValueError(f"{_owner(self)}: seed must be an int or None. Received: seed={seed!r}")
        self.seed = seed
        self._rng = None if seed is None else np.random.default_rng(seed)

    def _generator(self, seed):
        """The generator of one draw: ``seed`` (an int or a NumPy Generator) when given, else the
        layer's own (from its ``seed``), else fastconv.keras's global one."""
        if seed is None:
            return self._rng or backend.random_generator()
        return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    def _batch_and_size(self, images):
        shape = np.shape(images)
        if len(shape) not in (3, 4):
            raise ValueError("Expected image tensor to have rank 3 (single image) or 4 (batch of images). "
                             f"Received: data.shape={tuple(shape)}")
        hy, wx = self._hw_axes(len(shape))
        return (shape[0] if len(shape) == 4 else 1), shape[hy], shape[wx]

    def get_random_transformation(self, data, training=True, seed=None):
        raise NotImplementedError

    def transform_images(self, images, transformation, training=True):
        raise NotImplementedError

    def call(self, inputs, training=True):
        return self.forward(inputs, training)[0]

    def forward(self, inputs, training=False):
        images = np.asarray(inputs, dtype=self.dtype)
        if not training:
            return images, None
        transformation = self.get_random_transformation(images, training=True)
        return self.transform_images(images, transformation, training=True), transformation

    def backward(self, transformation, grad, need_input_grad=True):
        if transformation is None or not need_input_grad:
            return (grad if need_input_grad else None), {}
        return self._images_grad(transformation, grad), {}

    def _images_grad(self, transformation, grad):
        raise ValueError(f"{_owner(self)}: fastconv.keras has no gradient through this augmentation in training; "
                         "place it before the first layer with weights (as augmentation layers are used)")


class _AffineImageLayer(_RandomImageLayer):
    """A random layer that warps by Keras's projective transforms."""

    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        _check_fill_and_interpolation(self, fill_mode, interpolation)
        self.fill_mode, self.interpolation = fill_mode, interpolation
        try:
            self.fill_value = float(fill_value)
        except (TypeError, ValueError):
            raise TypeError(f"{_owner(self)}: fill_value must be a number. "
                            f"Received: fill_value={fill_value!r}") from None

    def _warp(self, images, transforms):
        """``images`` warped by the (N, 8) projective transforms (or one of shape (8,))."""
        t = np.asarray(transforms, dtype=np.float64).reshape(-1, 8)
        if np.any(t[:, 6:] != 0):
            raise ValueError(f"{_owner(self)}: projective transforms (c0, c1 not 0) are not supported by the affine "
                             "warp of fastconv")
        a0, a1, a2, b0, b1, b2 = t[:, :6].T
        matrices = np.stack([np.stack([b1, b0, b2], 1), np.stack([a1, a0, a2], 1)], 1)
        x = self._to_nhwc(images)
        order = 1 if self.interpolation == "bilinear" else 0
        if self.fill_mode == "constant":
            # TensorFlow reads the fill value for every neighbour outside the image: a border of
            # it, one pixel wide, blends the band just outside as TensorFlow does.
            padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=self.fill_value)
            matrices = matrices + np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
            out = affine_transform(padded, matrices, order=order, fill_mode="constant", cval=self.fill_value,
                                   output_shape=x.shape[1:3])
        else:
            out = affine_transform(x, matrices, order=order, fill_mode=self.fill_mode)
        return self._from_nhwc(out.astype(self.dtype, copy=False), images)

    def get_config(self):
        return {**super().get_config(), "fill_mode": self.fill_mode, "interpolation": self.interpolation,
                "seed": self.seed, "fill_value": self.fill_value}


def _factor_pair(layer, factor, name, low, high, low_open=False):
    """Keras's factor rule: a number f gives (-|f|, |f|), a pair gives itself sorted; both within
    [low, high] ((low, high] with low_open)."""
    message = (f"The `{name}` argument should be a number (or a list of two numbers) in the range "
               f"{'(' if low_open else '['}{low}, {high}]. Received: {name}={factor}")
    if isinstance(factor, (tuple, list)):
        values = list(factor)
        if len(values) != 2:
            raise ValueError(message)
    elif isinstance(factor, numbers.Real) and not isinstance(factor, bool):
        values = [-abs(factor), abs(factor)]
    else:
        raise ValueError(message)
    for v in values:
        if not isinstance(v, numbers.Real) or v > high or v < low or (low_open and v == low):
            raise ValueError(message)
    return tuple(sorted(values))


def _base_factor(layer, factor, bounds):
    """BaseImagePreprocessingLayer's factor: a number f gives (max(-|f|, low), |f|), a pair gives
    itself sorted."""
    low, high = bounds
    message = ("The `factor` argument should be a number (or a list of two numbers) in the range "
               f"[{low}, {high}]. Received: factor={factor}")
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or factor[0] > high or factor[1] < low:
            raise ValueError(message)
        return tuple(sorted(factor))
    if isinstance(factor, numbers.Real) and not isinstance(factor, bool):
        if factor < low or factor > high:
            raise ValueError(message)
        return (max(-abs(factor), low), abs(factor))
    raise ValueError(message)


def _affine_matrix(angle_degrees, height, width):
    """Keras's rotation about the image centre ((width - 1) / 2, (height - 1) / 2), as (N, 8)
    projective transforms from output to input."""
    theta = np.deg2rad(np.asarray(angle_degrees, dtype=np.float32))
    cx, cy = 0.5 * (width - 1), 0.5 * (height - 1)
    cos, sin = np.cos(theta), np.sin(theta)
    a0, a1, b0, b1 = cos, -sin, sin, cos
    a2 = cx - cx * a0 - cy * a1
    b2 = cy - cx * b0 - cy * b1
    zeros = np.zeros_like(theta)
    return np.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1).astype(np.float32)


# ------------------------------------------------------------------------------------- the layers
class Rescaling(Layer):
    """``inputs * scale + offset`` (e.g. ``Rescaling(1 / 255)`` maps pixels to [0, 1]);
    ``scale`` and ``offset`` may be per-channel lists."""

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        for argument, value in (("scale", scale), ("offset", offset)):
            try:
                np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                raise TypeError(f"{_owner(self)}: {argument} must be a number or a list of numbers. "
                                f"Received: {argument}={value!r}") from None
        self.scale, self.offset = _plain(scale), _plain(offset)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training=False):
        scale = np.asarray(self.scale, dtype=self.dtype)
        return (np.asarray(x, dtype=self.dtype) * scale + np.asarray(self.offset, dtype=self.dtype)), scale

    def backward(self, scale, grad, need_input_grad=True):
        if not need_input_grad:
            return None, {}
        return (grad * scale).astype(grad.dtype, copy=False), {}

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


class Normalization(Layer):
    """``(inputs - mean) / sqrt(variance)`` per index of ``axis`` (default: the last axis, the
    channels); ``mean`` and ``variance`` given, or learnt from data by :meth:`adapt`.
    ``invert=True`` applies the inverse map."""

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        if axis is None:
            axis = ()
        elif isinstance(axis, numbers.Integral):
            axis = (int(axis),)
        else:
            axis = tuple(int(a) for a in axis)
        self.axis = axis
        if (mean is not None) != (variance is not None):
            raise ValueError("When setting values directly, both `mean` and `variance` must be set. "
                             f"Received: mean={mean} and variance={variance}")
        if mean is not None:
            if np.shape(mean) != np.shape(variance):
                raise ValueError("When setting values directly, `mean` and `variance` must have the same shape. "
                                 f"Received: mean shape {np.shape(mean)} and variance shape {np.shape(variance)}")
            if len(np.shape(mean)) > len(self.axis):
                raise ValueError(f"The rank of `mean` must be less than or equal to the number of axes "
                                 f"({len(self.axis)}). Received: mean shape {np.shape(mean)} for axis {self.axis}")
        self.input_mean, self.input_variance = _plain(mean), _plain(variance)
        self.invert = bool(invert)
        self.mean = self.variance = None

    def build(self, input_shape):
        ndim = len(input_shape)
        if any(a < -ndim or a >= ndim for a in self.axis):
            raise ValueError(f"All `axis` values must be in the range [-ndim, ndim). Received inputs with "
                             f"ndim={ndim}, while axis={self.axis}")
        self._keep_axis = tuple(sorted(a % ndim for a in self.axis))
        for d in self._keep_axis:
            if input_shape[d] is None:
                raise ValueError(f"All `axis` values to be kept must have a known shape. Received axis={self.axis}, "
                                 f"inputs.shape={tuple(input_shape)}, with unknown axis at index {d}")
        self._build_input_shape = tuple(input_shape)
        self._reduce_axis = tuple(d for d in range(ndim) if d not in self._keep_axis)
        self._broadcast_shape = tuple(input_shape[d] if d in self._keep_axis else 1 for d in range(ndim))
        self._mean_and_var_shape = tuple(input_shape[d] for d in self._keep_axis)
        if self.input_mean is None:
            self.adapt_mean = self.add_weight(shape=self._mean_and_var_shape, initializer="zeros", trainable=False,
                                              name="mean")
            self.adapt_variance = self.add_weight(shape=self._mean_and_var_shape, initializer="ones",
                                                  trainable=False, name="variance")
            # Keras's count: a scalar int64 that adapt() leaves at 0 (float64 here).  A Variable of
            # its own, as add_weight makes every weight at least 1-D (np.ascontiguousarray).
            self.count = Variable(np.zeros((), np.float64), "count", trainable=False, path=f"{self.name}/count")
            self._weights.append(self.count)
        else:
            mean, variance = np.asarray(self.input_mean, np.float64), np.asarray(self.input_variance, np.float64)
            if mean.ndim:
                # The given values fill the last kept axes.
                expanded = [1] * ndim
                for i in range(1, mean.ndim + 1):
                    expanded[self._keep_axis[-i]] = mean.shape[-i]
                mean, variance = mean.reshape(expanded), variance.reshape(expanded)
            self.mean = np.broadcast_to(mean, self._broadcast_shape).astype(self.dtype)
            self.variance = np.broadcast_to(variance, self._broadcast_shape).astype(self.dtype)
        self.built = True

    def adapt(self, data):
        """Learn the mean and (population) variance over every axis but ``axis`` from an array or
        from an iterable of batches (a fastconv.keras Dataset, a list, a generator; an (x, y)
        batch contributes x)."""
        if isinstance(data, np.ndarray):
            batches, first = None, data
        elif hasattr(data, "__iter__"):
            iterator = iter(data)
            first = next(iterator, None)
            if first is None:
                raise ValueError("adapt() received an empty iterable (no batches). Expected at least one batch. "
                                 "Pass a non-empty iterable of arrays or tensors, e.g. layer.adapt([x]) or "
                                 "layer.adapt(list_of_batches).")
            batches = itertools.chain([first], iterator)
        else:
            raise TypeError(f"Unsupported data type: {type(data)}. `adapt` supports `np.ndarray` and iterables of "
                            "batches (e.g. a fastconv.keras Dataset, a list, a generator).")
        first = np.asarray(first[0] if isinstance(first, (tuple, list)) and batches is not None else first)
        if not self.built:
            self._maybe_build(first.shape)
        if self.input_mean is not None:
            raise ValueError(f"{_owner(self)}: adapt() learns mean and variance; this layer was given them "
                             "(mean=..., variance=...)")
        if batches is None:
            self._check_adapt_shape(first.shape)
            total_mean = np.mean(first, axis=self._reduce_axis, dtype=np.float64)
            total_var = np.var(first, axis=self._reduce_axis, dtype=np.float64)
        else:
            total_mean = total_var = np.zeros(self._mean_and_var_shape)
            total_count = 0
            for batch in batches:
                batch = np.asarray(batch[0] if isinstance(batch, (tuple, list)) else batch, dtype=self.dtype)
                self._check_adapt_shape(batch.shape)
                batch_mean = np.mean(batch, axis=self._reduce_axis, dtype=np.float64)
                batch_var = np.var(batch, axis=self._reduce_axis, dtype=np.float64)
                batch_count = math.prod(batch.shape[d] for d in self._reduce_axis)
                # Chan's merge of (count, mean, variance), in Keras's weighted form.
                total_count += batch_count
                weight = batch_count / total_count
                new_mean = total_mean * (1 - weight) + batch_mean * weight
                total_var = ((total_var + (total_mean - new_mean) ** 2) * (1 - weight)
                             + (batch_var + (batch_mean - new_mean) ** 2) * weight)
                total_mean = new_mean
        self.adapt_mean.assign(total_mean)
        self.adapt_variance.assign(total_var)

    def _check_adapt_shape(self, shape):
        if len(shape) != len(self._build_input_shape) or any(
                shape[d] != self._build_input_shape[d] for d in self._keep_axis):
            raise ValueError(f"The layer was built with input_shape={self._build_input_shape}, but adapt() is being "
                             f"called with data with an incompatible shape, data.shape={tuple(shape)}")

    def _statistics(self):
        if self.input_mean is not None:
            return self.mean, self.variance
        return (self.adapt_mean.value.reshape(self._broadcast_shape).astype(self.dtype),
                self.adapt_variance.value.reshape(self._broadcast_shape).astype(self.dtype))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training=False):
        mean, variance = self._statistics()
        scale = np.maximum(np.sqrt(variance), backend.epsilon()).astype(self.dtype)
        x = np.asarray(x, dtype=self.dtype)
        if self.invert:
            return mean + x * scale, scale
        return (x - mean) / scale, scale

    def backward(self, scale, grad, need_input_grad=True):
        if not need_input_grad:
            return None, {}
        return (grad * scale if self.invert else grad / scale), {}

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "invert": self.invert, "mean": self.input_mean,
                "variance": self.input_variance}


class Resizing(_ImageLayer):
    """Resize images to (``height``, ``width``), as ``tf.image.resize`` (bilinear or nearest,
    half-pixel centres); ``crop_to_aspect_ratio=True`` first crops the centre to the target's
    aspect ratio, ``pad_to_aspect_ratio=True`` pads both sides with ``fill_value`` to it."""

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False, pad_to_aspect_ratio=False,
                 fill_mode="constant", fill_value=0.0, antialias=False, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        for argument, value in (("height", height), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
                raise ValueError(f"{_owner(self)}: {argument} must be a positive int. Received: {argument}={value!r}")
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(f"{_owner(self)}: fastconv.keras resizes with interpolation 'bilinear' or 'nearest' "
                             f"only. Received: interpolation={interpolation!r}")
        if pad_to_aspect_ratio and crop_to_aspect_ratio:
            raise ValueError("Only one of `pad_to_aspect_ratio` & `crop_to_aspect_ratio` can be `True`.")
        if fill_mode != "constant":
            raise ValueError("Invalid value for argument `fill_mode`. Only `'constant'` is supported. "
                             f"Received: fill_mode={fill_mode}")
        if antialias:
            raise ValueError(f"{_owner(self)}: antialias=True is not implemented by fastconv.keras")
        self.height, self.width = int(height), int(width)
        self.interpolation = interpolation
        self.crop_to_aspect_ratio, self.pad_to_aspect_ratio = bool(crop_to_aspect_ratio), bool(pad_to_aspect_ratio)
        self.fill_mode, self.fill_value, self.antialias = fill_mode, fill_value, bool(antialias)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        hy, wx = self._hw_axes(len(shape))
        shape[hy], shape[wx] = self.height, self.width
        return tuple(shape)

    def _crop_box(self, h, w):
        return _aspect_crop_box(h, w, self.height, self.width) if self.crop_to_aspect_ratio else (0, 0, h, w)

    def forward(self, images, training=False):
        images = np.asarray(images, dtype=self.dtype)
        x = self._to_nhwc(images)
        top, left, ch, cw = box = self._crop_box(*x.shape[1:3])
        window = x[:, top:top + ch, left:left + cw]
        pad = _aspect_pad(ch, cw, self.height, self.width) if self.pad_to_aspect_ratio else (0, 0)
        if pad != (0, 0):
            window = np.pad(window, ((0, 0), (pad[0],) * 2, (pad[1],) * 2, (0, 0)), constant_values=self.fill_value)
        out = _resize_nhwc(window, self.height, self.width, self.interpolation)
        return self._from_nhwc(out, images), (_CropResizeCache(x.shape, box, self.interpolation, pad), images.ndim)

    def backward(self, cache, grad, need_input_grad=True):
        if not need_input_grad:
            return None, {}
        crop, ndim = cache
        like = np.empty((0,) * ndim)
        return self._from_nhwc(_crop_resize_backward(crop, self._to_nhwc(grad)), like), {}

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width,
                "interpolation": self.interpolation, "crop_to_aspect_ratio": self.crop_to_aspect_ratio,
                "pad_to_aspect_ratio": self.pad_to_aspect_ratio, "fill_mode": self.fill_mode,
                "fill_value": self.fill_value, "antialias": self.antialias}


class CenterCrop(Resizing):
    """The central (``height``, ``width``) window of each image, always (training or not); an
    image smaller than that is cropped to the aspect ratio and resized up (Keras's smart_resize)."""

    def __init__(self, height, width, data_format=None, **kwargs):
        super().__init__(height, width, data_format=data_format, **kwargs)

    def _crop_box(self, h, w):
        if h >= self.height and w >= self.width:
            return (h - self.height) // 2, (w - self.width) // 2, self.height, self.width
        return _aspect_crop_box(h, w, self.height, self.width)

    def get_random_transformation(self, data, training=True, seed=None):
        return {"input_shape": np.shape(data)}

    def transform_images(self, images, transformation=None, training=True):
        return self.forward(images)[0]

    def get_config(self):
        config = super().get_config()
        for key in ("interpolation", "crop_to_aspect_ratio", "pad_to_aspect_ratio", "fill_mode", "fill_value",
                    "antialias"):
            del config[key]
        return config


class RandomCrop(_RandomImageLayer):
    """In training, one random (``height``, ``width``) window of the batch (every image the same
    window, as Keras); an input not larger than that on both sides is cropped at the centre to
    the aspect ratio and resized."""

    def __init__(self, height, width, seed=None, data_format=None, name=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, name=name, **kwargs)
        for argument, value in (("height", height), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
                raise ValueError(f"{_owner(self)}: {argument} must be a positive int. Received: {argument}={value!r}")
        self.height, self.width = int(height), int(width)
        if seed is None:
            # Keras records a seed of its own in the configuration.
            self.seed = int(backend.random_generator().integers(0, 2 ** 31 - 1))

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        hy, wx = self._hw_axes(len(shape))
        shape[hy], shape[wx] = self.height, self.width
        return tuple(shape)

    def get_random_transformation(self, data, training=True, seed=None):
        _, h, w = self._batch_and_size(data)
        if training and h > self.height and w > self.width:
            rng = self._generator(seed)
            h_start = int(rng.uniform(0, float(h - self.height + 1)))
            w_start = int(rng.uniform(0, float(w - self.width + 1)))
            return h_start, w_start
        top, left, _, _ = _aspect_crop_box(h, w, self.height, self.width)
        return top, left

    def _box(self, transformation, h, w):
        top, left = (int(v) for v in transformation)
        return top, left, min(self.height, h - top), min(self.width, w - left)

    def transform_images(self, images, transformation, training=True):
        images = np.asarray(images, dtype=self.dtype)
        if not training:
            return images
        x = self._to_nhwc(images)
        top, left, ch, cw = self._box(transformation, *x.shape[1:3])
        out = _resize_nhwc(x[:, top:top + ch, left:left + cw], self.height, self.width, "bilinear")
        return self._from_nhwc(out, images)

    def forward(self, inputs, training=False):
        images, transformation = super().forward(inputs, training)
        if transformation is None:
            return images, None
        nhwc = self._to_nhwc(np.asarray(inputs)).shape
        return images, (_CropResizeCache(nhwc, self._box(transformation, *nhwc[1:3]), "bilinear"), np.ndim(inputs))

    def _images_grad(self, cache, grad):
        crop, ndim = cache
        return self._from_nhwc(_crop_resize_backward(crop, self._to_nhwc(grad)), np.empty((0,) * ndim))

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width, "seed": self.seed}


class RandomFlip(_RandomImageLayer):
    """In training, flips each image with probability 1/2: left-right ('horizontal'), up-down
    ('vertical'), or both with the same draw ('horizontal_and_vertical', the default)."""

    _MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode="horizontal_and_vertical", seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if mode not in self._MODES:
            raise ValueError(f"RandomFlip layer {self.name} received an unknown mode argument {mode}")
        self.mode = mode

    def get_random_transformation(self, data, training=True, seed=None):
        if not training:
            return None
        n, _, _ = self._batch_and_size(data)
        shape = np.shape(data)
        flips = self._generator(seed).uniform(size=(n, 1, 1, 1) if len(shape) == 4 else (1, 1, 1)) <= 0.5
        return {"flips": flips, "input_shape": shape}

    def transform_images(self, images, transformation, training=True):
        images = np.asarray(images, dtype=self.dtype)
        if not training or transformation is None:
            return images
        x = self._to_nhwc(images)
        flips = np.asarray(transformation["flips"]).reshape(-1)
        out = x.copy()
        chosen = out[flips]
        if self.mode in ("horizontal", "horizontal_and_vertical"):
            chosen = chosen[:, :, ::-1]
        if self.mode in ("vertical", "horizontal_and_vertical"):
            chosen = chosen[:, ::-1]
        out[flips] = chosen
        return self._from_nhwc(out, images)

    def _images_grad(self, transformation, grad):
        return self.transform_images(grad, transformation)  # a flip is its own transpose

    def get_config(self):
        return {**super().get_config(), "seed": self.seed, "mode": self.mode}


class RandomRotation(_AffineImageLayer):
    """In training, rotates each image about its centre by a random angle of ``factor`` turns
    (a number f: [-f, f]; a pair: [lower, upper]), e.g. 0.1 for up to 36 degrees."""

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0,
                 data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.factor = _base_factor(self, factor, (-1, 1))

    def get_random_transformation(self, data, training=True, seed=None):
        if not training:
            return None
        n, h, w = self._batch_and_size(data)
        angle = self._generator(seed).uniform(self.factor[0] * 360.0, self.factor[1] * 360.0, size=n).astype(np.float32)
        matrix = _affine_matrix(angle, h, w)
        return {"angle": angle, "rotation_matrix": matrix if np.ndim(data) == 4 else matrix[0],
                "image_height": h, "image_width": w, "batch_size": n}

    def transform_images(self, images, transformation, training=True):
        images = np.asarray(images, dtype=self.dtype)
        if not training or transformation is None:
            return images
        return self._warp(images, transformation["rotation_matrix"])

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class RandomZoom(_AffineImageLayer):
    """In training, zooms each image about its centre: ``height_factor`` f draws the height
    scale of the input window in [1 + lower, 1 + upper] (negative: zoom in); without
    ``width_factor`` the width keeps the aspect ratio."""

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor, self.width_factor = _pair(height_factor), _pair(width_factor)
        self.height_lower, self.height_upper = _factor_pair(self, height_factor, "height_factor", -1.0, 1.0, True)
        if width_factor is not None:
            self.width_lower, self.width_upper = _factor_pair(self, width_factor, "width_factor", -1.0, 1.0, True)

    def get_random_transformation(self, data, training=True, seed=None):
        if not training:
            return None
        n, _, _ = self._batch_and_size(data)
        rng = self._generator(seed)
        height_zoom = rng.uniform(1.0 + self.height_lower, 1.0 + self.height_upper, size=(n, 1)).astype(np.float32)
        width_zoom = height_zoom if self.width_factor is None else rng.uniform(
            1.0 + self.width_lower, 1.0 + self.width_upper, size=(n, 1)).astype(np.float32)
        return {"height_zoom": height_zoom, "width_zoom": width_zoom, "input_shape": np.shape(data)}

    def transform_images(self, images, transformation, training=True):
        images = np.asarray(images, dtype=self.dtype)
        if not training or transformation is None:
            return images
        _, h, w = self._batch_and_size(images)
        zx = np.asarray(transformation["width_zoom"], np.float32).reshape(-1)
        zy = np.asarray(transformation["height_zoom"], np.float32).reshape(-1)
        zeros = np.zeros_like(zx)
        transforms = np.stack([zx, zeros, (w - 1.0) / 2.0 * (1.0 - zx), zeros, zy, (h - 1.0) / 2.0 * (1.0 - zy),
                               zeros, zeros], axis=1)
        return self._warp(images, transforms)

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor, "width_factor": self.width_factor}


class RandomTranslation(_AffineImageLayer):
    """In training, shifts each image by random fractions of its height (``height_factor``) and
    width (``width_factor``): a number f draws in [-f, f], a pair in [lower, upper]."""

    def __init__(self, height_factor, width_factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor, self.width_factor = _pair(height_factor), _pair(width_factor)
        self.height_lower, self.height_upper = _factor_pair(self, height_factor, "height_factor", -1.0, 1.0)
        self.width_lower, self.width_upper = _factor_pair(self, width_factor, "width_factor", -1.0, 1.0)

    def get_random_transformation(self, data, training=True, seed=None):
        if not training:
            return None
        n, h, w = self._batch_and_size(data)
        rng = self._generator(seed)
        dy = rng.uniform(self.height_lower, self.height_upper, size=(n, 1)) * h
        dx = rng.uniform(self.width_lower, self.width_upper, size=(n, 1)) * w
        return {"translations": np.concatenate([dx, dy], axis=1).astype(np.float32), "input_shape": np.shape(data)}

    def transform_images(self, images, transformation, training=True):
        images = np.asarray(images, dtype=self.dtype)
        if not training or transformation is None:
            return images
        t = np.asarray(transformation["translations"], np.float32).reshape(-1, 2)
        ones, zeros = np.ones(len(t), np.float32), np.zeros(len(t), np.float32)
        transforms = np.stack([ones, zeros, -t[:, 0], zeros, ones, -t[:, 1], zeros, zeros], axis=1)
        return self._warp(images, transforms)

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor, "width_factor": self.width_factor}


class _RandomPixelLayer(_RandomImageLayer):
    """A random map of the pixel values, clipped to ``value_range``."""

    def __init__(self, factor, value_range=(0, 255), seed=None, bounds=(-1, 1), **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = _base_factor(self, factor, bounds)
        if not isinstance(value_range, (tuple, list)) or len(value_range) != 2:
            raise ValueError("The `value_range` argument should be a list of two numbers. "
                             f"Received: value_range={value_range}")
        self.value_range = tuple(value_range)

    def _factor_shape(self, data):
        if np.ndim(data) not in (3, 4):
            raise ValueError(f"Expected the input image to be rank 3 or 4. Received inputs.shape={np.shape(data)}")
        return (np.shape(data)[0], 1, 1, 1) if np.ndim(data) == 4 else (1, 1, 1)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range, "seed": self.seed}


class RandomContrast(_RandomPixelLayer):
    """In training, scales each image's deviations from its per-channel mean by a random factor in
    [1 - lower, 1 + upper] (``factor`` in [0, 1]), clipped to ``value_range``."""

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(factor, value_range, seed, bounds=(0, 1), **kwargs)

    def get_random_transformation(self, data, training=True, seed=None):
        shape = self._factor_shape(data)
        if not training:
            return {"contrast_factor": np.zeros(shape, np.float32)}
        factor = self._generator(seed).uniform(1.0 - self.factor[0], 1.0 + self.factor[1], size=shape)
        return {"contrast_factor": factor.astype(self.dtype)}

    def transform_images(self, images, transformation, training=True):
        images = np.asarray(images, dtype=self.dtype)
        if not training:
            return images
        hy, wx = self._hw_axes(images.ndim)
        mean = images.mean(axis=(hy, wx), keepdims=True)
        factor = np.asarray(transformation["contrast_factor"], dtype=self.dtype)
        return np.clip((images - mean) * factor + mean, *self.value_range).astype(self.dtype, copy=False)


class RandomBrightness(_RandomPixelLayer):
    """In training, adds to each image a random offset of ``factor`` times the width of
    ``value_range`` (a number f: [-f, f]), clipped to ``value_range``."""

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(factor, value_range, seed, **kwargs)
        self.value_range = sorted(value_range)

    def get_random_transformation(self, data, training=True, seed=None):
        shape = self._factor_shape(data)
        if not training:
            return {"rgb_delta": np.zeros(shape, np.float32)}
        delta = self._generator(seed).uniform(self.factor[0], self.factor[1], size=shape).astype(np.float32)
        return {"rgb_delta": delta * np.float32(self.value_range[1] - self.value_range[0])}

    def transform_images(self, images, transformation, training=True):
        images = np.asarray(images, dtype=self.dtype)
        if not training:
            return images
        out = images + np.asarray(transformation["rgb_delta"], dtype=self.dtype)
        return np.clip(out, *self.value_range).astype(self.dtype, copy=False)
