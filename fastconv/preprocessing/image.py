"""Image augmentation with the interface of Keras's ``ImageDataGenerator``.

``ImageDataGenerator(rotation_range=..., zoom_range=..., ..., fill_mode=...)`` draws a random
rotation, shift, shear, zoom and flips per image and applies them; ``flow(x, y)`` returns an
iterator of augmented batches that works both as a Python iterator (``next(it)``) and as a Keras
Sequence (``len(it)``, ``it[i]``, ``it.on_epoch_end()``), so that ``fit`` can consume it.

``load_img``, ``img_to_array`` and ``array_to_img`` are Keras's helpers for single image files
(Pillow, an optional dependency, imported when they are called).

Same parameters, same image: ``apply_transform(x, params)`` composes the transform exactly as
Keras's legacy ``apply_affine_transform`` does and warps with the compiled kernel of
:func:`fastconv.image.affine_transform`, which follows the ``scipy.ndimage.affine_transform`` that
Keras calls.  Two oddities of Keras are kept on purpose, so that a parameter dictionary means the
same thing in both libraries:

- ``tx`` (drawn from ``height_shift_range`` and scaled by the image height) moves the image along
  its columns, and ``ty`` (from ``width_shift_range``) along its rows; for square images, the
  lecture's case, only the names are swapped.
- the centre of rotation, shear and zoom is (height/2 - 0.5, width/2 - 0.5) taken in the swapped
  order, i.e. the true centre only for square images.

The random draws use NumPy Generators seeded per batch, not Keras's global ``np.random``: the
same seed gives the same batches here, not the same batches as Keras.
"""
import math
import numbers
import operator
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from fastconv import png
from fastconv.image import FILL_MODES, affine_transform

__all__ = ["DataFrameIterator", "DirectoryIterator", "ImageDataGenerator", "Iterator", "NumpyArrayIterator",
           "array_to_img", "img_to_array", "load_img", "transform_matrix"]

_FLOAT_DTYPES = (np.float16, np.float32, np.float64)


def _check_range(value, name, allow_list=False):
    """A non-negative number, or (for the shift ranges) a non-empty 1-D list of numbers."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    ok = arr is not None and bool(np.all(np.isfinite(arr))) and (
        (arr.ndim == 0 and arr >= 0) or (allow_list and arr.ndim == 1 and arr.size > 0))
    if not ok:
        expected = "a non-negative number" + (" or a 1-D list of numbers" if allow_list else "")
        raise ValueError(f"ImageDataGenerator: {name} must be {expected}. Received: {name}={value!r}")
    return value


def _zoom_bounds(zoom_range):
    """Keras's rule: a number z gives [1 - z, 1 + z], a pair gives itself."""
    if isinstance(zoom_range, numbers.Real) and not isinstance(zoom_range, bool):
        bounds = (1.0 - zoom_range, 1.0 + zoom_range)
    elif isinstance(zoom_range, (list, tuple, np.ndarray)) and len(zoom_range) == 2:
        bounds = (float(zoom_range[0]), float(zoom_range[1]))
    else:
        raise ValueError(f"ImageDataGenerator: zoom_range must be a number or a pair [lower, upper]. "
                         f"Received: zoom_range={zoom_range!r}")
    if not all(math.isfinite(b) and b > 0 for b in bounds) or bounds[0] > bounds[1]:
        raise ValueError(f"ImageDataGenerator: zoom_range must give 0 < lower <= upper. "
                         f"Received: zoom_range={zoom_range!r}")
    return bounds


def _draw_shifts(rng, shift_range, size, n):
    """``n`` shifts as Keras draws them: an int k gives whole pixels in (-k, k), a list one of its
    values with a random sign, a float a uniform value in [-r, r); a range below 1 is a fraction
    of ``size``."""
    if np.ndim(shift_range) == 0 and not shift_range:
        return np.zeros(n)
    if isinstance(shift_range, numbers.Integral):
        shifts = rng.integers(0, shift_range, n) * rng.choice([-1.0, 1.0], n)
    elif np.ndim(shift_range) == 1:
        shifts = rng.choice(np.asarray(shift_range, dtype=np.float64), n) * rng.choice([-1.0, 1.0], n)
    else:
        shifts = rng.uniform(-shift_range, shift_range, n)
    return shifts * size if np.max(shift_range) < 1 else shifts.astype(np.float64)


def _affine(rows):
    """Stack 2x3 blocks given as nested lists of (n,) arrays into (n, 3, 3) affine matrices."""
    top = np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)
    bottom = np.broadcast_to([0.0, 0.0, 1.0], top.shape[:-2] + (1, 3))
    return np.concatenate([top, bottom], axis=-2)


