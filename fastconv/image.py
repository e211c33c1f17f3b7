"""Geometric transforms of images: the affine warp behind fastconv's image augmentation.

``affine_transform`` warps a batch of NHWC images, each by its own matrix, in one call to the
compiled kernel of ``fastconv/_warp.pyx`` (OpenMP over the rows of all images).  It follows
``scipy.ndimage.affine_transform`` applied to each channel, which is exactly what Keras's
ImageDataGenerator does image by image, channel by channel: the same inverse map, the same
``order`` 0/1 interpolation and the same fill modes.

``resize`` (``tf.image.resize``: half-pixel bilinear or nearest), ``flip_left_right``,
``flip_up_down``, ``rot90``, ``central_crop`` and ``rgb_to_grayscale`` are TensorFlow's
``tf.image`` functions on NumPy arrays, for programs that ``import fastconv as tf``.
"""
import operator

import numpy as np

from fastconv import _buffers, _warp
from fastconv._threads import get_num_threads
from fastconv._validation import as_numeric_array, float_dtypes

# The codes of fastconv/_warp.pyx.
FILL_MODES = {"constant": 0, "nearest": 1, "reflect": 2, "wrap": 3}


def _as_matrices(matrices, n_images, fn):
    """The matrices as a C-contiguous float64 (n_images, 2, 3) array."""
    m = as_numeric_array(matrices, fn, "matrices").astype(np.float64)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3 or m.shape[1:] not in ((2, 3), (3, 3)):
        raise ValueError(
            f"{fn}: matrices must be one 2x3 or 3x3 affine matrix, or a stack of them of shape "
            f"(images, 2, 3) or (images, 3, 3); received shape {np.shape(matrices)}"
        )
    if m.shape[1] == 3 and not np.all(m[:, 2] == [0.0, 0.0, 1.0]):
        raise ValueError(f"{fn}: the last row of a 3x3 matrix must be [0, 0, 1] (an affine map, not a "
                         f"projective one); received matrices of shape {np.shape(matrices)}")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{fn}: matrices must be finite; received NaN or infinity")
    if m.shape[0] not in (1, n_images):
        raise ValueError(f"{fn}: {m.shape[0]} matrices for {n_images} image(s); give one matrix per image "
                         f"or a single one for all")
    return np.ascontiguousarray(np.broadcast_to(m[:, :2], (n_images, 2, 3)))


