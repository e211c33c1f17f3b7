"""Keras's ``image_dataset_from_directory``, without TensorFlow.

``image_dataset_from_directory("cells", validation_split=0.1, subset="both", seed=0,
image_size=(100, 100), batch_size=32)`` lists the files as Keras does (``os.walk`` order, classes
in alphanumeric order, the list shuffled with ``numpy.random.RandomState(seed)``, the validation
files the last ``validation_split`` of it), so the same files go to training and validation as in
Keras, and returns a :class:`fastconv.keras.dataset.Dataset` of ``(images, labels)`` NumPy
batches with ``class_names`` and ``file_paths``.

Decoding: 8-bit gray, RGB and RGBA PNGs (the malaria cells, most image folders) are decoded by
fastconv itself: the chunks parsed and the rows unfiltered by the kernels of
``fastconv/_imageload.pyx``, the data inflated by zlib, the checksums checked as libpng does;
every other file (JPEG, BMP, GIF, palette or 16-bit PNGs) by Pillow.  All of these release the
GIL, so the files of a batch are decoded on all cores, and the prefetch keeps the next batches
in flight.  Resizing is ``tf.image.resize``'s, which is what Keras calls: bilinear WITHOUT
antialiasing, half-pixel centres, in float32, by the kernel of ``fastconv/_imageload.pyx`` (the
same operations in the same order as TensorFlow's, so PNG, BMP and GIF images come out equal to
Keras's; JPEGs differ by a few levels of 255 because TensorFlow decodes them with libjpeg's fast
integer DCT and Pillow with the accurate one); 'nearest' and 'area' are TensorFlow's too.
Grayscale PNGs use libpng's conversion (what TensorFlow calls) and grayscale JPEGs the decoder's
luma, as TensorFlow.
"""
import functools
import io
import os
import queue
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from fastconv import _imageload
from fastconv.png import PNG_SIGNATURE, gray_from_rgb_png, png_channels, read_png
from fastconv.keras.dataset import AUTOTUNE, Dataset

ALLOWLIST_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
INTERPOLATIONS = ("bilinear", "nearest", "area")
KERAS_INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian", "mitchellcubic")
_CHANNELS = {"rgb": 3, "rgba": 4, "grayscale": 1}
_FN = "image_dataset_from_directory"

# The first bytes of each format, and how a complete file ends (checked before a file is used).
_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG", b"BM": "BMP", b"GIF87a": "GIF", b"GIF89a": "GIF"}


# -- listing the files, as Keras's dataset_utils.index_directory --------------------------------

def _valid_files(directory, follow_links, formats):
    """The image files below ``directory`` in Keras's order, as paths relative to it."""
    for root, _, files in sorted(os.walk(directory, followlinks=follow_links), key=lambda entry: entry[0]):
        relative_root = os.path.relpath(root, directory)  # once per folder (relpath is slow)
        for fname in sorted(files):
            if fname.lower().endswith(formats):
                yield fname if relative_root == os.curdir else os.path.join(relative_root, fname)