def transform_matrix(transform_parameters, image_shape):
    """The matrix that :func:`fastconv.image.affine_transform` takes for Keras's parameters.

    ``transform_parameters``: Keras's dictionary (``theta``, ``tx``, ``ty``, ``shear``, ``zx``,
    ``zy`` in degrees and pixels, ``flip_horizontal``, ``flip_vertical``; missing keys mean no
    change) with numbers, which gives one 2x3 matrix, or with arrays of n values, which give
    (n, 2, 3); ``image_shape``: (height, width[, channels]).

    Keras composes rotation @ shift @ shear @ zoom about the centre of the image in a frame whose
    first axis is the column, then flips the warped image; the flips are folded into the matrix
    here so that one warp does everything.  The matrix maps output pixel (row, col, 1) to the
    input position (row, col) it reads.
    """
    p = transform_parameters
    keys = ("theta", "tx", "ty", "shear", "zx", "zy", "flip_horizontal", "flip_vertical")
    defaults = (0.0, 0.0, 0.0, 0.0, 1.0, 1.0, False, False)
    values = np.broadcast_arrays(*(np.atleast_1d(np.asarray(p.get(k, d), dtype=np.float64))
                                   for k, d in zip(keys, defaults)))
    theta, tx, ty, shear, zx, zy, flip_h, flip_v = values
    theta, shear = np.deg2rad(theta), np.deg2rad(shear)
    zero, one = np.zeros_like(theta), np.ones_like(theta)
    rotation = _affine([[np.cos(theta), -np.sin(theta), zero], [np.sin(theta), np.cos(theta), zero]])
    shift = _affine([[one, zero, tx], [zero, one, ty]])
    shearing = _affine([[one, -np.sin(shear), zero], [zero, np.cos(shear), zero]])
    zoom = _affine([[zx, zero, zero], [zero, zy, zero]])
    h, w = image_shape[0], image_shape[1]
    # Keras centres with (h / 2 - 0.5, w / 2 - 0.5) on its (first, second) axes, then swaps the
    # axes to (row, col): its first axis is the column.
    o1, o2 = h / 2 - 0.5, w / 2 - 0.5
    offset = _affine([[one, zero, one * o1], [zero, one, one * o2]])
    reset = _affine([[one, zero, -o1 * one], [zero, one, -o2 * one]])
    m = offset @ (rotation @ shift @ shearing @ zoom) @ reset
    m = m[:, [1, 0]][:, :, [1, 0, 2]]  # P M P with P swapping the first two axes
    a, b = m[:, :, :2], m[:, :, 2]
    # A flip after the warp reads output pixel (i, w-1-j) (or (h-1-i, j)) of the unflipped warp.
    flip_h, flip_v = flip_h.astype(bool), flip_v.astype(bool)
    b = b + np.where(flip_h[:, None], a[:, :, 1] * (w - 1), 0.0)
    a = a * np.where(flip_h[:, None, None], [1.0, -1.0], 1.0)
    b = b + np.where(flip_v[:, None], a[:, :, 0] * (h - 1), 0.0)
    a = a * np.where(flip_v[:, None, None], [-1.0, 1.0], 1.0)
    matrices = np.concatenate([a, b[:, :, None]], axis=2)
    return matrices[0] if all(np.ndim(p.get(k, 0)) == 0 for k in keys) else matrices


