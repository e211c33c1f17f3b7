"""The NIH malaria cell images: loading, a slide-grouped split, and a synthetic stand-in.

The data set (Rajaraman et al., PeerJ 2018; TensorFlow Datasets calls it ``malaria``) holds
single red blood cells cropped from thin blood smears, in two folders of PNGs::

    Parasitized/C100P61ThinF_IMG_20150918_144104_cell_162.png
    Uninfected/C1_thinF_IMG_20150604_104722_cell_9.png

- :func:`load` reads that layout into float32 images in [0, 1] of one size, with the labels of
  TensorFlow Datasets (0 = parasitized, 1 = uninfected) and the file names;
- :func:`load_tfds` reads TensorFlow Datasets' prepared ``malaria`` instead, when it is there;
- :func:`split_by_slide` splits by slide (the ``C{slide}`` that starts every file name): the
  cells of one slide look alike, so a random split puts near-copies on both sides and overstates
  the accuracy on new patients;
- :func:`synthetic` draws stained-cell images with and without parasites, the stand-in wherever
  the real images are absent; :func:`load_or_synthetic` picks real data when it can.

Where the real images are: an explicit path, else the environment variable
``FASTCONV_MALARIA_DIR``, else ``../shared/malaria`` next to the project (see
:func:`default_data_dir`).  The images are never part of fastconv.

Decoding PNGs needs an image library, and this module uses Pillow as an OPTIONAL dependency (the
``examples`` extra: ``pip install "fastconv[examples]"``), imported only when a file is read.
Why Pillow: it is the one widely installed library that decodes PNG (and JPEG, TIFF, BMP) without
a framework, it ships wheels for every platform, it releases the GIL while it decodes and resizes
(so a thread pool loads the set on every core), and its resampling filters are antialiased when
they shrink an image (the support of the filter grows with the scale factor), which is what
resizing 130-pixel cells to 100 pixels needs.  The alternatives are heavier (OpenCV,
scikit-image, imageio all pull in more) or slower (a PNG decoder in pure Python with zlib).
NumPy alone stays enough for everything else in fastconv, synthetic data included.
"""
import os
import re
import warnings
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from fastconv.datasets._progress import ProgressBar

MALARIA_DIR_ENV = "FASTCONV_MALARIA_DIR"

# Label k is CLASS_NAMES[k], as in TensorFlow Datasets' ``malaria``.
CLASS_NAMES = ("parasitized", "uninfected")
PARASITIZED, UNINFECTED = 0, 1

# Larger loads get a progress bar unless told otherwise.
PROGRESS_THRESHOLD = 2000

MalariaData = namedtuple("MalariaData", ["images", "labels", "names"])
MalariaData.__doc__ = """Cell images (N, height, width, 3) float32 in [0, 1], labels (N,) int64
(0 = parasitized, 1 = uninfected) and names (N,) str: the file names, or for data without
files, names that say where the images come from."""

_SLIDE = re.compile(r"C(\d+)", re.IGNORECASE)


# -- Pillow, imported only when an image is decoded ---------------------------------------------

def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(
            "fastconv.datasets.malaria needs Pillow to decode the PNG cell images. Install it with "
            "`pip install pillow` or with fastconv's extra: `pip install \"fastconv[examples]\"`. "
            "(fastconv.datasets.malaria.synthetic() needs nothing besides NumPy.)"
        ) from None
    return Image


def _resample_filter(image_module):
    # Pillow's BILINEAR is a triangle filter whose support grows with the shrink factor: an
    # antialiased resize, the filter of tf.image.resize(method="bilinear", antialias=True).
    return getattr(image_module, "Resampling", image_module).BILINEAR


def _decode_errors(image_module):
    """What Pillow raises for files that are not images or are broken."""
    return (OSError, ValueError, SyntaxError, EOFError, image_module.DecompressionBombError)


# -- arguments ----------------------------------------------------------------------------------

def _image_size(image_size, fn):
    size = (image_size, image_size) if isinstance(image_size, (int, np.integer)) else image_size
    try:
        h, w = (int(v) for v in size)
        ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in size) and h > 0 and w > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{fn}: image_size must be a positive int or a pair (height, width) of them. "
                         f"Received: image_size={image_size!r}")
    return h, w


def _limit(limit, fn):
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise ValueError(f"{fn}: limit must be None or a positive int. Received: limit={limit!r}")
    return int(limit)