def index_directory(directory, labels, formats, class_names=None, shuffle=True, seed=None, follow_links=False,
                    verbose=True):
    """``(file_paths, labels, class_names)`` exactly as Keras's ``index_directory``: with
    ``labels='inferred'`` one class per subfolder (sorted, or in the order of ``class_names``),
    every file below it in ``os.walk`` order; the list shuffled with ``RandomState(seed)``."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{_FN}: directory {directory!r} does not exist or is not a folder")
    if labels == "inferred":
        subdirs = [d.rstrip("/") for d in sorted(os.listdir(directory))
                   if os.path.isdir(os.path.join(directory, d)) and not d.startswith(".")]
        if class_names is not None:
            if not set(class_names).issubset(set(subdirs)):
                raise ValueError("The `class_names` passed did not match the names of the subdirectories of the "
                                 f"target directory. Expected: {subdirs} (or a subset of it), but received: "
                                 f"class_names={class_names}")
            subdirs = list(class_names)
    else:
        subdirs = [""]
        if class_names is not None:
            raise ValueError("When `labels=None` (no labels), argument `class_names` cannot be specified."
                             if labels is None else
                             "When argument `labels` is specified, argument `class_names` cannot be specified "
                             "(the `class_names` will be the sorted list of labels).")
    filenames, inferred = [], []
    for index, subdir in enumerate(subdirs):
        folder = os.path.join(directory, subdir)
        dirname = os.path.basename(folder)
        for relative in _valid_files(folder, follow_links, formats):
            filenames.append(os.path.join(dirname, relative))
            inferred.append(index)
    if labels == "inferred":
        labels = np.array(inferred, dtype=np.int32)
        class_names = subdirs
    elif labels is None:
        class_names = None
    else:
        if len(labels) != len(filenames):
            raise ValueError("Expected the lengths of `labels` to match the number of files in the target "
                             f"directory. len(labels) is {len(labels)} while we found {len(filenames)} files in "
                             f"directory {directory}.")
        class_names = [str(label) for label in sorted(set(labels))]
    if verbose:
        print(f"Found {len(filenames)} files." if labels is None else
              f"Found {len(filenames)} files belonging to {len(class_names)} classes.")
    file_paths = [os.path.join(directory, fname) for fname in filenames]
    if shuffle:
        if seed is None:
            seed = np.random.randint(1e6)
        np.random.RandomState(seed).shuffle(file_paths)
        if labels is not None:
            labels = list(labels) if not isinstance(labels, np.ndarray) else labels
            np.random.RandomState(seed).shuffle(labels)
    return file_paths, labels, class_names


def check_validation_split_arg(validation_split, subset, shuffle, seed):
    """Keras's checks of ``validation_split`` and ``subset``."""
    if validation_split and not 0 < validation_split < 1:
        raise ValueError(f"`validation_split` must be between 0 and 1, received: {validation_split}")
    if (validation_split or subset) and not (validation_split and subset):
        raise ValueError("If `subset` is set, `validation_split` must be set, and inversely.")
    if subset not in ("training", "validation", "both", None):
        raise ValueError(f'`subset` must be either "training", "validation" or "both", received: {subset}')
    if validation_split and shuffle and seed is None:
        raise ValueError("If using `validation_split` and shuffling the data, you must provide a `seed` argument, "
                         "to make sure that there is no overlap between the training and validation subset.")


def get_training_or_validation_split(samples, labels, validation_split, subset):
    """The training part (all but the last ``int(validation_split * n)`` files) or the validation
    part (those last files), as Keras; a split that leaves a part empty is refused."""
    if not validation_split:
        return samples, labels
    num_val_samples = int(validation_split * len(samples))
    if num_val_samples == 0 or num_val_samples == len(samples):
        # Keras would return all files for validation and none for training when
        # int(validation_split * n) is 0: refused here rather than silently overlapping.
        raise ValueError(f"{_FN}: validation_split={validation_split} of {len(samples)} files gives "
                         f"{num_val_samples} validation files; choose a validation_split that leaves files on "
                         "both sides")
    if subset == "training":
        print(f"Using {len(samples) - num_val_samples} files for training.")
        part = slice(None, -num_val_samples)
    elif subset == "validation":
        print(f"Using {num_val_samples} files for validation.")
        part = slice(-num_val_samples, None)
    else:
        raise ValueError(f'`subset` must be either "training" or "validation", received: {subset}')
    return samples[part], (None if labels is None else labels[part])


# -- checking and decoding the files ------------------------------------------------------------

def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(f"{_FN} decodes images with Pillow: pip install pillow") from None
    return Image