class ImageDataGenerator:
    """Batches of augmented and standardized images, as Keras's ImageDataGenerator.

    Parameters (Keras's names, order, defaults and meanings)
    ----------
    featurewise_center, featurewise_std_normalization : bool
        Subtract the per-channel mean / divide by the per-channel std (+1e-6) of the data given
        to :meth:`fit`.  Normalization implies centring, as in Keras.
    samplewise_center, samplewise_std_normalization : bool
        The same with each image's own mean and std (over all its pixels and channels).
    zca_whitening : bool, zca_epsilon : float
        Multiply each flattened image by the ZCA matrix of the :meth:`fit` data (implies
        featurewise_center and cancels featurewise_std_normalization, as Keras).
    rotation_range : float
        Degrees; the angle is uniform in [-rotation_range, rotation_range).
    width_shift_range, height_shift_range : float, int or 1-D list
        A float below 1 is a fraction of the width (height), 1 or more a number of pixels,
        uniform in [-r, r); an int n gives whole pixels in (-n, n); a list, one of its values
        with a random sign.
    brightness_range : (lower, upper) or None
        A brightness factor uniform in the range, applied as Keras does it, through an 8-bit
        image (Pillow's ImageEnhance.Brightness): values are truncated to whole levels.
    shear_range : float
        Shear angle in degrees (as Keras: 0.2 means 0.2 degrees), uniform in [-r, r).
    zoom_range : float or [lower, upper]
        A float z means [1 - z, 1 + z]; zoom factors are drawn per axis.  As in Keras, a
        factor above 1 shows a larger area (the content shrinks).
    channel_shift_range : float
        Adds one value uniform in [-r, r) to every channel, clipped to the image's [min, max].
    fill_mode : {'nearest', 'constant', 'reflect', 'wrap'}, cval : float
        How points outside the image are filled (see :func:`fastconv.image.affine_transform`).
    horizontal_flip, vertical_flip : bool
        Flip with probability 1/2.
    rescale : float or None
        Multiplies the images after the transform (e.g. 1/255).
    preprocessing_function : callable or None
        Called on each image (a 3-D array) after the augmentation, before the rescaling.
    data_format : {'channels_last', 'channels_first'} or None (channels_last)
    validation_split : float in (0, 1)
        The fraction held out for ``subset='validation'`` of flow / flow_from_directory.
    interpolation_order : {0, 1}
        0 nearest pixel, 1 bilinear (Keras's default).
    dtype : float dtype
        Of the generated batches (float32 by default).
    """

    def __init__(self, featurewise_center=False, samplewise_center=False, featurewise_std_normalization=False,
                 samplewise_std_normalization=False, zca_whitening=False, zca_epsilon=1e-6, rotation_range=0,
                 width_shift_range=0.0, height_shift_range=0.0, brightness_range=None, shear_range=0.0,
                 zoom_range=0.0, channel_shift_range=0.0, fill_mode="nearest", cval=0.0, horizontal_flip=False,
                 vertical_flip=False, rescale=None, preprocessing_function=None, data_format=None,
                 validation_split=0.0, interpolation_order=1, dtype=None):
        self.featurewise_center = bool(featurewise_center)
        self.samplewise_center = bool(samplewise_center)
        self.featurewise_std_normalization = bool(featurewise_std_normalization)
        self.samplewise_std_normalization = bool(samplewise_std_normalization)
        self.zca_whitening = bool(zca_whitening)
        self.zca_epsilon = float(zca_epsilon)
        self.rotation_range = _check_range(rotation_range, "rotation_range")
        self.width_shift_range = _check_range(width_shift_range, "width_shift_range", allow_list=True)
        self.height_shift_range = _check_range(height_shift_range, "height_shift_range", allow_list=True)
        self.shear_range = _check_range(shear_range, "shear_range")
        self.zoom_range = _zoom_bounds(zoom_range)
        self.channel_shift_range = _check_range(channel_shift_range, "channel_shift_range")
        if brightness_range is not None and not (
                isinstance(brightness_range, (tuple, list)) and len(brightness_range) == 2
                and all(isinstance(v, numbers.Real) and math.isfinite(v) for v in brightness_range)):
            raise ValueError("ImageDataGenerator: brightness_range should be a tuple or list of two floats. "
                             f"Received: brightness_range={brightness_range!r}")
        self.brightness_range = brightness_range
        self.horizontal_flip = bool(horizontal_flip)
        self.vertical_flip = bool(vertical_flip)
        if fill_mode not in FILL_MODES:
            raise ValueError(f"ImageDataGenerator: fill_mode must be one of {sorted(FILL_MODES)}. "
                             f"Received: fill_mode={fill_mode!r}")
        self.fill_mode = fill_mode
        self.cval = float(cval)
        if rescale is not None and not (isinstance(rescale, numbers.Real) and math.isfinite(rescale)):
            raise ValueError(f"ImageDataGenerator: rescale must be a number or None. Received: rescale={rescale!r}")
        self.rescale = rescale
        if preprocessing_function is not None and not callable(preprocessing_function):
            raise TypeError("ImageDataGenerator: preprocessing_function must be callable or None. "
                            f"Received: preprocessing_function={preprocessing_function!r}")
        self.preprocessing_function = preprocessing_function
        data_format = "channels_last" if data_format is None else data_format
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError('ImageDataGenerator: data_format should be "channels_last" (channel after row and '
                             'column) or "channels_first" (channel before row and column). '
                             f"Received: data_format={data_format!r}")
        self.data_format = data_format
        self.channel_axis, self.row_axis, self.col_axis = (3, 1, 2) if data_format == "channels_last" else (1, 2, 3)
        if validation_split and not (isinstance(validation_split, numbers.Real) and 0 < validation_split < 1):
            raise ValueError("ImageDataGenerator: validation_split must be strictly between 0 and 1. "
                             f"Received: validation_split={validation_split!r}")
        self._validation_split = float(validation_split or 0.0)
        if interpolation_order not in (0, 1) or isinstance(interpolation_order, bool):
            raise ValueError(f"ImageDataGenerator: interpolation_order must be 0 or 1. "
                             f"Received: interpolation_order={interpolation_order!r}")
        self.interpolation_order = int(interpolation_order)
        self.dtype = np.dtype("float32" if dtype is None else dtype)
        if self.dtype not in _FLOAT_DTYPES:
            raise TypeError(f"ImageDataGenerator: dtype must be a float dtype. Received: dtype={dtype!r}")
        # Keras's implications between the options (it warns; the settings are the same).
        if self.zca_whitening:
            self.featurewise_center, self.featurewise_std_normalization = True, False
        if self.featurewise_std_normalization:
            self.featurewise_center = True
        if self.samplewise_std_normalization:
            self.samplewise_center = True
        self.mean = self.std = self.zca_whitening_matrix = None
        self._rng = np.random.default_rng()

    # -- random parameters -----------------------------------------------------------------
    def _hw(self, image_shape):
        """(height, width) of an image of shape ``image_shape`` (in the generator's data_format)."""
        return (image_shape[0], image_shape[1]) if self.data_format == "channels_last" else (image_shape[1],
                                                                                             image_shape[2])

    def _draw(self, rng, image_shape, n):
        """Random transform parameters for n images of shape ``image_shape``: a dict of arrays of
        n values (None for the channel shift and brightness when they are off), Keras's keys."""
        h, w = self._hw(image_shape)
        zoom = (rng.uniform(self.zoom_range[0], self.zoom_range[1], (2, n)) if self.zoom_range != (1.0, 1.0)
                else np.ones((2, n)))
        return {
            "theta": rng.uniform(-self.rotation_range, self.rotation_range, n) if self.rotation_range else np.zeros(n),
            "tx": _draw_shifts(rng, self.height_shift_range, h, n),
            "ty": _draw_shifts(rng, self.width_shift_range, w, n),
            "shear": rng.uniform(-self.shear_range, self.shear_range, n) if self.shear_range else np.zeros(n),
            "zx": zoom[0],
            "zy": zoom[1],
            "flip_horizontal": (rng.random(n) < 0.5) & self.horizontal_flip,
            "flip_vertical": (rng.random(n) < 0.5) & self.vertical_flip,
            "channel_shift_intensity": (rng.uniform(-self.channel_shift_range, self.channel_shift_range, n)
                                        if self.channel_shift_range else None),
            "brightness": (rng.uniform(self.brightness_range[0], self.brightness_range[1], n)
                           if self.brightness_range is not None else None),
        }

    def get_random_transform(self, img_shape, seed=None):
        """A dictionary of random parameters for an image of shape ``img_shape`` (Keras's keys)."""
        params = self._draw(self._rng if seed is None else np.random.default_rng(seed), img_shape, 1)
        return {k: None if v is None else (bool(v[0]) if v.dtype == bool else float(v[0]))
                for k, v in params.items()}

    # -- transforms ------------------------------------------------------------------------
    def _to_nhwc(self, batch):
        return batch if self.data_format == "channels_last" else batch.transpose(0, 2, 3, 1)

    def _from_nhwc(self, batch):
        return batch if self.data_format == "channels_last" else np.ascontiguousarray(batch.transpose(0, 3, 1, 2))

    def _transform_batch(self, batch, params):
        """A batch (in the data_format) transformed image by image by the k-th values of
        ``params``, in Keras's order: the affine warp (flips folded in), the channel shift, the
        brightness."""
        x = self._to_nhwc(batch)
        n = len(x)

        def values(key):
            value = params.get(key)
            return None if value is None else np.broadcast_to(np.asarray(value, dtype=np.float64), (n,))

        matrices = transform_matrix(params, x.shape[1:]).reshape(-1, 2, 3)
        identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        if not np.array_equal(matrices, np.broadcast_to(identity, matrices.shape)):
            x = affine_transform(x, matrices, order=self.interpolation_order, fill_mode=self.fill_mode, cval=self.cval)
        x = x.astype(self.dtype, copy=True)
        shift = values("channel_shift_intensity")
        if shift is not None:
            low, high = x.min(axis=(1, 2, 3), keepdims=True), x.max(axis=(1, 2, 3), keepdims=True)
            x = np.clip(x + shift.astype(self.dtype)[:, None, None, None], low, high)
        brightness = values("brightness")
        if brightness is not None:
            x = np.stack([_brightness_shift(image, factor) for image, factor in zip(x, brightness)]).astype(self.dtype)
        return self._from_nhwc(x)

    def _check_image(self, x, fn):
        x = np.asarray(x)
        if x.ndim != 3:
            raise ValueError(f"ImageDataGenerator.{fn}: x must be one image (height, width, channels); "
                             f"received shape {x.shape}")
        return x

    def apply_transform(self, x, transform_parameters):
        """One image transformed by Keras's parameter dictionary (no standardization, as Keras)."""
        x = self._check_image(x, "apply_transform")
        if not isinstance(transform_parameters, dict):
            raise TypeError("ImageDataGenerator.apply_transform: transform_parameters must be a dict. "
                            f"Received: {type(transform_parameters).__name__}")
        return self._transform_batch(x[None].astype(self.dtype, copy=False), transform_parameters)[0]

    def random_transform(self, x, seed=None):
        """One image with a random transform applied (no standardization, as Keras)."""
        x = self._check_image(x, "random_transform")
        return self.apply_transform(x, self.get_random_transform(x.shape, seed))

    # -- standardization -------------------------------------------------------------------
    def standardize(self, x):
        """``x`` (one image, or a batch) standardized as Keras does it, in its order:
        preprocessing_function, rescale, sample-wise centre and std, feature-wise centre and std,
        ZCA whitening.  A new array (Keras changes ``x`` in place)."""
        x = np.array(x, dtype=self.dtype)
        return self._standardize_batch(x if x.ndim == 4 else x[None])[0] if x.ndim == 3 else \
            self._standardize_batch(x)

    def _standardize_batch(self, x):
        if self.preprocessing_function is not None:
            x = np.stack([np.asarray(self.preprocessing_function(image)) for image in x]).astype(self.dtype)
        if self.rescale:
            x *= self.dtype.type(self.rescale)
        if self.samplewise_center:
            x -= x.mean(axis=(1, 2, 3), keepdims=True)
        if self.samplewise_std_normalization:
            x /= x.std(axis=(1, 2, 3), keepdims=True) + self.dtype.type(1e-6)
        for flag, fitted, what in ((self.featurewise_center, self.mean, "featurewise_center"),
                                   (self.featurewise_std_normalization, self.std, "featurewise_std_normalization"),
                                   (self.zca_whitening, self.zca_whitening_matrix, "zca_whitening")):
            if flag and fitted is None:
                warnings.warn(f"This ImageDataGenerator specifies `{what}`, but it hasn't been fit on any training "
                              "data. Fit it first by calling `.fit(numpy_data)`.", stacklevel=3)
        if self.featurewise_center and self.mean is not None:
            x -= self.mean
        if self.featurewise_std_normalization and self.std is not None:
            x /= self.std + 1e-6
        if self.zca_whitening and self.zca_whitening_matrix is not None:
            x = (x.reshape(len(x), -1) @ self.zca_whitening_matrix).reshape(x.shape).astype(self.dtype)
        return x

    def fit(self, x, augment=False, rounds=1, seed=None):
        """The feature-wise statistics (mean, std, ZCA matrix) of the images ``x`` (rescaled
        first; with ``augment``, of ``rounds`` randomly transformed copies)."""
        x = np.array(x, dtype=self.dtype)
        if x.ndim != 4:
            raise ValueError(f"Input to `.fit()` should have rank 4. Got array with shape: {x.shape}")
        if self.rescale:
            x *= self.dtype.type(self.rescale)
        if augment:
            rng = self._rng if seed is None else np.random.default_rng(seed)
            x = np.concatenate([self._transform_batch(x, self._draw(rng, x.shape[1:], len(x)))
                                for _ in range(int(rounds))])
        axes = (0, self.row_axis, self.col_axis)
        shape = [1, 1, 1]
        shape[self.channel_axis - 1] = x.shape[self.channel_axis]
        if self.featurewise_center:
            self.mean = np.mean(x, axis=axes).reshape(shape)
            x -= self.mean
        if self.featurewise_std_normalization:
            self.std = np.std(x, axis=axes).reshape(shape)
            x /= self.std + 1e-6
        if self.zca_whitening:
            flat = x.reshape(len(x), -1)
            u, s, _ = np.linalg.svd(flat.T, full_matrices=False)
            self.zca_whitening_matrix = (u * (np.sqrt(len(x)) / (s + self.zca_epsilon))) @ u.T

    # -- batches ---------------------------------------------------------------------------
    def _augment(self, batch, rng):
        """Random transforms then standardization of a batch (a new array of the dtype)."""
        return self._standardize_batch(self._transform_batch(batch, self._draw(rng, batch.shape[1:], len(batch))))

    def flow(self, x, y=None, batch_size=32, shuffle=True, sample_weight=None, seed=None, save_to_dir=None,
             save_prefix="", save_format="png", ignore_class_split=False, subset=None):
        """An iterator of augmented batches ``(x_batch, y_batch[, sample_weight])`` (or
        ``x_batch`` when y is None).

        ``x``: (samples, height, width, channels) (channels first with that data_format), any
        numeric dtype; ``y``: as many labels as samples.  Each epoch visits every sample once, in
        a new random order when ``shuffle``; the last batch of an epoch may be smaller.  ``seed``
        makes the order and the transforms reproducible.  ``subset``: 'validation' takes the
        first ``validation_split`` of the samples, 'training' the rest.
        """
        return NumpyArrayIterator(x, y, self, batch_size=batch_size, shuffle=shuffle, sample_weight=sample_weight,
                                  seed=seed, save_to_dir=save_to_dir, save_prefix=save_prefix,
                                  save_format=save_format, subset=subset, ignore_class_split=ignore_class_split)

    def flow_from_directory(self, directory, target_size=(256, 256), color_mode="rgb", classes=None,
                            class_mode="categorical", batch_size=32, shuffle=True, seed=None, save_to_dir=None,
                            save_prefix="", save_format="png", follow_links=False, subset=None,
                            interpolation="nearest", keep_aspect_ratio=False):
        """Augmented batches of the images in the class folders of ``directory`` (see
        :class:`DirectoryIterator`)."""
        return DirectoryIterator(directory, self, target_size=target_size, color_mode=color_mode, classes=classes,
                                 class_mode=class_mode, batch_size=batch_size, shuffle=shuffle, seed=seed,
                                 save_to_dir=save_to_dir, save_prefix=save_prefix, save_format=save_format,
                                 follow_links=follow_links, subset=subset, interpolation=interpolation,
                                 keep_aspect_ratio=keep_aspect_ratio)

    def flow_from_dataframe(self, dataframe, directory=None, x_col="filename", y_col="class", weight_col=None,
                            target_size=(256, 256), color_mode="rgb", classes=None, class_mode="categorical",
                            batch_size=32, shuffle=True, seed=None, save_to_dir=None, save_prefix="",
                            save_format="png", subset=None, interpolation="nearest", validate_filenames=True,
                            **kwargs):
        """Augmented batches of the image files listed in a pandas DataFrame (see
        :class:`DataFrameIterator`)."""
        if kwargs:
            raise TypeError(f"ImageDataGenerator.flow_from_dataframe: unsupported (deprecated in Keras) arguments "
                            f"{sorted(kwargs)}")
        if class_mode == "other":
            class_mode = "raw"  # Keras's deprecated name
        return DataFrameIterator(dataframe, directory, self, x_col=x_col, y_col=y_col, weight_col=weight_col,
                                 target_size=target_size, color_mode=color_mode, classes=classes,
                                 class_mode=class_mode, batch_size=batch_size, shuffle=shuffle, seed=seed,
                                 save_to_dir=save_to_dir, save_prefix=save_prefix, save_format=save_format,
                                 subset=subset, interpolation=interpolation, validate_filenames=validate_filenames)