def _balanced_counts(limit, available):
    """How many of each class a balanced subset of ``limit`` takes from ``available`` per class."""
    k0 = min(limit // 2, available[0])
    k1 = min(limit - k0, available[1])
    k0 = min(limit - k1, available[0])
    return k0, k1


# -- where the data is --------------------------------------------------------------------------

def find_class_dirs(path):
    """The (Parasitized, Uninfected) folders under ``path``, in any letter case, either directly in
    it or one level down (e.g. ``cell_images/``).  FileNotFoundError when there are none."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"malaria: {root} is not a folder")

    def class_dirs(folder):
        found = {}
        for entry in folder.iterdir():
            if entry.is_dir() and entry.name.lower() in CLASS_NAMES:
                found[entry.name.lower()] = entry
        return found

    found = class_dirs(root)
    if len(found) < 2:
        nested = [sub for sub in sorted(root.iterdir()) if sub.is_dir() and len(class_dirs(sub)) == 2]
        if len(nested) > 1:
            raise FileNotFoundError(f"malaria: several folders under {root} hold Parasitized/ and Uninfected/: "
                                    f"{[p.name for p in nested]}; give the one to read")
        if nested:
            found = class_dirs(nested[0])
    if len(found) < 2:
        raise FileNotFoundError(f"malaria: {root} holds no Parasitized/ and Uninfected/ folders "
                                f"(nor does any folder directly inside it)")
    return found["parasitized"], found["uninfected"]


def _has_layout(path):
    try:
        find_class_dirs(path)
    except (FileNotFoundError, OSError):
        return False
    return True


def default_data_dir():
    """The folder of the real images, or None when there is none.

    ``$FASTCONV_MALARIA_DIR`` when set (an error if it does not hold the images: a setting that
    points nowhere should not silently fall back); else ``../shared/malaria`` next to the project
    folder that holds this package, or next to the current folder, when it holds them.
    """
    env = os.environ.get(MALARIA_DIR_ENV)
    if env:
        if not _has_layout(env):
            raise FileNotFoundError(f"{MALARIA_DIR_ENV}={env} does not hold Parasitized/ and Uninfected/ folders")
        return Path(env).expanduser()
    project_root = Path(__file__).resolve().parents[2]
    for base in (project_root, Path.cwd()):
        candidate = (base / ".." / "shared" / "malaria").resolve()
        if _has_layout(candidate):
            return candidate
    return None


# -- reading the folders ------------------------------------------------------------------------

def _read_chunk(paths, indices, out, size, image_module):
    """Decode, convert to RGB and resize the files ``paths[indices]`` into ``out[indices]``.
    Returns the (index, reason) of the files that could not be read."""
    h, w = size
    resample = _resample_filter(image_module)
    errors = _decode_errors(image_module)
    failed = []
    for i in indices:
        try:
            with image_module.open(paths[i]) as im:
                rgb = im.convert("RGB")
            if rgb.size != (w, h):
                rgb = rgb.resize((w, h), resample)
            np.divide(np.asarray(rgb), np.float32(255), out=out[i])
        except errors as exc:
            failed.append((i, f"{type(exc).__name__}: {exc}"))
    return failed


def _list_files(folder):
    return sorted(p for p in folder.iterdir() if p.is_file())


def load(path=None, image_size=(100, 100), limit=None, *, seed=0, progress=None, workers=None):
    """Read the NIH layout into arrays: ``MalariaData(images, labels, names)``.

    Parameters
    ----------
    path : str or Path, optional
        A folder holding ``Parasitized/`` and ``Uninfected/`` (any letter case), directly or one
        level down; default :func:`default_data_dir`.
    image_size : int or (height, width)
        Every image is converted to RGB and resized to it with an antialiased bilinear filter.
    limit : int, optional
        Read a balanced subset of this many images (half of each class when both have enough),
        the same files for the same ``seed``.
    progress : bool, optional
        A progress bar on stderr; by default for loads of 2000 files or more.
    workers : int, optional
        Threads that decode in parallel (Pillow releases the GIL); default
        ``fastconv.get_num_threads()``.

    Returns
    -------
    MalariaData: images (N, height, width, 3) float32 in [0, 1]; labels (N,) int64,
    0 = parasitized, 1 = uninfected; names (N,) the file names.  Parasitized cells come first,
    each class in file-name order.  Files that cannot be decoded (not images, truncated, empty)
    are skipped and listed in one warning.
    """
    fn = "malaria.load"
    size = _image_size(image_size, fn)
    limit = _limit(limit, fn)
    if path is None:
        path = default_data_dir()
        if path is None:
            raise FileNotFoundError(
                f"{fn}: no path given and no real images found: set {MALARIA_DIR_ENV} to the folder "
                f"holding Parasitized/ and Uninfected/, or use malaria.synthetic()")
    image_module = _pillow()
    class_dirs = find_class_dirs(path)
    files = [_list_files(d) for d in class_dirs]
    if limit is not None:
        rng = np.random.default_rng(seed)
        counts = _balanced_counts(limit, [len(f) for f in files])
        files = [[f[i] for i in np.sort(rng.choice(len(f), k, replace=False))] for f, k in zip(files, counts)]
    paths = [p for f in files for p in f]
    labels = np.repeat(np.arange(2, dtype=np.int64), [len(f) for f in files])
    images = np.empty((len(paths),) + size + (3,), dtype=np.float32)

    if workers is None:
        from fastconv._threads import get_num_threads
        workers = get_num_threads()
    bar = ProgressBar(len(paths), "malaria.load", enabled=len(paths) >= PROGRESS_THRESHOLD if progress is None
                      else bool(progress))
    chunks = [range(s, min(s + 64, len(paths))) for s in range(0, len(paths), 64)]
    failed = []
    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
        futures = {pool.submit(_read_chunk, paths, c, images, size, image_module): len(c) for c in chunks}
        for future in as_completed(futures):
            failed.extend(future.result())
            bar.update(futures[future])
    bar.close()

    if failed:
        failed.sort()
        listed = "\n".join(f"  {paths[i]}: {reason}" for i, reason in failed[:20])
        more = f"\n  ... and {len(failed) - 20} more" if len(failed) > 20 else ""
        warnings.warn(f"{fn}: skipped {len(failed)} file(s) that are not readable images:\n{listed}{more}",
                      stacklevel=2)
        keep = np.ones(len(paths), dtype=bool)
        keep[[i for i, _ in failed]] = False
        kept = np.flatnonzero(keep)
        for dst, src in enumerate(kept):  # compact in place: no second copy of a large array
            if dst != src:
                images[dst] = images[src]
        images, labels = images[:len(kept)], labels[kept]
        paths = [paths[i] for i in kept]
    return MalariaData(images, labels, np.array([p.name for p in paths], dtype=str))


# -- TensorFlow Datasets ------------------------------------------------------------------------

def _tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise ImportError("malaria.load_tfds needs tensorflow_datasets (`pip install tensorflow-datasets`) "
                          "with the malaria data prepared") from None
    return tfds


def tfds_available(data_dir=None):
    """True when tensorflow_datasets is installed and its ``malaria`` is prepared (downloads nothing)."""
    try:
        tfds = _tfds()
    except ImportError:
        return False
    builder = tfds.builder("malaria", data_dir=data_dir)
    return os.path.isfile(os.path.join(str(builder.data_dir), "dataset_info.json"))


def load_tfds(image_size=(100, 100), limit=None, *, data_dir=None, progress=None):
    """Read TensorFlow Datasets' prepared ``malaria`` (never downloads): ``MalariaData``.

    The same images, labels and resizing as :func:`load`; ``limit`` takes the first images of
    each class in the data set's order (balanced as in :func:`load`).  TensorFlow Datasets keeps
    no file names, so the names are ``tfds:malaria/train/{index}`` and :func:`split_by_slide`
    cannot split these.
    """
    fn = "malaria.load_tfds"
    size = _image_size(image_size, fn)
    limit = _limit(limit, fn)
    tfds = _tfds()
    image_module = _pillow()
    ds, info = tfds.load("malaria", split="train", data_dir=data_dir, download=False, as_supervised=True,
                         with_info=True)
    total = info.splits["train"].num_examples
    quota = _balanced_counts(limit, (total, total)) if limit is not None else (total, total)
    wanted = min(total, sum(quota))
    images, labels, names = [], [], []
    taken = [0, 0]
    bar = ProgressBar(wanted, fn, enabled=wanted >= PROGRESS_THRESHOLD if progress is None else bool(progress))
    for index, (image, label) in enumerate(tfds.as_numpy(ds)):
        if len(labels) >= wanted:
            break
        label = int(label)
        if taken[label] >= quota[label]:
            continue
        taken[label] += 1
        im = image_module.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")
        if im.size != (size[1], size[0]):
            im = im.resize((size[1], size[0]), _resample_filter(image_module))
        images.append(np.asarray(im, dtype=np.float32) / np.float32(255))
        labels.append(label)
        names.append(f"tfds:malaria/train/{index}")
        bar.update()
    bar.close()
    return MalariaData(np.stack(images) if images else np.empty((0,) + size + (3,), np.float32),
                       np.array(labels, dtype=np.int64), np.array(names, dtype=str))


# -- slides -------------------------------------------------------------------------------------

def slide_of(name):
    """The slide of a cell image from its file name: ``'C100'`` for ``C100P61ThinF_IMG_..._cell_1.png``.

    Names start with ``C`` and the slide number, then (mostly) ``P`` and the patient number;
    ``C37BP2...`` is slide 37.  A ValueError for names without that start.
    """
    match = _SLIDE.match(os.path.basename(str(name)))
    if match is None:
        raise ValueError(f"split_by_slide: the file name {name!r} does not start with C{{slide}} "
                         f"(e.g. C100P61ThinF_IMG_20150918_144104_cell_162.png)")
    return f"C{int(match.group(1))}"


def split_by_slide(names, test_size=0.2, seed=0, labels=None):
    """Train and test indices with every slide on one side only: ``(train_idx, test_idx)``.

    Slides are drawn in a random order (fixed by ``seed``) and each goes to the test side when
    that brings the test set closer to ``test_size`` of the images, per class when ``labels``
    are given (so both classes keep about their share).  Slides hold up to a few hundred cells,
    so the fraction is met approximately, never exactly.
    """
    fn = "split_by_slide"
    names = np.asarray(names, dtype=str).ravel()
    if not (isinstance(test_size, (float, int, np.floating)) and 0 < test_size < 1):
        raise ValueError(f"{fn}: test_size must be a fraction strictly between 0 and 1. "
                         f"Received: test_size={test_size!r}")
    slides = np.array([slide_of(n) for n in names])
    unique, group = np.unique(slides, return_inverse=True)
    if len(unique) < 2:
        raise ValueError(f"{fn}: a split by slide needs at least 2 slides; received images of {len(unique)}")
    if labels is None:
        classes = np.zeros(len(names), dtype=np.int64)
    else:
        labels = np.asarray(labels).ravel()
        if labels.shape != names.shape:
            raise ValueError(f"{fn}: {len(labels)} labels for {len(names)} names")
        _, classes = np.unique(labels, return_inverse=True)
    counts = np.zeros((len(unique), classes.max() + 1))
    np.add.at(counts, (group, classes), 1)
    target = test_size * counts.sum(axis=0)
    order = np.random.default_rng(seed).permutation(len(unique))
    in_test = np.zeros(len(unique), dtype=bool)
    test_counts = np.zeros_like(target)
    for g in order:
        if np.abs(target - test_counts - counts[g]).sum() < np.abs(target - test_counts).sum():
            in_test[g] = True
            test_counts = test_counts + counts[g]
    if not in_test.any():
        in_test[order[0]] = True
    if in_test.all():
        in_test[order[-1]] = False
    test_mask = in_test[group]
    return np.flatnonzero(~test_mask), np.flatnonzero(test_mask)


# -- synthetic cells ----------------------------------------------------------------------------

def _soft_disc(dist, edge=1.0):
    """1 inside, 0 outside, a linear ramp of ``edge`` pixels across the boundary (dist = 0)."""
    return np.clip(0.5 - dist / edge, 0.0, 1.0)


def _draw_cell(rng, grid, stain, parasitized):
    """One synthetic cell image (h, w, 3) float32 on the pixel grid (yy, xx): see :func:`synthetic`."""
    yy, xx = grid
    h, w = yy.shape
    scale = min(h, w)
    cy = (h - 1) / 2 + rng.uniform(-0.04, 0.04) * h
    cx = (w - 1) / 2 + rng.uniform(-0.04, 0.04) * w
    ry, rx = rng.uniform(0.36, 0.47) * h, rng.uniform(0.36, 0.47) * w
    phi = rng.uniform(0, np.pi)
    dy, dx = yy - np.float32(cy), xx - np.float32(cx)
    u = (dx * np.float32(np.cos(phi) / rx) + dy * np.float32(np.sin(phi) / rx))
    v = (dy * np.float32(np.cos(phi) / ry) - dx * np.float32(np.sin(phi) / ry))
    rho = np.hypot(u, v)
    # An uneven outline: the radius wobbles with harmonics 2, 3 and 5 of the polar angle,
    # sin(k angle + phase) = Im(e^(i phase) z^k) with z = (u + iv) / rho on the unit circle.
    z = (u + 1j * v) / np.maximum(rho, 1e-6)
    z2 = z * z
    wobble = 1.0
    for zk in (z2, z2 * z, z2 * z2 * z):
        wobble = wobble + rng.uniform(0, 0.035) * (np.exp(1j * rng.uniform(0, 2 * np.pi)) * zk).imag
    rho = (rho / wobble).astype(np.float32)
    mask = _soft_disc((rho - 1) * min(rx, ry))

    # Stain of the slide, a little variation per cell; a paler centre (a biconcave disc), gentle
    # blotches, sensor noise.
    base = (stain["cell"] * rng.uniform(0.95, 1.04)).astype(np.float32)
    shade = np.float32(0.94) + np.float32(0.08) * np.minimum(rho, 1) ** 2
    for t in rng.uniform(0, np.pi, 3):
        k = rng.uniform(0.05, 0.25)
        wave = xx * np.float32(k * np.cos(t)) + yy * np.float32(k * np.sin(t)) + np.float32(rng.uniform(0, 2 * np.pi))
        shade += np.float32(rng.uniform(0, 0.025)) * np.sin(wave)
    img = base * shade[..., None]

    def paint(py, px, reach, weight_of, colour):
        """Blend ``colour`` with weight ``weight_of(dy, dx)`` in the window of ``reach`` pixels around (py, px)."""
        rows = slice(max(0, int(py - reach)), min(h, int(py + reach) + 2))
        cols = slice(max(0, int(px - reach)), min(w, int(px + reach) + 2))
        weight = weight_of(yy[rows, cols] - np.float32(py), xx[rows, cols] - np.float32(px)) * mask[rows, cols]
        weight = weight[..., None]
        img[rows, cols] = img[rows, cols] * (1 - weight) + np.asarray(colour, np.float32) * weight

    def inside_point(max_rho):
        r, t = max_rho * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
        return cy + r * ry * np.sin(t), cx + r * rx * np.cos(t)

    def disc(radius, strength, edge=1.0):
        return lambda dy, dx: strength * _soft_disc(np.hypot(dy, dx) - radius, edge)

    # Distractors on both classes: a pale fold or a faint speck, not purple chromatin.
    if rng.uniform() < 0.4:
        radius = rng.uniform(0.05, 0.12) * scale
        paint(*inside_point(0.6), radius + 3, disc(radius, 0.35, 3.0), stain["cell"] * 1.08)
    if rng.uniform() < 0.25:
        radius = rng.uniform(0.01, 0.025) * scale
        paint(*inside_point(0.8), radius + 2, disc(radius, 0.3), stain["speck"])

    if parasitized:
        chromatin = stain["chromatin"] * rng.uniform(0.85, 1.1)
        for _ in range(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1])):
            py, px = inside_point(0.65)
            alpha = rng.uniform(0.65, 0.95)
            if rng.uniform() < 0.6:
                # Ring form: a thin ring with one or two chromatin dots on it.
                radius = rng.uniform(0.04, 0.08) * scale
                half = max(1.2, rng.uniform(0.012, 0.025) * scale) / 2
                paint(py, px, radius + half + 2,
                      lambda dy, dx, alpha=alpha, radius=radius, half=half:
                      alpha * _soft_disc(np.abs(np.hypot(dy, dx) - radius) - half), chromatin)
                for _ in range(rng.integers(1, 3)):
                    t, dot = rng.uniform(0, 2 * np.pi), rng.uniform(0.02, 0.035) * scale
                    paint(py + radius * np.sin(t), px + radius * np.cos(t), dot + 2, disc(dot, alpha), chromatin * 0.8)
            else:
                # A compact, irregular blob (a later stage) with darker dots inside.
                radius = rng.uniform(0.04, 0.09) * scale
                lobes, phase = rng.integers(2, 5), rng.uniform(0, 2 * np.pi)
                paint(py, px, 1.3 * radius + 2,
                      lambda dy, dx, alpha=alpha, radius=radius, lobes=lobes, phase=phase: alpha * 0.8 * _soft_disc(
                          np.hypot(dy, dx) - radius * (1 + 0.2 * np.sin(lobes * np.arctan2(dy, dx) + phase)), 1.5),
                      chromatin)
                for _ in range(rng.integers(1, 4)):
                    dot = 0.02 * scale
                    paint(py + rng.uniform(-0.6, 0.6) * radius, px + rng.uniform(-0.6, 0.6) * radius, dot + 2,
                          disc(dot, alpha), chromatin * 0.75)

    img += np.float32(0.012) * rng.standard_normal((h, w, 1), dtype=np.float32)  # grey sensor noise
    np.clip(img, 0, 1, out=img)
    return img * mask[..., None]


def synthetic(n, image_size=(100, 100), seed=0):
    """SYNTHETIC stained-cell images, drawn with NumPy: ``MalariaData(images, labels, names)``.

    Not real data: a stand-in with the look of the NIH crops, for examples and tests that must
    run without the real images.  Each image is one pink-to-lavender cell with an uneven
    outline, a paler centre and faint blotches, on a black background.  Parasitized cells
    (label 0) carry one to three purple chromatin forms, thin rings with dots or compact blobs;
    uninfected cells (label 1) carry none.  Both classes may show pale folds and faint specks.
    The cells come in "slides" of about 100 (names ``C{slide}P{slide}_synthetic_cell_{k}.png``)
    that share a stain, as the real slides do, so that :func:`split_by_slide` applies.
    Labels are balanced (one more parasitized cell when ``n`` is odd); the same ``seed`` gives
    the same images.
    """
    fn = "malaria.synthetic"
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"{fn}: n must be a non-negative int. Received: n={n!r}")
    size = _image_size(image_size, fn)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2).astype(np.int64)
    n_slides = max(2, round(n / 100))
    slides = rng.integers(0, n_slides, n)
    stains = []
    for _ in range(n_slides):
        t = rng.uniform()  # pink (0) to lavender (1)
        cell = (1 - t) * np.array([0.89, 0.62, 0.62]) + t * np.array([0.78, 0.70, 0.84])
        stains.append({
            "cell": (cell * rng.uniform(0.92, 1.05)).astype(np.float32),
            "chromatin": np.array([0.45, 0.13, 0.52]) * rng.uniform(0.85, 1.15),
            "speck": cell * np.array([0.85, 0.75, 0.9]),
        })
    images = np.empty((n,) + size + (3,), dtype=np.float32)
    grid = np.meshgrid(np.arange(size[0], dtype=np.float32), np.arange(size[1], dtype=np.float32), indexing="ij")
    for i in range(n):
        images[i] = _draw_cell(rng, grid, stains[slides[i]], labels[i] == PARASITIZED)
    names = np.array([f"C{s + 1}P{s + 1}_synthetic_cell_{i}.png" for i, s in enumerate(slides)], dtype=str)
    return MalariaData(images, labels, names)


def load_or_synthetic(path=None, image_size=(100, 100), limit=None, *, seed=0, synthetic_size=2000,
                      progress=None):
    """The real images when there are any, else synthetic ones: ``(MalariaData, source)``.

    In order: ``path`` (an error if it holds no images), :func:`default_data_dir`, TensorFlow
    Datasets' prepared ``malaria``, and last :func:`synthetic` with ``limit`` (or
    ``synthetic_size``) images.  ``source`` says which, e.g. ``"images in /data/malaria"`` or
    ``"synthetic (no real images found)"``; a warning says so when synthetic data is used.
    """
    if path is None:
        path = default_data_dir()
    if path is not None:
        return load(path, image_size, limit, seed=seed, progress=progress), f"images in {path}"
    if tfds_available():
        return load_tfds(image_size, limit, progress=progress), "tensorflow_datasets malaria"
    warnings.warn(f"malaria: no real images found (set {MALARIA_DIR_ENV}); using SYNTHETIC cells", stacklevel=2)
    return synthetic(limit or synthetic_size, image_size, seed), "synthetic (no real images found)"