def _broken(path):
    """Why the file cannot be an image of its format (empty, another kind of file, cut short),
    from its first and last bytes; None when it looks whole."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            head = os.read(fd, 32)
            size = os.lseek(fd, 0, os.SEEK_END)
            os.lseek(fd, max(size - 1024, 0), os.SEEK_SET)
            tail = os.read(fd, 1024)
        finally:
            os.close(fd)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not head:
        return "is empty"
    kind = next((k for sig, k in _SIGNATURES.items() if head.startswith(sig)), None)
    if kind is None:
        return "is not a PNG, JPEG, BMP or GIF image (unknown first bytes)"
    if kind == "PNG" and not tail.endswith(b"IEND\xaeB`\x82"):
        return "is a truncated PNG (no IEND chunk at its end)"
    if kind == "JPEG" and b"\xff\xd9" not in tail:
        return "is a truncated JPEG (no end-of-image marker)"
    if kind == "GIF" and not tail.rstrip(b"\x00").endswith(b";"):
        return "is a truncated GIF (no trailer)"
    if kind == "BMP" and len(head) >= 6 and size < int.from_bytes(head[2:6], "little"):
        return "is a truncated BMP (shorter than its header says)"
    return None


def decode_image(path, channels):
    """A file as uint8 (height, width, channels), as TensorFlow's decode_image(channels=...)
    with expand_animations=False (the first frame of a GIF)."""
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(PNG_SIGNATURE):
        pixels = read_png(data)
        if pixels is not None:
            return png_channels(pixels, channels)
    Image = _pillow()
    with Image.open(io.BytesIO(data)) as im:
        fmt = im.format
        if channels == 1 and fmt == "JPEG":
            im.draft("L", im.size)  # the decoder's own luma, as libjpeg's grayscale output
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            # 16-bit images: the high byte, as TensorFlow reduces them to uint8.
            im = Image.fromarray((np.asarray(im, dtype=np.uint32) >> 8).astype(np.uint8))
        if channels == 1:
            if fmt == "PNG" and im.mode not in ("L", "LA", "1"):
                return gray_from_rgb_png(np.asarray(im.convert("RGB")))
            return np.asarray(im.convert("L") if im.mode != "L" else im)[..., None]
        mode = "RGB" if channels == 3 else "RGBA"
        return np.asarray(im.convert(mode) if im.mode != mode else im)


# -- resizing, as tf.image.resize -----------------------------------------------------------------

@functools.lru_cache(maxsize=1024)
def _bilinear_taps(in_size, out_size):
    """TensorFlow's compute_interpolation_weights with half-pixel centres, in float32: for each
    output index the two input indices and the weight of the second."""
    f32 = np.float32
    scale = f32(in_size) / f32(out_size)
    pos = (np.arange(out_size, dtype=f32) + f32(0.5)) * scale - f32(0.5)
    floor = np.floor(pos)
    lower = np.maximum(floor, 0).astype(np.intp)
    upper = np.minimum(np.ceil(pos), in_size - 1).astype(np.intp)
    return lower, upper, (pos - floor).astype(f32)


@functools.lru_cache(maxsize=1024)
def _nearest_taps(in_size, out_size):
    """TensorFlow's resize_nearest_neighbor with half-pixel centres: floor((i + 0.5) * scale)."""
    f32 = np.float32
    scale = f32(in_size) / f32(out_size)
    pos = np.floor((np.arange(out_size, dtype=f32) + f32(0.5)) * scale).astype(np.intp)
    return np.clip(pos, 0, in_size - 1)


@functools.lru_cache(maxsize=1024)
def _area_weights(in_size, out_size):
    """TensorFlow's resize_area along one axis: output j averages the input over
    [j * scale, (j + 1) * scale), each input pixel weighted by its overlap."""
    scale = in_size / out_size
    lo = np.arange(out_size)[:, None] * scale
    hi = lo + scale
    k = np.arange(in_size)[None, :]
    overlap = np.clip(np.minimum(hi, k + 1) - np.maximum(lo, k), 0, None)
    return (overlap / scale).astype(np.float32)


def resize(image, size, interpolation="bilinear", out=None):
    """``tf.image.resize(image, size, method=interpolation)`` of one uint8 (height, width,
    channels) image: float32, equal to TensorFlow's for 'bilinear' (uint8 kept for 'nearest', as
    TensorFlow).  ``out``: a C-contiguous float32 array to write a bilinear result into."""
    h, w = size
    if interpolation == "nearest":
        return image[_nearest_taps(image.shape[0], h)][:, _nearest_taps(image.shape[1], w)]
    if interpolation == "area":
        return np.einsum("ij,jkc,lk->ilc", _area_weights(image.shape[0], h), image.astype(np.float32),
                         _area_weights(image.shape[1], w), optimize=True).astype(np.float32)
    if out is None:
        out = np.empty((h, w, image.shape[2]), dtype=np.float32)
    _imageload.bilinear_uint8(np.ascontiguousarray(image, dtype=np.uint8), out, *_bilinear_taps(image.shape[0], h),
                           *_bilinear_taps(image.shape[1], w))
    return out


def _crop_box(height, width, target):
    """Keras's smart_resize crop: the largest central window of the target's aspect ratio (the
    float32 arithmetic of its graph-mode branch, which tf.data runs)."""
    th, tw = target
    f32 = np.float32
    crop_h = max(min(height, int(f32(width * th) / f32(tw))), 1)
    crop_w = max(min(width, int(f32(height * tw) / f32(th))), 1)
    top, left = int(f32(height - crop_h) / f32(2)), int(f32(width - crop_w) / f32(2))
    return slice(top, top + crop_h), slice(left, left + crop_w)