def _brightness_shift(image, factor):
    """Keras's apply_brightness_shift(x, factor, scale=False) of one HWC image: through an 8-bit
    Pillow image (stretched to [0, 255] first when the values leave that range, and back after),
    whose ImageEnhance.Brightness computes trunc(float32(factor) * level) clipped to [0, 255]."""
    x = np.asarray(image, dtype=np.float32)
    low, high = x.min(), x.max()
    stretched = low < 0 or high > 255
    levels = x
    if stretched:
        levels = x - low
        if levels.max() != 0:
            levels = levels / levels.max()
        levels = levels * np.float32(255)
    levels = levels.astype(np.uint8).astype(np.float32)
    out = np.clip(np.trunc(np.float32(factor) * levels), 0, 255)
    return out / np.float32(255) * (high - low) + low if stretched else out


class Iterator:
    """Batches of an epoch of n samples: a Python iterator and a Keras Sequence.

    - ``next(it)`` / ``it.next()``: the next batch, endlessly, epoch after epoch (as Keras).
    - ``len(it)``: batches per epoch; ``it[i]``: batch ``i`` of the current epoch (the same batch
      for the same seed, epoch and ``i``, in whatever order they are asked for);
      ``it.on_epoch_end()``: start the next epoch (a new order when shuffling, new transforms).

    Subclasses define ``_batch(indices, rng)``.
    """

    def __init__(self, n, batch_size, shuffle, seed, fn):
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"{fn}: batch_size must be a positive int. Received: batch_size={batch_size!r}")
        self.n = int(n)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        # Every random draw comes from a Generator seeded by (seed, epoch, batch): reproducible
        # with a seed, and independent of the order in which batches are asked for.
        self.seed = seed if seed is not None else int(np.random.SeedSequence().entropy)
        self.epoch = 0
        self.batch_index = 0
        self._order = None
        self._lock = threading.Lock()

    def __len__(self):
        return -(-self.n // self.batch_size)

    def _index_array(self, epoch):
        if self._order is None or self._order[0] != epoch:
            order = (np.random.default_rng([self.seed, epoch]).permutation(self.n) if self.shuffle
                     else np.arange(self.n))
            self._order = (epoch, order)
        return self._order[1]

    def __getitem__(self, idx):
        if isinstance(idx, bool) or not isinstance(idx, numbers.Integral):
            raise TypeError(f"{type(self).__name__}: batch index must be an int. Received: {idx!r}")
        if not 0 <= idx < len(self):
            raise IndexError(f"{type(self).__name__}: asked for batch {idx}, but the sequence has length {len(self)}")
        return self._get(self.epoch, int(idx))

    def _get(self, epoch, idx):
        indices = self._index_array(epoch)[idx * self.batch_size:(idx + 1) * self.batch_size]
        return self._batch(indices, np.random.default_rng([self.seed, epoch, idx, 1]))

    def on_epoch_end(self):
        """Start the next epoch: a new order (when shuffling) and new random transforms."""
        self.epoch += 1
        self.batch_index = 0

    def reset(self):
        """Back to the start of the current epoch (as Keras's Iterator.reset)."""
        self.batch_index = 0

    def __iter__(self):
        return self

    def __next__(self):
        return self.next()

    def next(self):
        """The next batch: the batches of this epoch in turn, then those of the next epoch."""
        with self._lock:
            if self.batch_index >= len(self):
                self.on_epoch_end()
            epoch, idx = self.epoch, self.batch_index
            self.batch_index += 1
        return self._get(epoch, idx)

    def _save(self, batch, indices, rng):
        """Keras's save_to_dir: each generated image as ``{prefix}_{index}_{hash}.{format}``."""
        if self.save_to_dir is None:
            return
        gen = self.image_data_generator
        for image, index in zip(gen._to_nhwc(batch) if gen is not None else batch, indices):
            name = f"{self.save_prefix}_{index}_{int(rng.integers(10_000_000))}.{self.save_format}"
            array_to_img(image, scale=True).save(os.path.join(self.save_to_dir, name))


def _subset_split(generator, subset, fn):
    """(start, stop) fractions of ``subset`` (None: everything), as Keras."""
    if subset is None:
        return None
    if subset not in ("training", "validation"):
        raise ValueError(f'{fn}: invalid subset name: {subset!r}; expected "training" or "validation"')
    split = generator._validation_split
    return (0.0, split) if subset == "validation" else (split, 1.0)


class NumpyArrayIterator(Iterator):
    """Augmented batches of arrays (see :meth:`ImageDataGenerator.flow`)."""

    def __init__(self, x, y, image_data_generator, batch_size=32, shuffle=True, sample_weight=None, seed=None,
                 save_to_dir=None, save_prefix="", save_format="png", subset=None, ignore_class_split=False):
        fn = "ImageDataGenerator.flow"
        if isinstance(x, (tuple, list)):
            raise ValueError(f"{fn}: x as a list [images, other inputs] is not supported by fastconv; pass the "
                             "images array")
        x = np.asarray(x)
        if x.ndim != 4:
            raise ValueError(f"{fn}: x must be a 4-D array (samples, height, width, channels); "
                             f"received shape {x.shape}")
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{fn}: x must hold numbers; received dtype {x.dtype}")
        if y is not None:
            y = np.asarray(y)
            if y.ndim == 0 or len(y) != len(x):
                raise ValueError(f"{fn}: x and y must have the same number of samples; received x of shape "
                                 f"{x.shape} and y of shape {y.shape}")
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight)
            if sample_weight.ndim == 0 or len(sample_weight) != len(x):
                raise ValueError(f"{fn}: x and sample_weight must have the same number of samples; received x of "
                                 f"shape {x.shape} and sample_weight of shape {sample_weight.shape}")
        split = _subset_split(image_data_generator, subset, fn)
        if split is not None:
            cut = int(len(x) * image_data_generator._validation_split)
            if y is not None and not ignore_class_split and not np.array_equal(np.unique(y[:cut]),
                                                                               np.unique(y[cut:])):
                raise ValueError("Training and validation subsets have different number of classes after the split. "
                                 "If your numpy arrays are sorted by the label, you might want to shuffle them.")
            part = slice(None, cut) if subset == "validation" else slice(cut, None)
            x = x[part]
            y = None if y is None else y[part]
            sample_weight = None if sample_weight is None else sample_weight[part]
        if len(x) == 0:
            raise ValueError(f"{fn}: x holds no samples")
        super().__init__(len(x), batch_size, shuffle, seed, fn)
        self.x, self.y, self.sample_weight = x, y, sample_weight
        self.image_data_generator = image_data_generator
        self.save_to_dir, self.save_prefix, self.save_format = save_to_dir, save_prefix, save_format

    def _batch(self, indices, rng):
        gen = self.image_data_generator
        batch = gen._augment(self.x[indices].astype(gen.dtype, copy=False), rng)
        self._save(batch, indices, rng)
        if self.y is None:
            return batch
        return (batch, self.y[indices]) if self.sample_weight is None else \
            (batch, self.y[indices], self.sample_weight[indices])