def affine_transform(images, matrices, order=1, fill_mode="nearest", cval=0.0, output_shape=None):
    """Warp images by affine maps, as ``scipy.ndimage.affine_transform`` on each channel.

    Parameters
    ----------
    images : array_like
        One image (H, W) or (H, W, C), or a batch (N, H, W, C).
    matrices : array_like
        The map from OUTPUT pixel coordinates to INPUT coordinates (the inverse map that SciPy
        takes), in (row, column) order: a 2x3 matrix ``[[a, b, t_row], [c, d, t_col]]`` or its
        3x3 form with last row [0, 0, 1]; for a batch, one matrix for all images or a stack of
        shape (N, 2, 3) / (N, 3, 3).  Output pixel (i, j) takes the input value at
        (a*i + b*j + t_row, c*i + d*j + t_col).
    order : {0, 1}
        0: nearest pixel, 1: bilinear interpolation (the default, as in Keras).
    fill_mode : {'nearest', 'constant', 'reflect', 'wrap'}
        How positions outside the input are filled, with SciPy's (and Keras's) definitions:
        'constant' gives ``cval`` outside [0, H-1] x [0, W-1], 'nearest' repeats the edge pixels,
        'reflect' mirrors about the edge (d c b a | a b c d | d c b a), 'wrap' repeats the image
        with period (size - 1) so that its first and last rows (columns) coincide.
    cval : float
        The fill value of 'constant', and of every output pixel when the input images have no
        pixels (height or width 0), whatever the mode.
    output_shape : (height, width), optional
        The size of the output images (default: the input's), e.g. to resize.

    Returns
    -------
    numpy.ndarray of the shape of ``images`` (with ``output_shape`` as its height and width);
    float32 stays float32, float64 stays float64,
    integers and bools give float64, float16 computes in float32 and returns float16.
    """
    fn = "affine_transform"
    x = as_numeric_array(images, fn, "images")
    if x.ndim not in (2, 3, 4):
        raise ValueError(f"{fn}: images must be (H, W), (H, W, C) or (N, H, W, C); received shape {x.shape}")
    if isinstance(order, (bool, np.bool_)) or order not in (0, 1):
        raise ValueError(f"{fn}: order must be 0 (nearest) or 1 (bilinear). Received: order={order!r}")
    mode = FILL_MODES.get(fill_mode) if isinstance(fill_mode, str) else None
    if mode is None:
        raise ValueError(f"{fn}: fill_mode must be one of {sorted(FILL_MODES)}. Received: fill_mode={fill_mode!r}")
    try:
        cval = float(cval)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: cval must be a number. Received: cval={cval!r}") from None
    batch = x if x.ndim == 4 else x.reshape((1,) + x.shape + ((1,) if x.ndim == 2 else ()))
    n, h, w, c = batch.shape
    if output_shape is not None:
        try:
            h, w = (int(operator.index(v)) for v in output_shape)
        except (TypeError, ValueError):
            raise TypeError(f"{fn}: output_shape must be two ints (height, width). "
                            f"Received: output_shape={output_shape!r}") from None
        if h < 0 or w < 0:
            raise ValueError(f"{fn}: output_shape must not be negative. Received: output_shape={output_shape!r}")
    m = _as_matrices(matrices, n, fn)
    # The kernel reduces every position into range before it floors it; that needs finite
    # positions, and an affine map takes its extremes at the corners of the output.
    corners_r, corners_c = np.array([0, 0, h - 1, h - 1]), np.array([0, w - 1, 0, w - 1])
    with np.errstate(over="ignore", invalid="ignore"):
        corners = m[:, :, :1] * corners_r + m[:, :, 1:2] * corners_c + m[:, :, 2:]
    if not np.all(np.isfinite(corners)):
        raise ValueError(f"{fn}: the matrices send pixels beyond the range of float64 (|entries| too large)")
    compute, result_dtype = float_dtypes(fn, x)
    src = np.ascontiguousarray(batch, dtype=compute)
    if src.shape[1] == 0 or src.shape[2] == 0:
        # Every position lies outside an image without pixels: all of the output is fill
        # (the kernel would read a pixel that does not exist).
        out = np.full((n, h, w, c), cval, dtype=compute)
    else:
        out = _buffers.empty((n, h, w, c), compute)
        _warp.affine_warp(src, out, m, int(order), mode, cval, get_num_threads())
    shape = {4: (n, h, w, c), 3: (h, w, c), 2: (h, w)}[x.ndim]
    return out.reshape(shape).astype(result_dtype, copy=False)


def nearest_indices(in_size, out_size):
    """The source index of each of ``out_size`` outputs in TensorFlow's nearest-neighbour resize
    with half-pixel centres: floor((i + 0.5) * in_size / out_size), within the input."""
    return np.minimum(np.floor((np.arange(out_size) + 0.5) * (in_size / out_size)).astype(np.int64), in_size - 1)


RESIZE_METHODS = ("bilinear", "nearest")