def _resize_with_pad(image, target, interpolation):
    """``tf.image.resize_with_pad``: resized to fit, keeping its aspect ratio, and centred on zeros."""
    f32 = np.float32
    height, width = f32(image.shape[0]), f32(image.shape[1])
    th, tw = f32(target[0]), f32(target[1])
    ratio = max(width / tw, height / th)
    rh, rw = height / ratio, width / ratio
    resized = resize(image, (int(np.floor(rh)), int(np.floor(rw))), interpolation)
    top, left = max(0, int(np.floor((th - rh) / f32(2)))), max(0, int(np.floor((tw - rw) / f32(2))))
    out = np.zeros(tuple(target) + image.shape[2:], dtype=resized.dtype)
    out[top:top + resized.shape[0], left:left + resized.shape[1]] = resized
    return out


# -- the dataset of image files -------------------------------------------------------------------

_POOL = None  # (threads, executor)
_POOL_LOCK = threading.Lock()


def _decode_pool():
    """``(threads, executor)``: one thread pool shared by every image dataset (the decoders and
    the kernels release the GIL), of ``fastconv.get_num_threads()`` threads."""
    global _POOL
    from fastconv._threads import get_num_threads
    workers = get_num_threads()
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != workers:
            if _POOL is not None:
                _POOL[1].shutdown(wait=False)  # its threads end once their current work is done
            _POOL = (workers, ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fastconv-decode"))
        return _POOL


class ImageFilesDataset(Dataset):
    """Images read from files and their labels: element i is ``(image, label)`` (or the image
    alone without labels); a batch of them is decoded on all cores."""

    def __init__(self, image_paths, labels, label_mode, num_classes, image_size, num_channels, interpolation,
                 crop_to_aspect_ratio, pad_to_aspect_ratio, data_format):
        super().__init__()
        self._paths = list(image_paths)
        self._labels = None if label_mode is None else self._encode_labels(labels, label_mode, num_classes)
        self._size, self._channels = tuple(image_size), num_channels
        self._interpolation, self._crop, self._pad = interpolation, crop_to_aspect_ratio, pad_to_aspect_ratio
        self._channels_first = data_format == "channels_first"
        self.dtype = np.uint8 if interpolation == "nearest" else np.float32

    @staticmethod
    def _encode_labels(labels, label_mode, num_classes):
        labels = np.asarray(labels, dtype=np.int32)
        if label_mode == "binary":
            return labels.astype(np.float32)[:, None]
        if label_mode == "categorical":
            return (labels[:, None] == np.arange(num_classes)).astype(np.float32)  # tf.one_hot
        return labels

    def _cardinality(self):
        return len(self._paths)

    def _concurrent(self):
        return True

    def _load(self, index, out):
        path = self._paths[index]
        try:
            image = decode_image(path, self._channels)
        except Exception as exc:
            raise ValueError(f"{_FN}: cannot decode {path} ({type(exc).__name__}: {exc}); remove or replace "
                             "the file") from None
        if self._crop:
            image = image[_crop_box(image.shape[0], image.shape[1], self._size)]
        if self._pad:
            image = _resize_with_pad(image, self._size, self._interpolation)
        elif self._interpolation == "bilinear" and not self._channels_first:
            resize(image, self._size, out=out)  # straight into the batch
            return
        else:
            image = resize(image, self._size, self._interpolation)
        out[...] = image.transpose(2, 0, 1) if self._channels_first else image

    def _shape(self):
        return (self._channels,) + self._size if self._channels_first else self._size + (self._channels,)

    def _with_labels(self, images, index):
        return images if self._labels is None else (images, self._labels[index])

    def _get(self, index, key):
        image = np.empty(self._shape(), dtype=self.dtype)
        self._load(index, image)
        return self._with_labels(image, index)

    def _gather(self, indices, key, where):
        indices = np.asarray(indices, dtype=np.intp)
        images = np.empty((len(indices),) + self._shape(), dtype=self.dtype)
        workers, pool = _decode_pool()
        # Small chunks of files, taken in turn by the pool's threads and by the calling thread
        # (which would otherwise only wait): whoever is free takes the next chunk.
        step = max(1, -(-len(indices) // (4 * workers)))
        chunks = queue.SimpleQueue()
        for lo in range(0, len(indices), step):
            chunks.put(range(lo, min(lo + step, len(indices))))

        def load_chunks():
            while True:
                try:
                    chunk = chunks.get_nowait()
                except queue.Empty:
                    return
                for k in chunk:
                    self._load(indices[k], images[k])

        helpers = [pool.submit(load_chunks) for _ in range(min(workers, len(indices)))]
        try:
            load_chunks()
        finally:
            for future in helpers:
                future.result()
        return self._with_labels(images, indices)


def _check_files(paths, labels):
    """The files that look whole (see _broken), their labels, and a warning listing the others."""
    _, pool = _decode_pool()
    chunks = [paths[lo:lo + 256] for lo in range(0, len(paths), 256)]
    problems = [p for chunk in pool.map(lambda chunk: [_broken(path) for path in chunk], chunks) for p in chunk]
    bad = [i for i, p in enumerate(problems) if p is not None]
    if not bad:
        return paths, labels
    listed = "\n".join(f"  {paths[i]} {problems[i]}" for i in bad[:20])
    more = f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
    if len(bad) == len(paths):
        raise ValueError(f"{_FN}: none of the {len(paths)} image files can be read:\n{listed}{more}")
    warnings.warn(f"{_FN}: skipped {len(bad)} file(s) that are not readable images:\n{listed}{more}", stacklevel=3)
    keep = np.ones(len(paths), dtype=bool)
    keep[bad] = False
    return [p for p, k in zip(paths, keep) if k], (None if labels is None else np.asarray(labels)[keep])


def _check_arguments(labels, label_mode, class_names, color_mode, batch_size, image_size, interpolation,
                     crop_to_aspect_ratio, pad_to_aspect_ratio, data_format, format):
    if labels not in ("inferred", None):
        if not isinstance(labels, (list, tuple)):
            raise ValueError("`labels` argument should be a list/tuple of integer labels, of the same size as the "
                             "number of image files in the target directory. If you wish to infer the labels from "
                             'the subdirectory names in the target directory, pass `labels="inferred"`. If you '
                             "wish to get a dataset that only contains images (no labels), pass `labels=None`. "
                             f"Received: labels={labels}")
        if class_names:
            raise ValueError(f'You can only pass `class_names` if `labels="inferred"`. Received: labels={labels}, '
                             f"and class_names={class_names}")
    if label_mode not in {"int", "categorical", "binary", None}:
        raise ValueError(f'`label_mode` argument must be one of "int", "categorical", "binary", or None. '
                         f"Received: label_mode={label_mode}")
    if color_mode not in _CHANNELS:
        raise ValueError(f'`color_mode` must be one of {{"rgb", "rgba", "grayscale"}}. '
                         f"Received: color_mode={color_mode}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                   or batch_size < 1):
        raise ValueError(f"`batch_size` must be a positive integer or None. Received: batch_size={batch_size!r}")
    if isinstance(image_size, (int, np.integer)):
        image_size = (image_size, image_size)
    if not isinstance(image_size, (list, tuple)) or len(image_size) != 2 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in image_size):
        raise ValueError(f"Invalid `image_size` value. Expected a tuple of 2 integers. "
                         f"Received: image_size={image_size}")
    interpolation = str(interpolation).lower()
    if interpolation not in KERAS_INTERPOLATIONS:
        raise ValueError(f"Argument `interpolation` should be one of {KERAS_INTERPOLATIONS}. "
                         f"Received: interpolation={interpolation}")
    if interpolation not in INTERPOLATIONS:
        raise NotImplementedError(f"{_FN}: interpolation={interpolation!r} is not implemented in fastconv; it "
                                  f"resizes with {INTERPOLATIONS} (those of tf.image.resize)")
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError("Only one of `pad_to_aspect_ratio`, `crop_to_aspect_ratio` can be set to `True`.")
    if data_format not in (None, "channels_last", "channels_first"):
        raise ValueError(f'The `data_format` argument must be one of {{"channels_first", "channels_last"}}. '
                         f"Received: data_format={data_format}")
    if format not in ("tf", "grain"):
        raise ValueError(f'`format` should be either "tf" or "grain". Received: format={format}')
    if format == "grain":
        raise NotImplementedError(f'{_FN}: format="grain" returns a grain dataset in Keras; fastconv returns its '
                                  'own Dataset (format="tf", the default), which fit, evaluate and predict read')
    return tuple(int(v) for v in image_size), interpolation


def image_dataset_from_directory(directory, labels="inferred", label_mode="int", class_names=None, color_mode="rgb",
                                 batch_size=32, image_size=(256, 256), shuffle=True, seed=None,
                                 validation_split=None, subset=None, interpolation="bilinear", follow_links=False,
                                 crop_to_aspect_ratio=False, pad_to_aspect_ratio=False, data_format=None,
                                 format="tf", verbose=True):
    """A dataset of the images in ``directory`` (one subfolder per class), as Keras's.

    Keras's arguments and results: batches ``(images, labels)`` with images float32
    ``(batch, height, width, channels)`` (1, 3 or 4 for ``color_mode`` 'grayscale', 'rgb',
    'rgba'), labels int32 ``(batch,)`` for ``label_mode='int'``, float32 one-hot
    ``(batch, classes)`` for 'categorical', float32 ``(batch, 1)`` for 'binary', images alone for
    None; ``shuffle`` reshuffles at every epoch (a buffer of ``8 * batch_size``, as Keras);
    ``subset='both'`` returns (training, validation), the validation part unshuffled.  The
    result is a :class:`fastconv.keras.dataset.Dataset` with ``class_names`` and
    ``file_paths``.  Files that are empty, not images or cut short are skipped with a warning
    that lists them.  Not implemented (refused): ``interpolation`` other than 'bilinear',
    'nearest' and 'area', ``format='grain'``.
    """
    image_size, interpolation = _check_arguments(labels, label_mode, class_names, color_mode, batch_size,
                                                 image_size, interpolation, crop_to_aspect_ratio,
                                                 pad_to_aspect_ratio, data_format, format)
    if labels is None or label_mode is None:
        labels, label_mode = None, None
    num_channels = _CHANNELS[color_mode]
    check_validation_split_arg(validation_split, subset, shuffle, seed)
    directory = os.fspath(directory)
    if labels == "inferred" and os.path.isdir(directory) and class_names is None:
        _check_class_folders(directory, follow_links)
    if seed is None:
        seed = np.random.randint(1e6)
    image_paths, labels, class_names = index_directory(directory, labels, ALLOWLIST_FORMATS, class_names, shuffle,
                                                       seed, follow_links, verbose)
    if label_mode == "binary" and len(class_names) != 2:
        raise ValueError(f'When passing `label_mode="binary"`, there must be exactly 2 class_names. '
                         f"Received: class_names={class_names}")
    shuffle_buffer_size = batch_size * 8 if batch_size is not None else 1024

    def make(paths, part_labels, part_shuffle):
        paths, part_labels = _check_files(paths, part_labels)
        ds = ImageFilesDataset(paths, part_labels, label_mode, len(class_names) if class_names else 0, image_size,
                               num_channels, interpolation, crop_to_aspect_ratio, pad_to_aspect_ratio,
                               data_format)
        if part_shuffle:
            ds = ds.shuffle(shuffle_buffer_size, seed=seed)
        if batch_size is not None:
            ds = ds.batch(batch_size)
        ds = ds.prefetch(AUTOTUNE)
        ds.class_names, ds.file_paths = class_names, paths
        return ds

    parts = ("training", "validation") if subset == "both" else (subset,)
    datasets = []
    for part in parts:
        paths, part_labels = get_training_or_validation_split(image_paths, labels, validation_split, part)
        if not paths:
            which = f"{part} " if subset == "both" else ""
            raise ValueError(f"No {which}images found in directory {directory}. Allowed formats: {ALLOWLIST_FORMATS}")
        datasets.append(make(paths, part_labels, shuffle and not (subset == "both" and part == "validation")))
    return tuple(datasets) if subset == "both" else datasets[0]


def _check_class_folders(directory, follow_links):
    """A clear error for a folder that cannot give inferred labels: empty, or images but no class
    subfolders (Keras says only that it found no images)."""
    entries = [e for e in os.listdir(directory) if not e.startswith(".")]
    subdirs = [e for e in entries if os.path.isdir(os.path.join(directory, e))]
    if subdirs:
        return
    images = [e for e in entries if e.lower().endswith(ALLOWLIST_FORMATS)]
    if images:
        raise ValueError(f"{_FN}: directory {directory} holds {len(images)} image file(s) but no class subfolders; "
                         "with labels='inferred' each class is a subfolder (pass labels=None to read the images "
                         "without labels)")
    raise ValueError(f"{_FN}: directory {directory} is empty (no class subfolders, no images). "
                     f"Allowed formats: {ALLOWLIST_FORMATS}")