# -- image files -----------------------------------------------------------------------------------

WHITE_LIST_FORMATS = ("png", "jpg", "jpeg", "bmp", "ppm", "tif", "tiff")
_CLASS_MODES = ("categorical", "binary", "sparse", "input", None)
_CHANNELS = {"rgb": 3, "rgba": 4, "grayscale": 1}


def _iter_valid_files(directory, follow_links):
    """(root, file name) of the images below ``directory``, in Keras's order."""
    for root, _, files in sorted(os.walk(directory, followlinks=follow_links), key=lambda entry: entry[0]):
        for fname in sorted(files):
            if fname.lower().endswith(WHITE_LIST_FORMATS):
                yield root, fname


def _nearest_taps(in_size, out_size, start=0.0, span=None):
    """The source pixels of Pillow's NEAREST resize (ImagingScaleAffine): position
    start + (span / out) * (i + 0.5), accumulated step by step in double precision as Pillow
    does, then truncated."""
    step = (in_size if span is None else span) / out_size
    steps = np.full(out_size, step)
    steps[0] = start + step * 0.5
    return np.minimum(np.add.accumulate(steps).astype(np.int64), in_size - 1)


def _read_rgb_png(path, channels):
    """An 8-bit PNG decoded by fastconv's own decoder as (height, width, channels) uint8 (the
    pixels Pillow gives for 'rgb' and 'rgba'), or None for any other file."""
    with open(path, "rb") as f:
        data = f.read()
    pixels = png.read_png(data) if data.startswith(png.PNG_SIGNATURE) else None
    return None if pixels is None else png.png_channels(pixels, channels)


