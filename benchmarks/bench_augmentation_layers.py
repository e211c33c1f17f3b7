"""Time augmentation against Keras in one process: the augmentation layers, and an epoch of
ImageDataGenerator.flow_from_directory on the malaria cells.

    python benchmarks/bench_augmentation_layers.py                    # layers + 200 cells per class
    python benchmarks/bench_augmentation_layers.py --quick            # layers + 32 cells per class, 3 rounds
    python benchmarks/bench_augmentation_layers.py --cells ../shared/malaria --per-class 1000

- layers: ``RandomFlip()`` then ``RandomRotation(0.1)`` with ``training=True`` on one batch of 32
  float32 images 100x100x3, fastconv.keras's layers against Keras 3's (TensorFlow, eager).
- directory: one epoch of ``flow_from_directory(target_size=(100, 100), batch_size=32,
  class_mode="binary")`` with the lecture's generator (rotation 40, shifts 0.2, shear 0.2,
  zoom 0.2, horizontal flips, 'nearest' fill, rescale 1/255), fastconv's against Keras's legacy
  one, on the first ``--per-class`` PNGs of Parasitized/ and Uninfected/ (linked into a
  temporary folder): file decoding, nearest resizing, warps and standardization.

Contenders interleaved in each round (after one warm-up), medians reported; ratio = Keras's time
/ fastconv's (above 1: fastconv is faster).  TensorFlow is needed for the peer only.
"""
import argparse
import contextlib
import io
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_conv import time_rounds  # noqa: E402
from contenders import load_tensorflow  # noqa: E402

import fastconv as fc  # noqa: E402
from fastconv.keras import layers  # noqa: E402
from fastconv.preprocessing.image import ImageDataGenerator  # noqa: E402

LECTURE_OPTIONS = dict(rotation_range=40, width_shift_range=0.2, height_shift_range=0.2, shear_range=0.2,
                       zoom_range=0.2, horizontal_flip=True, fill_mode="nearest", rescale=1 / 255)
DEFAULT_CELLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "malaria")


def layer_contenders(x, tf):
    flip, rotation = layers.RandomFlip(seed=0), layers.RandomRotation(0.1, seed=0)
    contenders = {"fastconv": lambda: rotation(flip(x, training=True), training=True)}
    if tf is not None:
        keras_flip, keras_rotation = tf.keras.layers.RandomFlip(seed=0), tf.keras.layers.RandomRotation(0.1, seed=0)
        xt = tf.constant(x)
        contenders["keras"] = lambda: keras_rotation(keras_flip(xt, training=True), training=True).numpy()
    return contenders


def cell_folder(cells, per_class, into):
    """``into`` with Parasitized/ and Uninfected/ holding links to the first ``per_class`` PNGs."""
    for cls in ("Parasitized", "Uninfected"):
        os.makedirs(os.path.join(into, cls))
        names = sorted(f for f in os.listdir(os.path.join(cells, cls)) if f.endswith(".png"))[:per_class]
        for name in names:
            os.symlink(os.path.join(os.path.abspath(cells), cls, name), os.path.join(into, cls, name))
    return into


def epoch(iterator):
    for i in range(len(iterator)):
        iterator[i]
    iterator.on_epoch_end()


def directory_contenders(folder, tf):
    kwargs = dict(target_size=(100, 100), batch_size=32, class_mode="binary", seed=0)
    with contextlib.redirect_stdout(io.StringIO()):  # both print "Found N images ..."
        ours = ImageDataGenerator(**LECTURE_OPTIONS).flow_from_directory(folder, **kwargs)
        contenders = {"fastconv": lambda: epoch(ours)}
        if tf is not None:
            keras = tf.keras.preprocessing.image.ImageDataGenerator(**LECTURE_OPTIONS).flow_from_directory(
                folder, **kwargs)
            contenders["keras"] = lambda: epoch(keras)
    return contenders, ours.samples


def report(title, times):
    line = f"{title:34s} " + "  ".join(f"{name} {t * 1e3:9.1f} ms" for name, t in times.items())
    if "keras" in times:
        line += f"   ratio keras/fastconv {times['keras'] / times['fastconv']:.1f}"
    print(line, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="32 cells per class and 3 rounds")
    parser.add_argument("--cells", default=DEFAULT_CELLS, help="the malaria folder (Parasitized/, Uninfected/)")
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--no-tensorflow", action="store_true")
    args = parser.parse_args(argv)
    rounds, per_class = (3, 32) if args.quick else (args.rounds, args.per_class)
    tf = None if args.no_tensorflow else load_tensorflow()
    print(f"fastconv {fc.__version__}, {fc.get_num_threads()} threads, OpenMP: {fc.openmp_enabled()}; "
          f"TensorFlow: {tf.__version__ if tf else 'absent'}; median of {rounds} rounds")
    x = np.random.default_rng(0).random((32, 100, 100, 3)).astype(np.float32)
    report("RandomFlip+RandomRotation 32x100x100x3", time_rounds(layer_contenders(x, tf), rounds))
    if not os.path.isdir(args.cells):
        print(f"no cells at {args.cells}: flow_from_directory skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        contenders, samples = directory_contenders(cell_folder(args.cells, per_class, tmp), tf)
        report(f"flow_from_directory epoch, {samples} cells", time_rounds(contenders, rounds))


if __name__ == "__main__":
    main()
