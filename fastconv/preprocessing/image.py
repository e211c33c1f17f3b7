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
import threading

import numpy as np

from fastconv.image import FILL_MODES, affine_transform

__all__ = ["ImageDataGenerator", "NumpyArrayIterator", "array_to_img", "img_to_array", "load_img",
           "transform_matrix"]

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
    """Random rotations, shifts, shears, zooms and flips of images, as Keras's ImageDataGenerator.

    Parameters (all keyword-only, Keras's names and meanings)
    ----------
    rotation_range : float
        Degrees; the angle is uniform in [-rotation_range, rotation_range).
    width_shift_range, height_shift_range : float, int or 1-D list
        A float below 1 is a fraction of the width (height), 1 or more a number of pixels,
        uniform in [-r, r); an int n gives whole pixels in (-n, n); a list, one of its values
        with a random sign.
    shear_range : float
        Shear angle in degrees (as Keras: 0.2 means 0.2 degrees), uniform in [-r, r).
    zoom_range : float or [lower, upper]
        A float z means [1 - z, 1 + z]; zoom factors are drawn per axis.  As in Keras, a
        factor above 1 shows a larger area (the content shrinks).
    horizontal_flip, vertical_flip : bool
        Flip with probability 1/2.
    fill_mode : {'nearest', 'constant', 'reflect', 'wrap'}
        How points outside the image are filled (see :func:`fastconv.image.affine_transform`).
    cval : float
        The value of 'constant'.
    rescale : float or None
        Multiplies the images after the transform (e.g. 1/255).
    interpolation_order : {0, 1}
        0 nearest pixel, 1 bilinear (Keras's default).
    dtype : float dtype
        Of the generated batches (float32 by default).
    """

    def __init__(self, *, rotation_range=0.0, width_shift_range=0.0, height_shift_range=0.0, shear_range=0.0,
                 zoom_range=0.0, horizontal_flip=False, vertical_flip=False, fill_mode="nearest", cval=0.0,
                 rescale=None, interpolation_order=1, dtype="float32"):
        self.rotation_range = _check_range(rotation_range, "rotation_range")
        self.width_shift_range = _check_range(width_shift_range, "width_shift_range", allow_list=True)
        self.height_shift_range = _check_range(height_shift_range, "height_shift_range", allow_list=True)
        self.shear_range = _check_range(shear_range, "shear_range")
        self.zoom_range = _zoom_bounds(zoom_range)
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
        if interpolation_order not in (0, 1) or isinstance(interpolation_order, bool):
            raise ValueError(f"ImageDataGenerator: interpolation_order must be 0 or 1. "
                             f"Received: interpolation_order={interpolation_order!r}")
        self.interpolation_order = int(interpolation_order)
        self.dtype = np.dtype(dtype)
        if self.dtype not in _FLOAT_DTYPES:
            raise TypeError(f"ImageDataGenerator: dtype must be a float dtype. Received: dtype={dtype!r}")
        self._rng = np.random.default_rng()

    # -- one image -------------------------------------------------------------------------
    def _draw(self, rng, image_shape, n):
        """Random transform parameters for n images of shape (height, width[, channels]): a dict
        of arrays of n values, Keras's keys."""
        zoom = (rng.uniform(self.zoom_range[0], self.zoom_range[1], (2, n)) if self.zoom_range != (1.0, 1.0)
                else np.ones((2, n)))
        return {
            "theta": rng.uniform(-self.rotation_range, self.rotation_range, n) if self.rotation_range else np.zeros(n),
            "tx": _draw_shifts(rng, self.height_shift_range, image_shape[0], n),
            "ty": _draw_shifts(rng, self.width_shift_range, image_shape[1], n),
            "shear": rng.uniform(-self.shear_range, self.shear_range, n) if self.shear_range else np.zeros(n),
            "zx": zoom[0],
            "zy": zoom[1],
            "flip_horizontal": (rng.random(n) < 0.5) & self.horizontal_flip,
            "flip_vertical": (rng.random(n) < 0.5) & self.vertical_flip,
        }

    def get_random_transform(self, img_shape, seed=None):
        """A dictionary of random parameters for an image of shape ``img_shape`` (Keras's keys)."""
        params = self._draw(self._rng if seed is None else np.random.default_rng(seed), img_shape, 1)
        return {k: (bool(v[0]) if v.dtype == bool else float(v[0])) for k, v in params.items()}

    def _warp(self, batch, params):
        """Warp a (N, H, W, C) batch, image k by the k-th values of ``params``, in one kernel call."""
        matrices = transform_matrix(params, batch.shape[1:]).reshape(-1, 2, 3)
        return affine_transform(batch, matrices, order=self.interpolation_order, fill_mode=self.fill_mode,
                                cval=self.cval)

    def _check_image(self, x, fn):
        x = np.asarray(x)
        if x.ndim != 3:
            raise ValueError(f"ImageDataGenerator.{fn}: x must be one image (height, width, channels); "
                             f"received shape {x.shape}")
        return x

    def apply_transform(self, x, transform_parameters):
        """One image (H, W, C) transformed by Keras's parameter dictionary (no rescale, as Keras)."""
        x = self._check_image(x, "apply_transform")
        if not isinstance(transform_parameters, dict):
            raise TypeError("ImageDataGenerator.apply_transform: transform_parameters must be a dict. "
                            f"Received: {type(transform_parameters).__name__}")
        return self._warp(x[None], transform_parameters)[0]

    def random_transform(self, x, seed=None):
        """One image (H, W, C) with a random transform applied (no rescale, as Keras)."""
        x = self._check_image(x, "random_transform")
        return self.apply_transform(x, self.get_random_transform(x.shape, seed))

    def standardize(self, x):
        """``x`` times ``rescale`` (a new array; the identity when rescale is None)."""
        x = np.array(x, dtype=self.dtype)
        if self.rescale is not None:
            x *= self.rescale
        return x

    # -- batches ---------------------------------------------------------------------------
    def flow(self, x, y=None, batch_size=32, shuffle=True, seed=None):
        """An iterator of augmented batches ``(x_batch, y_batch)`` (or ``x_batch`` when y is None).

        ``x``: (samples, height, width, channels), any numeric dtype (converted batch by batch);
        ``y``: as many labels as samples.  Each epoch visits every sample once, in a new random
        order when ``shuffle``; the last batch of an epoch may be smaller.  ``seed`` makes the
        order and the transforms reproducible.
        """
        return NumpyArrayIterator(x, y, self, batch_size=batch_size, shuffle=shuffle, seed=seed)