def _load_image_array(path, color_mode, target_size, interpolation, keep_aspect_ratio):
    """Keras's load_img + img_to_array of one file as (height, width, channels) float32: 8-bit
    PNGs in rgb/rgba with nearest resizing by fastconv (the same pixels), the rest by Pillow."""
    pixels = _read_rgb_png(path, _CHANNELS[color_mode]) if color_mode != "grayscale" and \
        interpolation == "nearest" else None
    if pixels is None:
        return img_to_array(load_img(path, color_mode, target_size, interpolation, keep_aspect_ratio))
    h, w = pixels.shape[:2]
    if target_size is not None and (h, w) != tuple(target_size):
        th, tw = target_size
        if keep_aspect_ratio:
            top, left, ch, cw = _keep_aspect_box(h, w, th, tw)
            rows, cols = _nearest_taps(h, th, top, ch), _nearest_taps(w, tw, left, cw)
        else:
            rows, cols = _nearest_taps(h, th), _nearest_taps(w, tw)
        pixels = pixels[rows][:, cols]
    return pixels.astype(np.float32)


def _keep_aspect_box(h, w, target_h, target_w):
    """Keras's load_img(keep_aspect_ratio=True) crop: (top, left, height, width)."""
    crop_h = min(h, (w * target_h) // target_w)
    crop_w = min(w, (h * target_w) // target_h)
    return (h - crop_h) // 2, (w - crop_w) // 2, crop_h, crop_w


_pool = None


def _file_pool():
    """Threads that decode the files of a batch (the decoders release the GIL)."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="fastconv-load")
    return _pool


class _BatchFromFiles(Iterator):
    """Batches of images read from files: ``filepaths``, ``classes`` (label indexes),
    ``class_indices``, ``class_mode``."""

    def _setup(self, image_data_generator, target_size, color_mode, class_mode, save_to_dir, save_prefix,
               save_format, interpolation, keep_aspect_ratio, fn):
        try:
            self.target_size = tuple(int(operator.index(v)) for v in target_size)
        except TypeError:
            self.target_size = None
        if self.target_size is None or len(self.target_size) != 2 or min(self.target_size) < 1:
            raise ValueError(f"{fn}: target_size must be two positive ints (height, width). "
                             f"Received: target_size={target_size!r}")
        if color_mode not in _CHANNELS:
            raise ValueError(f'Invalid color mode: {color_mode}; expected "rgb", "rgba", or "grayscale".')
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(f"{fn}: interpolation must be one of {list(_INTERPOLATIONS)}. "
                             f"Received: interpolation={interpolation!r}")
        self.image_data_generator = image_data_generator
        self.color_mode, self.class_mode = color_mode, class_mode
        self.interpolation, self.keep_aspect_ratio = interpolation, bool(keep_aspect_ratio)
        self.save_to_dir, self.save_prefix, self.save_format = save_to_dir, save_prefix, save_format
        self.data_format = image_data_generator.data_format if image_data_generator else "channels_last"
        self.dtype = image_data_generator.dtype if image_data_generator else np.dtype("float32")
        channels = _CHANNELS[color_mode]
        self.image_shape = (self.target_size + (channels,) if self.data_format == "channels_last"
                            else (channels,) + self.target_size)

    @property
    def labels(self):
        return self.classes

    def _load(self, path):
        return _load_image_array(path, self.color_mode, self.target_size, self.interpolation,
                                 self.keep_aspect_ratio)

    def _batch(self, indices, rng):
        paths = [self.filepaths[j] for j in indices]
        images = np.stack(list(_file_pool().map(self._load, paths))) if len(paths) > 1 else \
            np.stack([self._load(p) for p in paths])
        batch = images.astype(self.dtype, copy=False)
        if self.data_format == "channels_first":
            batch = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
        if self.image_data_generator is not None:
            batch = self.image_data_generator._augment(batch, rng)
        self._save(batch, indices, rng)
        if self.class_mode == "input":
            return batch, batch.copy()
        if self.class_mode in ("binary", "sparse"):
            y = np.asarray([self.classes[j] for j in indices], dtype=self.dtype)
        elif self.class_mode == "categorical":
            y = np.zeros((len(indices), len(self.class_indices)), dtype=self.dtype)
            for i, j in enumerate(indices):
                y[i, self.classes[j]] = 1.0
        elif self.class_mode == "multi_output":
            y = [target[indices] for target in self._targets]
        elif self.class_mode == "raw":
            y = self._targets[indices]
        else:
            return batch
        weights = getattr(self, "_sample_weight", None)
        return (batch, y) if weights is None else (batch, y, weights[indices])


class DirectoryIterator(_BatchFromFiles):
    """Batches of the images in the class folders of ``directory``, as Keras's
    ``flow_from_directory``: classes are the sub-folders in alphanumeric order (or ``classes``),
    images are listed recursively in sorted order, and ``subset='validation'`` takes the first
    ``validation_split`` of each class's files ('training' the rest).  Images are loaded as
    Keras's load_img (Pillow's filters; its default 'nearest' resize to ``target_size``),
    augmented and standardized by the generator.  Labels by ``class_mode``: 'categorical'
    (one-hot), 'binary' / 'sparse' (the class index as float), 'input' (the images), None."""

    def __init__(self, directory, image_data_generator, target_size=(256, 256), color_mode="rgb", classes=None,
                 class_mode="categorical", batch_size=32, shuffle=True, seed=None, save_to_dir=None,
                 save_prefix="", save_format="png", follow_links=False, subset=None, interpolation="nearest",
                 keep_aspect_ratio=False):
        fn = "ImageDataGenerator.flow_from_directory"
        if class_mode not in _CLASS_MODES:
            raise ValueError(f"Invalid class_mode: {class_mode}; expected one of: {set(_CLASS_MODES)}")
        if not os.path.isdir(directory):
            raise ValueError(f"{fn}: directory {directory!r} is not a folder")
        self._setup(image_data_generator, target_size, color_mode, class_mode, save_to_dir, save_prefix,
                    save_format, interpolation, keep_aspect_ratio, fn)
        split = _subset_split(image_data_generator, subset, fn)
        self.directory = directory
        if not classes:
            classes = [d for d in sorted(os.listdir(directory)) if os.path.isdir(os.path.join(directory, d))]
        self.num_classes = len(classes)
        self.class_indices = dict(zip(classes, range(len(classes))))
        self.filenames, labels = [], []
        for name in classes:
            folder = os.path.join(directory, name)
            files = list(_iter_valid_files(folder, follow_links))
            if split is not None:
                files = files[int(split[0] * len(files)):int(split[1] * len(files))]
            for root, fname in files:
                self.filenames.append(os.path.join(name, os.path.relpath(os.path.join(root, fname), folder)))
                labels.append(self.class_indices[name])
        self.samples = len(self.filenames)
        self.classes = np.asarray(labels, dtype=np.int32)
        self.filepaths = [os.path.join(directory, f) for f in self.filenames]
        print(f"Found {self.samples} images belonging to {self.num_classes} classes.")
        super().__init__(self.samples, batch_size, shuffle, seed, fn)

    @property
    def sample_weight(self):
        return None


class DataFrameIterator(_BatchFromFiles):
    """Batches of the image files named in column ``x_col`` of a pandas DataFrame (relative to
    ``directory`` when given), as Keras's ``flow_from_dataframe``: labels from ``y_col`` by
    ``class_mode`` ('categorical', 'binary', 'sparse': class names; 'raw' / 'multi_output': the
    values of y_col; 'input'; None), weights from ``weight_col``; files that do not exist or are
    not images are dropped when ``validate_filenames``."""

    _CLASS_MODES = ("binary", "categorical", "input", "multi_output", "raw", "sparse", None)

    def __init__(self, dataframe, directory=None, image_data_generator=None, x_col="filename", y_col="class",
                 weight_col=None, target_size=(256, 256), color_mode="rgb", classes=None, class_mode="categorical",
                 batch_size=32, shuffle=True, seed=None, save_to_dir=None, save_prefix="", save_format="png",
                 subset=None, interpolation="nearest", keep_aspect_ratio=False, validate_filenames=True):
        fn = "ImageDataGenerator.flow_from_dataframe"
        if class_mode not in self._CLASS_MODES:
            raise ValueError(f"Invalid class_mode: {class_mode}; expected one of: {set(self._CLASS_MODES)}")
        self._setup(image_data_generator, target_size, color_mode, class_mode, save_to_dir, save_prefix,
                    save_format, interpolation, keep_aspect_ratio, fn)
        split = _subset_split(image_data_generator, subset, fn) if image_data_generator is not None else None
        df = dataframe.copy()
        self.directory = directory or ""
        if class_mode == "multi_output" and not isinstance(y_col, list):
            raise TypeError(f'If class_mode="multi_output", y_col must be a list. Received {type(y_col).__name__}.')
        if not all(isinstance(v, str) for v in df[x_col]):
            raise TypeError(f"All values in column x_col={x_col} must be strings.")
        if class_mode in ("binary", "sparse") and not all(isinstance(v, str) for v in df[y_col]):
            raise TypeError(f'If class_mode="{class_mode}", y_col="{y_col}" column values must be strings.')
        if class_mode == "categorical" and not all(isinstance(v, (str, list, tuple)) for v in df[y_col]):
            raise TypeError(f'If class_mode="categorical", y_col="{y_col}" column values must be type string, list '
                            "or tuple.")
        if weight_col and not np.issubdtype(df[weight_col].dtype, np.number):
            raise TypeError(f"Column weight_col={weight_col} must be numeric.")
        if validate_filenames:
            valid = [str(f).lower().endswith(WHITE_LIST_FORMATS) and os.path.isfile(os.path.join(self.directory, f))
                     for f in df[x_col]]
            if not all(valid):
                warnings.warn(f'Found {valid.count(False)} invalid image filename(s) in x_col="{x_col}". These '
                              "filename(s) will be ignored.", stacklevel=3)
            df = df[np.asarray(valid, dtype=bool)]
        if class_mode in ("binary", "categorical", "sparse"):
            df, classes = self._filter_classes(df, y_col, classes)
            if class_mode == "binary" and len(classes) != 2:
                raise ValueError(f'If class_mode="binary" there must be 2 classes. Found {len(classes)} classes.')
            self.class_indices = dict(zip(classes, range(len(classes))))
        if split is not None:
            df = df.iloc[int(split[0] * len(df)):int(split[1] * len(df))]
        if class_mode in ("binary", "categorical", "sparse"):
            self.classes = [[self.class_indices[c] for c in v] if isinstance(v, (list, tuple))
                            else self.class_indices[v] for v in df[y_col]]
        else:
            self.classes = None
        if class_mode == "categorical" and any(isinstance(c, list) for c in self.classes):
            raise ValueError(f"{fn}: multi-label rows (lists of classes) are not supported by fastconv")
        self.filenames = df[x_col].tolist()
        self._sample_weight = df[weight_col].values if weight_col else None
        if class_mode == "multi_output":
            self._targets = [np.array(df[col].tolist()) for col in y_col]
        if class_mode == "raw":
            self._targets = df[y_col].values
        self.samples = len(self.filenames)
        self.filepaths = [os.path.join(self.directory, f) for f in self.filenames]
        super().__init__(self.samples, batch_size, shuffle, seed, fn)

    @staticmethod
    def _filter_classes(df, y_col, classes):
        """Rows whose class is among ``classes`` (default: every class, sorted), and the classes."""
        if classes:
            classes = list(dict.fromkeys(classes))
            keep = [(v in classes) if isinstance(v, str) else bool(v) for v in df[y_col]]
            return df[np.asarray(keep, dtype=bool)], classes
        found = set()
        for v in df[y_col]:
            found.update(v if isinstance(v, (list, tuple)) else [v])
        return df, sorted(found)

    @property
    def labels(self):
        return self._targets if self.class_mode in ("multi_output", "raw") else self.classes

    @property
    def sample_weight(self):
        return self._sample_weight


# -- image files (Keras's helpers; Pillow is imported when they are called) -----------------------

def _pil_image():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("load_img, img_to_array and array_to_img need Pillow: `pip install pillow` or "
                          "`pip install \"fastconv[examples]\"`") from None
    return Image


_COLOR_MODES = {"rgb": "RGB", "rgba": "RGBA", "grayscale": "L"}
_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "hamming", "box", "lanczos")


def load_img(path, color_mode="rgb", target_size=None, interpolation="nearest", keep_aspect_ratio=False):
    """A PIL image from a file, as ``keras.utils.load_img``: converted to ``color_mode``
    ('rgb', 'rgba', 'grayscale') and, when ``target_size`` = (height, width) is given, resized
    with Pillow's ``interpolation`` filter (Keras's default: 'nearest'), from the central crop
    of the target's aspect ratio with ``keep_aspect_ratio``."""
    image = _pil_image()
    if color_mode not in _COLOR_MODES:
        raise ValueError(f"load_img: color_mode must be one of {sorted(_COLOR_MODES)}. Received: {color_mode!r}")
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"load_img: interpolation must be one of {list(_INTERPOLATIONS)}. "
                         f"Received: {interpolation!r}")
    with image.open(path) as img:
        img = img.convert(_COLOR_MODES[color_mode])
    if target_size is not None:
        height, width = target_size
        if img.size != (width, height):
            resample = getattr(getattr(image, "Resampling", image), interpolation.upper())
            box = None
            if keep_aspect_ratio:
                top, left, crop_h, crop_w = _keep_aspect_box(img.size[1], img.size[0], height, width)
                box = (left, top, left + crop_w, top + crop_h)
            img = img.resize((width, height), resample, box=box)
    return img