def resize(images, size, method="bilinear", preserve_aspect_ratio=False, antialias=False, dtype="float32"):
    """Resize images as ``tf.image.resize``: (H, W, C) or (N, H, W, C) to ``size`` (height, width).

    Half-pixel centres, as TensorFlow 2: 'bilinear' interpolates between the four nearest pixels
    (the edges clamped) and returns ``dtype`` (float32, as TensorFlow; fastconv also computes
    in float64 if asked); 'nearest' takes the pixel whose centre is nearest and keeps the
    dtype.  ``preserve_aspect_ratio``: the largest size within ``size`` of the images' aspect
    ratio, as TensorFlow rounds it.  ``antialias`` (a filter wider than the pixels when
    shrinking) is not implemented: True is refused.
    """
    fn = "resize"
    x = as_numeric_array(images, fn, "images")
    if x.ndim not in (3, 4):
        raise ValueError(f"{fn}: 'images' must have either 3 or 4 dimensions (H, W, C or N, H, W, C); "
                         f"received shape {x.shape}")
    if method not in RESIZE_METHODS:
        raise ValueError(f"{fn}: method must be one of {list(RESIZE_METHODS)} in fastconv. Received: method={method!r}")
    if antialias:
        raise ValueError(f"{fn}: antialias=True is not supported by fastconv (resize without it, or use "
                         "Pillow's Image.resize for an antialiased reduction)")
    try:
        height, width = (int(operator.index(v)) for v in size)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: size must be two ints (new_height, new_width). Received: size={size!r}") from None
    if height <= 0 or width <= 0:
        raise ValueError(f"{fn}: size must be positive. Received: size={size!r}")
    batch = x if x.ndim == 4 else x[None]
    h, w = batch.shape[1:3]
    if h == 0 or w == 0:
        raise ValueError(f"{fn}: the images have no pixels (shape {x.shape})")
    if preserve_aspect_ratio:
        # TensorFlow: the smaller of the two scale factors, in float32, the sizes rounded.
        scale = min(np.float32(height) / np.float32(h), np.float32(width) / np.float32(w))
        height, width = int(np.round(np.float32(h) * scale)), int(np.round(np.float32(w) * scale))
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise ValueError(f"{fn}: dtype must be float32 or float64. Received: dtype={dtype!r}")
    if method == "nearest":
        out = batch[:, nearest_indices(h, height)][:, :, nearest_indices(w, width)]
    elif (h, w) == (height, width):
        out = batch.astype(dtype)
    else:
        sh, sw = h / height, w / width
        # Half-pixel centres as an affine map; 'nearest' fill is TensorFlow's clamping of the neighbours.
        matrix = [[sh, 0.0, 0.5 * sh - 0.5], [0.0, sw, 0.5 * sw - 0.5]]
        out = affine_transform(batch.astype(dtype, copy=False), matrix, order=1, fill_mode="nearest",
                               output_shape=(height, width))
    return out if x.ndim == 4 else out[0]


def _image_batch(images, fn):
    x = np.asarray(images)
    if x.ndim not in (3, 4):
        raise ValueError(f"{fn}: 'image' must have either 3 or 4 dimensions (H, W, C or N, H, W, C); "
                         f"received shape {x.shape}")
    return x


def flip_left_right(image):
    """The image mirrored left to right, as ``tf.image.flip_left_right`` ((N,) H, W, C)."""
    return _image_batch(image, "flip_left_right")[..., ::-1, :].copy()


def flip_up_down(image):
    """The image upside down, as ``tf.image.flip_up_down`` ((N,) H, W, C)."""
    x = _image_batch(image, "flip_up_down")
    return x[..., ::-1, :, :].copy()


def rot90(image, k=1):
    """The image rotated by k quarter turns counter-clockwise, as ``tf.image.rot90``."""
    x = _image_batch(image, "rot90")
    return np.rot90(x, k=k, axes=(x.ndim - 3, x.ndim - 2)).copy()


def central_crop(image, central_fraction):
    """The central ``central_fraction`` of the image's height and width, as ``tf.image.central_crop``."""
    x = _image_batch(image, "central_crop")
    if not 0 < central_fraction <= 1:
        raise ValueError(f"central_crop: central_fraction must be within (0, 1]. Received: {central_fraction!r}")
    h, w = x.shape[-3:-1]
    # TensorFlow's offsets: int((size - size * fraction) / 2), the crop the rest.
    top, left = int((h - h * central_fraction) / 2), int((w - w * central_fraction) / 2)
    return x[..., top:h - top, left:w - left, :].copy()


def rgb_to_grayscale(images):
    """The luma of RGB images, as ``tf.image.rgb_to_grayscale``: one channel, 0.2989 R + 0.587 G
    + 0.114 B, in the images' dtype (integers through TensorFlow's convert_image_dtype: scaled
    to [0, 1] by the dtype's maximum, and back by maximum + 0.5, truncated)."""
    x = _image_batch(images, "rgb_to_grayscale")
    if x.shape[-1] != 3:
        raise ValueError(f"rgb_to_grayscale: the last axis must hold 3 channels (RGB); received shape {x.shape}")
    weights = np.array([0.2989, 0.587, 0.114], np.float32)
    if x.dtype.kind not in "iu":
        return np.tensordot(x.astype(np.float32), weights, axes=([-1], [0]))[..., None].astype(x.dtype)
    top = np.iinfo(x.dtype).max
    gray = np.tensordot(x.astype(np.float32) * np.float32(1 / top), weights, axes=([-1], [0]))[..., None]
    return np.clip(gray * np.float32(top + 0.5), 0, top).astype(x.dtype)