class NumpyArrayIterator:
    """Augmented batches of arrays: a Python iterator and a Keras Sequence.

    - ``next(it)`` / ``it.next()``: the next batch, endlessly, epoch after epoch (as Keras).
    - ``len(it)``: batches per epoch; ``it[i]``: batch ``i`` of the current epoch (the same batch
      for the same seed, epoch and ``i``, in whatever order they are asked for);
      ``it.on_epoch_end()``: start the next epoch (a new order when shuffling, new transforms).
    """

    def __init__(self, x, y, image_data_generator, batch_size=32, shuffle=True, seed=None):
        fn = "ImageDataGenerator.flow"
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
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"{fn}: batch_size must be a positive int. Received: batch_size={batch_size!r}")
        if len(x) == 0:
            raise ValueError(f"{fn}: x holds no samples")
        self.x, self.y = x, y
        self.image_data_generator = image_data_generator
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.n = len(x)
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
            raise TypeError(f"NumpyArrayIterator: batch index must be an int. Received: {idx!r}")
        if not 0 <= idx < len(self):
            raise IndexError(f"NumpyArrayIterator: asked for batch {idx}, but the sequence has length {len(self)}")
        return self._get(self.epoch, int(idx))

    def _get(self, epoch, idx):
        indices = self._index_array(epoch)[idx * self.batch_size:(idx + 1) * self.batch_size]
        return self._batch(indices, np.random.default_rng([self.seed, epoch, idx, 1]))

    def _batch(self, indices, rng):
        gen = self.image_data_generator
        images = self.x[indices].astype(gen.dtype, copy=False)
        batch = gen._warp(images, gen._draw(rng, images.shape[1:], len(indices))).astype(gen.dtype, copy=False)
        if gen.rescale is not None:
            batch *= gen.rescale
        return batch if self.y is None else (batch, self.y[indices])

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


def load_img(path, color_mode="rgb", target_size=None, interpolation="nearest"):
    """A PIL image from a file, as ``keras.utils.load_img``: converted to ``color_mode``
    ('rgb', 'rgba', 'grayscale') and, when ``target_size`` = (height, width) is given, resized
    with Pillow's ``interpolation`` filter (Keras's default: 'nearest')."""
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
            filters = getattr(image, "Resampling", image)
            img = img.resize((width, height), getattr(filters, interpolation.upper()))
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