def img_to_array(img, dtype="float32"):
    """A PIL image (or array) as a float array (height, width, channels), as ``keras.utils.img_to_array``."""
    x = np.asarray(img, dtype=dtype)
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3:
        raise ValueError(f"img_to_array: expected an image of 2 or 3 dimensions; received shape {x.shape}")
    return x


def array_to_img(x, scale=True):
    """An array (height, width, 1|3|4) as a PIL image, as ``keras.utils.array_to_img``: with
    ``scale``, the values are stretched from [min, max] to [0, 255] first."""
    image = _pil_image()
    x = np.array(x, dtype=np.float32)
    if x.ndim != 3 or x.shape[2] not in (1, 3, 4):
        raise ValueError(f"array_to_img: expected an array (height, width, 1, 3 or 4 channels); "
                         f"received shape {x.shape}")
    if scale:
        x -= np.min(x)
        if np.max(x) != 0:
            x /= np.max(x)
        x *= 255
    if x.shape[2] == 1:
        if np.max(x) > 255:  # unscaled values beyond 8 bits: a 32-bit integer image, as Keras
            return image.fromarray(x[:, :, 0].astype(np.int32), "I")
        return image.fromarray(x[:, :, 0].astype(np.uint8), "L")
    return image.fromarray(x.astype(np.uint8), "RGB" if x.shape[2] == 3 else "RGBA")
