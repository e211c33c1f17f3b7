"""fastconv.keras.dataset (the light tf.data.Dataset) and image_dataset_from_directory: the same
files, splits, labels and resized images as Keras, the pipeline methods as tf.data, bad input."""
import io
import os
import struct
import threading
import time
import zlib

import numpy as np
import pytest

from fastconv.keras import preprocessing, utils
from fastconv.keras.dataset import AUTOTUNE, INFINITE_CARDINALITY, UNKNOWN_CARDINALITY, Dataset
from fastconv.keras.image_dataset import decode_image, image_dataset_from_directory, index_directory, resize
from fastconv.png import read_png

Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed: reading image files skipped")


def write_image(path, rng, size=None, mode="RGB"):
    h, w = size if size is not None else rng.integers(12, 40, 2)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode).save(path)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three classes of PNG, BMP and GIF files of many sizes, one class with a nested folder,
    an upper-case extension, a grey PNG, an RGBA PNG, a text file and a hidden folder."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    exts = ["png", "bmp", "gif", "png", "PNG"]
    for i in range(31):
        cls = ["dogs", "cats", "birds", "cats/indoor"][i % 4]
        write_image(str(root / cls / f"img_{i:02d}.{exts[i % 5]}"), rng)
    write_image(str(root / "birds" / "grey.png"), rng, mode="L")
    write_image(str(root / "dogs" / "alpha.png"), rng, mode="RGBA")
    (root / "dogs" / "notes.txt").write_text("not an image")
    write_image(str(root / ".hidden" / "x.png"), rng)
    return str(root)


@pytest.fixture(scope="module")
def png_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("pngs")
    rng = np.random.default_rng(1)
    for i in range(12):
        write_image(str(root / ["a", "b"][i % 2] / f"{i}.png"), rng)
    return str(root)


def collect(ds):
    """All elements of one pass as (images, labels) arrays."""
    xs, ys = zip(*[(np.asarray(x), np.asarray(y)) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


# -- the file list, the split and the labels, as Keras ------------------------------------------

def test_file_list_classes_and_labels(folder, capsys):
    paths, labels, names = index_directory(folder, "inferred", (".png", ".bmp", ".gif"), shuffle=False)
    assert names == ["birds", "cats", "dogs"]
    assert "Found 33 files belonging to 3 classes." in capsys.readouterr().out
    assert len(paths) == 33 and not any(".hidden" in p or p.endswith(".txt") for p in paths)
    assert [os.path.relpath(p, folder).split(os.sep)[0] for p in paths] == [names[k] for k in labels]
    cats = [os.path.relpath(p, folder) for p, k in zip(paths, labels) if k == 1]
    assert cats == sorted(cats, key=lambda p: (os.path.dirname(p), p)) and "cats/indoor/img_03.png" in cats
    ds = image_dataset_from_directory(folder, image_size=(8, 8), shuffle=False, verbose=False)
    assert ds.class_names == names and ds.file_paths == paths and len(ds) == 2
    assert np.array_equal(collect(ds)[1], labels)


def test_index_directory_and_splits_as_keras(tf, folder):
    from keras.src.utils import dataset_utils

    for seed in (0, 7, 1234):
        for class_names in (None, ["dogs", "birds"]):
            ours = index_directory(folder, "inferred", (".png", ".bmp", ".gif"), class_names, True, seed,
                                   verbose=False)
            keras = dataset_utils.index_directory(folder, "inferred", (".png", ".bmp", ".gif"), class_names, True,
                                                  seed, verbose=False)
            assert ours[0] == keras[0] and ours[2] == keras[2] and np.array_equal(ours[1], keras[1])
    import keras

    for kw in (dict(validation_split=0.2, subset="training", seed=3), dict(validation_split=0.3, subset="validation",
                                                                           seed=11), dict(seed=5)):
        ours = image_dataset_from_directory(folder, image_size=(8, 8), batch_size=8, verbose=False, **kw)
        theirs = keras.utils.image_dataset_from_directory(folder, image_size=(8, 8), batch_size=8, verbose=False,
                                                          **kw)
        assert ours.file_paths == theirs.file_paths and ours.class_names == theirs.class_names
        assert len(ours) == len(theirs)
        their_labels = np.concatenate([y.numpy() for _, y in theirs])
        assert sorted(collect(ours)[1]) == sorted(their_labels)
    ours = image_dataset_from_directory(folder, image_size=(8, 8), validation_split=0.25, subset="both", seed=9,
                                        verbose=False)
    theirs = keras.utils.image_dataset_from_directory(folder, image_size=(8, 8), validation_split=0.25,
                                                      subset="both", seed=9, verbose=False)
    for o, t in zip(ours, theirs):
        assert o.file_paths == t.file_paths
    # The validation part is not shuffled: its batches follow file_paths, as Keras's.
    assert np.array_equal(collect(ours[1])[1], np.concatenate([y.numpy() for _, y in theirs[1]]))


def test_same_split_as_keras_on_the_real_malaria_cells(tf):
    import keras

    from fastconv.datasets import malaria

    folder = malaria.default_data_dir()
    if folder is None:
        pytest.skip("real malaria images not found (../shared/malaria or $FASTCONV_MALARIA_DIR)")
    args = dict(image_size=(100, 100), validation_split=0.2, subset="both", seed=123, verbose=False)
    ours = image_dataset_from_directory(str(folder), **args)
    theirs = keras.utils.image_dataset_from_directory(str(folder), **args)
    for o, t in zip(ours, theirs):
        assert o.file_paths == t.file_paths and o.class_names == t.class_names and len(o) == len(t)
    first_ours, first_theirs = next(iter(ours[1])), next(iter(theirs[1]))  # validation: not shuffled
    assert np.array_equal(first_ours[1], first_theirs[1].numpy())
    np.testing.assert_allclose(first_ours[0], first_theirs[0].numpy(), rtol=0, atol=1e-4)


# -- the images, as Keras ------------------------------------------------------------------------

KERAS_CASES = [
    ("folder", dict()),
    ("folder", dict(image_size=(50, 45), label_mode="categorical")),
    ("folder", dict(crop_to_aspect_ratio=True, image_size=(20, 9))),
    ("folder", dict(pad_to_aspect_ratio=True, image_size=(20, 9))),
    ("folder", dict(interpolation="nearest", label_mode=None)),
    ("folder", dict(interpolation="area", batch_size=None)),
    ("folder", dict(data_format="channels_first", image_size=(11, 30))),
    ("png_folder", dict(color_mode="grayscale", label_mode="binary")),
    ("png_folder", dict(color_mode="rgba", crop_to_aspect_ratio=True, interpolation="nearest")),
]


@pytest.mark.parametrize("which, kw", KERAS_CASES, ids=[f"{w}-{sorted(k)}" for w, k in KERAS_CASES])
def test_batches_equal_keras(tf, request, which, kw):
    import keras

    directory = request.getfixturevalue(which)
    args = dict(image_size=(13, 17), batch_size=5, shuffle=False, verbose=False)
    args.update(kw)
    ours = image_dataset_from_directory(directory, **args)
    theirs = keras.utils.image_dataset_from_directory(directory, **args)
    assert ours.file_paths == theirs.file_paths and len(ours) == len(theirs)
    n = 0
    for mine, ref in zip(ours, theirs):
        mine, ref = (mine, ref) if isinstance(mine, tuple) else ((mine,), (ref,))
        for a, b in zip(mine, ref):
            b = b.numpy()
            assert a.dtype == b.dtype and a.shape == b.shape
            tol = 1e-3 if kw.get("interpolation") == "area" else 1e-4
            np.testing.assert_allclose(a, b, rtol=0, atol=tol)
        n += 1
    assert n == len(ours)


def test_explicit_labels_as_keras(tf, png_folder):
    import keras

    labels = [3, 1, 1, 0, 3, 3, 0, 1, 1, 3, 0, 0]  # one per file, in os.walk order
    for kw in (dict(shuffle=False), dict(seed=4, validation_split=0.25, subset="validation")):
        args = dict(labels=labels, label_mode="categorical", image_size=(5, 5), batch_size=4, verbose=False, **kw)
        ours = image_dataset_from_directory(png_folder, **args)
        theirs = keras.utils.image_dataset_from_directory(png_folder, **args)
        assert ours.class_names == theirs.class_names == ["0", "1", "3"] and ours.file_paths == theirs.file_paths
        if kw.get("shuffle") is False:
            for (x, y), (kx, ky) in zip(ours, theirs):
                assert np.array_equal(y, ky.numpy()) and np.array_equal(x, kx.numpy())
        else:
            assert sorted(map(tuple, collect(ours)[1])) == sorted(
                map(tuple, np.concatenate([ky.numpy() for _, ky in theirs])))


def test_jpeg_within_a_few_levels_of_keras(tf, tmp_path):
    import keras

    rng = np.random.default_rng(2)
    for i in range(4):
        pixels = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
        os.makedirs(tmp_path / "k", exist_ok=True)
        Image.fromarray(pixels).save(tmp_path / "k" / f"{i}.jpg", quality=90)
    for mode in ("rgb", "grayscale"):
        args = dict(image_size=(24, 24), shuffle=False, verbose=False, color_mode=mode)
        (x, _), = list(image_dataset_from_directory(str(tmp_path), **args))
        (k, _), = list(keras.utils.image_dataset_from_directory(str(tmp_path), **args))
        # TensorFlow decodes with libjpeg's fast integer DCT, Pillow with the accurate one.
        assert np.abs(x - k.numpy()).mean() < 1.5 and np.abs(x - k.numpy()).max() <= 12


@pytest.mark.parametrize("method", ["bilinear", "nearest", "area"])
def test_resize_equals_tf_image_resize(tf, method):
    rng = np.random.default_rng(3)
    for (h, w), size in (((37, 23), (16, 50)), ((8, 9), (8, 9)), ((100, 130), (33, 101)), ((5, 64), (64, 3))):
        image = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
        ref = tf.image.resize(image, size, method=method).numpy()
        got = resize(image, size, method)
        assert got.dtype == ref.dtype
        # Area sums in another order than TensorFlow's kernel: equal to float32 rounding.
        np.testing.assert_allclose(got, ref, rtol=3e-5 if method == "area" else 0, atol=1e-4)


def reference_bilinear(image, size):
    """tf.image.resize's bilinear in NumPy float32: TensorFlow's taps and compute_lerp."""
    def taps(n_in, n_out):
        pos = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * (np.float32(n_in) / np.float32(n_out)) \
            - np.float32(0.5)
        floor = np.floor(pos)
        return (np.maximum(floor, 0).astype(int), np.minimum(np.ceil(pos), n_in - 1).astype(int),
                (pos - floor).astype(np.float32))

    x = image.astype(np.float32)
    y0, y1, yl = taps(x.shape[0], size[0])
    x0, x1, xl = taps(x.shape[1], size[1])
    top = x[y0][:, x0] + (x[y0][:, x1] - x[y0][:, x0]) * xl[:, None]
    bottom = x[y1][:, x0] + (x[y1][:, x1] - x[y1][:, x0]) * xl[:, None]
    return top + (bottom - top) * yl[:, None, None]


def test_bilinear_kernel_equals_the_reference_bit_for_bit():
    rng = np.random.default_rng(6)
    for (h, w, c), size in (((37, 23, 3), (16, 50)), ((1, 1, 1), (3, 2)), ((130, 97, 4), (100, 100)),
                            ((6, 200, 1), (6, 7))):
        image = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
        got = resize(image, size)
        assert got.dtype == np.float32 and np.array_equal(got, reference_bilinear(image, size))
    view = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)[2:15:2, ::3]  # not contiguous
    assert np.array_equal(resize(view, (9, 4)), reference_bilinear(view, (9, 4)))


# -- the PNG decoder ---------------------------------------------------------------------------------

def png_bytes(pixels, filters, colour):
    """A PNG written by hand: each row filtered with its own type (0-4), so that every filter of
    the specification is exercised."""
    h, w, bpp = pixels.shape
    rows, prior = [], np.zeros(w * bpp, dtype=np.int64)
    for r in range(h):
        x = pixels[r].reshape(-1).astype(np.int64)
        a = np.concatenate([np.zeros(bpp, np.int64), x[:-bpp]])
        c = np.concatenate([np.zeros(bpp, np.int64), prior[:-bpp]])
        b = prior
        p = a + b - c
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        predictor = [0, a, b, (a + b) // 2, paeth][filters[r % len(filters)]]
        rows.append(bytes([filters[r % len(filters)]]) + ((x - predictor) % 256).astype(np.uint8).tobytes())
        prior = x

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("colour, bpp", [(0, 1), (2, 3), (6, 4)])
def test_png_decoder_reverses_every_filter(colour, bpp):
    pixels = np.random.default_rng(7).integers(0, 256, (11, 9, bpp), dtype=np.uint8)
    data = png_bytes(pixels, [0, 1, 2, 3, 4, 4, 3, 1], colour)
    assert np.array_equal(read_png(data), pixels)
    with Image.open(io.BytesIO(data)) as im:  # the file is a valid PNG for Pillow too
        assert np.array_equal(np.asarray(im).reshape(pixels.shape), pixels)


def test_png_decoder_refuses_broken_files_and_leaves_other_kinds_to_pillow(tmp_path):
    pixels = np.random.default_rng(8).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    data = bytearray(png_bytes(pixels, [4], 2))
    bad_crc = bytes(data[:45]) + bytes([data[45] ^ 1]) + bytes(data[46:])  # a byte of the IDAT data
    with pytest.raises(ValueError, match="IDAT chunk fails its CRC check"):
        read_png(bad_crc)
    with pytest.raises(ValueError, match="too few for a PNG file"):
        read_png(bytes(data[:20]))
    with pytest.raises(ValueError, match="IDAT chunk is cut short"):
        read_png(bytes(data[:60]))
    rows = b"".join(bytes([7]) + pixels[r].tobytes() for r in range(6))
    header = struct.pack(">IIBBBBB", 5, 6, 8, 2, 0, 0, 0)
    unknown_filter = b"\x89PNG\r\n\x1a\n" + b"".join(
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        for kind, body in ((b"IHDR", header), (b"IDAT", zlib.compress(rows)), (b"IEND", b"")))
    with pytest.raises(ValueError, match="row 0 has the unknown PNG filter type 7"):
        read_png(unknown_filter)
    rng = np.random.default_rng(9)
    for name, image in (("palette.png", Image.fromarray(pixels).quantize(16)),
                        ("grey16.png", Image.fromarray(rng.integers(0, 65535, (6, 5)).astype(np.uint16))),
                        ("grey_alpha.png", Image.fromarray(pixels).convert("LA"))):
        image.save(tmp_path / name)
        assert read_png((tmp_path / name).read_bytes()) is None  # Pillow's
        with Image.open(tmp_path / name) as im:
            expected = np.asarray(im.convert("RGB")) if name != "grey16.png" else \
                np.repeat((np.asarray(im, dtype=np.uint32) >> 8).astype(np.uint8)[..., None], 3, axis=2)
        assert np.array_equal(decode_image(tmp_path / name, 3), expected)


# -- shuffling per epoch -------------------------------------------------------------------------

def test_each_pass_reshuffles_and_the_seed_repeats_the_sequence(folder):
    def passes(ds, n=2):
        return [collect(ds)[1] for _ in range(n)]

    def make():
        return image_dataset_from_directory(folder, image_size=(4, 4), batch_size=4, seed=1, verbose=False)

    first, second = passes(make())
    assert sorted(first) == sorted(second) and not np.array_equal(first, second)
    again = passes(make())
    assert np.array_equal(again[0], first) and np.array_equal(again[1], second)
    ds = make()  # indexed reading (what fit does today): the same passes, on_epoch_end between them
    for expected in (first, second):
        assert np.array_equal(np.concatenate([ds[i][1] for i in range(len(ds))]), expected)
        ds.on_epoch_end()


# -- bad input -------------------------------------------------------------------------------------

def test_empty_folder_and_folder_without_class_subfolders(tmp_path):
    with pytest.raises(ValueError, match="is empty"):
        image_dataset_from_directory(str(tmp_path))
    write_image(str(tmp_path / "loose.png"), np.random.default_rng(0))
    with pytest.raises(ValueError, match="1 image file.* but no class subfolders.*labels=None"):
        image_dataset_from_directory(str(tmp_path))
    ds = image_dataset_from_directory(str(tmp_path), labels=None, image_size=(5, 5), verbose=False)
    assert next(iter(ds)).shape == (1, 5, 5, 3)
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(ValueError, match="No images found in directory"):
        image_dataset_from_directory(str(tmp_path), verbose=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        image_dataset_from_directory(str(tmp_path / "nowhere"))


def test_broken_files_are_skipped_and_listed(tmp_path):
    rng = np.random.default_rng(4)
    for i in range(3):
        write_image(str(tmp_path / "a" / f"good{i}.png"), rng)
        write_image(str(tmp_path / "b" / f"good{i}.bmp"), rng)
    whole = (tmp_path / "a" / "good0.png").read_bytes()
    (tmp_path / "a" / "truncated.png").write_bytes(whole[:len(whole) // 2])
    (tmp_path / "b" / "empty.gif").write_bytes(b"")
    (tmp_path / "b" / "text.jpg").write_bytes(b"hello, not a jpeg")
    with pytest.warns(UserWarning, match="skipped 3 file") as record:
        ds = image_dataset_from_directory(str(tmp_path), image_size=(6, 6), verbose=False, shuffle=False)
    message = str(record[0].message)
    assert "truncated.png is a truncated PNG" in message and "empty.gif is empty" in message
    assert "text.jpg is not a PNG, JPEG, BMP or GIF" in message
    assert len(ds.file_paths) == 6 and collect(ds)[0].shape == (6, 6, 6, 3)
    for name in ("good0.png", "good1.png", "good2.png"):
        os.remove(tmp_path / "a" / name)
    for name in ("good0.bmp", "good1.bmp", "good2.bmp"):
        os.remove(tmp_path / "b" / name)
    with pytest.raises(ValueError, match="(?s)none of the 3 image files can be read:.*truncated.png"):
        image_dataset_from_directory(str(tmp_path), verbose=False)


def test_a_file_that_fails_to_decode_is_named(tmp_path):
    rng = np.random.default_rng(5)
    write_image(str(tmp_path / "a" / "ok.png"), rng)
    # Whole-looking PNG (signature and IEND) whose image data is garbage.
    whole = bytearray((tmp_path / "a" / "ok.png").read_bytes())
    whole[40:80] = b"\x00" * 40
    (tmp_path / "a" / "corrupt.png").write_bytes(bytes(whole))
    ds = image_dataset_from_directory(str(tmp_path), image_size=(4, 4), verbose=False, shuffle=False)
    with pytest.raises(ValueError, match="cannot decode .*corrupt.png.*remove or replace"):
        list(ds)


@pytest.mark.parametrize("kw, message", [
    (dict(validation_split=0.2), "If `subset` is set, `validation_split` must be set"),
    (dict(subset="training"), "If `subset` is set, `validation_split` must be set"),
    (dict(validation_split=0.2, subset="train", seed=1), '`subset` must be either "training"'),
    (dict(validation_split=1.5, subset="training", seed=1), "`validation_split` must be between 0 and 1"),
    (dict(validation_split=0.2, subset="training"), "you must provide a `seed`"),
    (dict(validation_split=0.01, subset="training", seed=1), "gives 0 validation files"),
    (dict(label_mode="binary"), "exactly 2 class_names"),
    (dict(label_mode="sparse"), "`label_mode` argument must be one of"),
    (dict(color_mode="bgr"), "`color_mode` must be one of"),
    (dict(image_size=(10,)), "Invalid `image_size`"),
    (dict(batch_size=0), "`batch_size` must be a positive integer"),
    (dict(interpolation="cubic"), "Argument `interpolation` should be one of"),
    (dict(class_names=["dogs", "wolves"]), "did not match the names of the subdirectories"),
    (dict(labels=[0, 1], class_names=["dogs"]), "You can only pass `class_names`"),
    (dict(labels=[0, 1]), "Expected the lengths of `labels` to match"),
    (dict(labels="folders"), "`labels` argument should be a list/tuple"),
    (dict(crop_to_aspect_ratio=True, pad_to_aspect_ratio=True), "Only one of"),
])
def test_bad_arguments(folder, kw, message):
    with pytest.raises(ValueError, match=message):
        image_dataset_from_directory(folder, verbose=False, **kw)


def test_unsupported_options_are_refused(folder):
    with pytest.raises(NotImplementedError, match="bicubic.*not implemented"):
        image_dataset_from_directory(folder, interpolation="bicubic")
    with pytest.raises(NotImplementedError, match="grain"):
        image_dataset_from_directory(folder, format="grain")


# -- the Dataset pipeline ---------------------------------------------------------------------------

def elements(ds):
    return [tuple(np.asarray(v).tolist() for v in e) if isinstance(e, tuple) else np.asarray(e).tolist() for e in ds]


def test_slices_batch_unbatch_take_skip_repeat():
    x, y = np.arange(10, dtype=np.float32).reshape(5, 2), np.arange(5)
    ds = Dataset.from_tensor_slices((x, y))
    assert len(ds) == 5 and elements(ds)[1] == ([2.0, 3.0], 1)
    batches = list(ds.batch(2))
    assert [len(b[1]) for b in batches] == [2, 2, 1] and batches[0][0].dtype == np.float32
    assert len(ds.batch(2, drop_remainder=True)) == 2
    assert elements(ds.batch(2).unbatch()) == elements(ds)
    assert elements(ds.batch(2).map(lambda a, b: (a, b)).unbatch()) == elements(ds)
    assert ds.batch(2).map(lambda a, b: (a, b)).unbatch().cardinality() == UNKNOWN_CARDINALITY
    assert elements(ds.take(2)) == elements(ds)[:2] and elements(ds.skip(3)) == elements(ds)[3:]
    assert len(ds.take(-1)) == 5 and len(ds.skip(-1)) == 0 and len(ds.skip(9)) == 0
    assert elements(ds.repeat(2)) == elements(ds) * 2 and ds.repeat().cardinality() == INFINITE_CARDINALITY
    assert len(ds.repeat().take(12)) == 12 and elements(ds.repeat().take(7)) == (elements(ds) * 2)[:7]
    with pytest.raises(TypeError, match="infinite"):
        len(ds.repeat())
    assert elements(Dataset.from_tensor_slices([1.0, 2.0]))[0] == 1.0
    assert next(iter(Dataset.from_tensor_slices([1.0, 2.0]))).dtype == np.float32  # Python floats -> float32
    d = next(iter(Dataset.from_tensor_slices({"a": np.arange(4), "b": np.ones(4)}).batch(3)))
    assert set(d) == {"a", "b"} and d["a"].tolist() == [0, 1, 2]
    assert list(Dataset.range(3).as_numpy_iterator()) == [0, 1, 2]


def test_shuffle_is_a_permutation_per_pass_and_follows_the_seed():
    ds = Dataset.from_tensor_slices(np.arange(50))
    a = ds.shuffle(10, seed=3)
    first, second = elements(a), elements(a)
    assert sorted(first) == list(range(50)) and first != second and first != list(range(50))
    b = ds.shuffle(10, seed=3)
    assert elements(b) == first and elements(b) == second
    fixed = ds.shuffle(50, seed=1, reshuffle_each_iteration=False)
    assert elements(fixed) == elements(fixed)
    # A buffer of 10: the first element comes from the first 10.
    assert all(elements(ds.shuffle(10))[0] < 10 for _ in range(5))
    # A non-indexable input is shuffled as a stream, with the same guarantees.
    stream = ds.batch(7).map(lambda v: v).unbatch().shuffle(8, seed=2)
    assert sorted(elements(stream)) == list(range(50)) and elements(stream) != list(range(50))


def test_cache_replays_its_first_pass():
    calls = []

    def record(v):
        calls.append(int(v))
        return v

    ds = Dataset.from_tensor_slices(np.arange(6)).shuffle(6, seed=0).map(record).cache()
    first = elements(ds)
    assert elements(ds) == first and len(calls) == 6
    reshuffled = ds.shuffle(6, seed=1)
    assert sorted(elements(reshuffled)) == sorted(first) and len(calls) == 6
    with pytest.raises(NotImplementedError, match="cache file"):
        ds.cache("/tmp/cache")


def test_prefetch_runs_in_a_background_thread_and_stops_when_abandoned():
    threads = []

    def note(v):
        threads.append(threading.current_thread().name)
        return v

    ds = Dataset.from_tensor_slices(np.arange(100)).map(note).prefetch(AUTOTUNE)
    assert elements(ds) == list(range(100)) and set(threads) == {"fastconv-prefetch"}
    for _ in ds:
        break
    time.sleep(0.2)
    assert not any(t.name == "fastconv-prefetch" for t in threading.enumerate())

    def fail(v):
        if v == 3:
            raise RuntimeError("boom at 3")
        return v

    with pytest.raises(RuntimeError, match="boom at 3"):
        list(Dataset.from_tensor_slices(np.arange(5)).map(fail).prefetch(2))


def test_map_takes_tuples_as_arguments_and_checks_the_results():
    ds = Dataset.from_tensor_slices((np.arange(4), np.arange(4) * 10))
    assert elements(ds.map(lambda a, b: [a + b, b])) == [(0, 0), (11, 10), (22, 20), (33, 30)]

    def forgets(a, b):
        a + b

    with pytest.raises(TypeError, match=r"Dataset.map\(forgets\): got None .*forget to return"):
        list(ds.map(forgets))
    changes = ds.map(lambda a, b: (a, b) if a < 2 else (a, b, b))
    with pytest.raises(ValueError, match="another structure than its first result"):
        list(changes)
    with pytest.raises(TypeError, match="dtype object"):
        list(ds.map(lambda a, b: (object(), b)))
    with pytest.raises(TypeError, match="must be callable"):
        ds.map(3)
    with pytest.raises(ValueError, match="different shapes"):
        list(Dataset.from_tensor_slices(np.arange(4)).map(lambda v: np.zeros(int(v) + 1)).batch(2))


def test_map_calls_fastconv_layers_on_the_batches(png_folder):
    from fastconv.keras import Sequential, layers

    model = Sequential([layers.Input((6, 6, 3)), layers.Conv2D(2, 3, activation="relu")])
    images = image_dataset_from_directory(png_folder, image_size=(6, 6), batch_size=5, shuffle=False, verbose=False,
                                          labels=None)
    raw = np.concatenate(list(images))
    mapped = np.concatenate(list(images.map(model).prefetch(AUTOTUNE)))
    np.testing.assert_allclose(mapped, model.predict(raw, verbose=0), rtol=1e-6)
    pairs = image_dataset_from_directory(png_folder, image_size=(6, 6), batch_size=5, shuffle=False, verbose=False)
    x, y = next(iter(pairs.map(lambda x, y: (model(x, training=True), y), num_parallel_calls=AUTOTUNE)))
    assert x.shape == (5, 4, 4, 2) and y.dtype == np.int32


def test_indexed_reading_and_lengths():
    ds = Dataset.from_tensor_slices(np.arange(10)).batch(3)
    assert len(ds) == 4 and ds[-1].tolist() == [9] and ds[1].tolist() == [3, 4, 5]
    with pytest.raises(IndexError):
        ds[4]
    unknown = Dataset.from_tensor_slices(np.arange(4)).batch(2).map(lambda v: v).unbatch()
    with pytest.raises(TypeError, match="length is unknown"):
        len(unknown)


def test_keras_and_tf_spellings():
    import fastconv as tf_like

    assert utils.image_dataset_from_directory is image_dataset_from_directory
    assert preprocessing.image_dataset_from_directory is image_dataset_from_directory
    assert tf_like.data.Dataset is Dataset and tf_like.data.AUTOTUNE == AUTOTUNE == -1
    ds = tf_like.data.Dataset.from_tensor_slices(np.arange(5)).batch(2).prefetch(tf_like.data.AUTOTUNE)
    assert tf_like.data.experimental.cardinality(ds) == 3 and tf_like.data.experimental.AUTOTUNE == AUTOTUNE


def test_same_sequences_as_tf_data(tf):
    x = np.arange(23, dtype=np.float32)
    pipelines = [
        lambda D: D.from_tensor_slices(x).batch(4),
        lambda D: D.from_tensor_slices(x).batch(4, drop_remainder=True).unbatch(),
        lambda D: D.from_tensor_slices(x).skip(3).take(9).repeat(2).batch(5),
        lambda D: D.from_tensor_slices((x, x * 2)).map(lambda a, b: (a + b, b)).batch(6).prefetch(2),
        lambda D: D.from_tensor_slices(x).batch(5).unbatch().batch(7).cache(),
    ]
    for make in pipelines:
        ours, theirs = make(Dataset), make(tf.data.Dataset)
        # TensorFlow does not count the elements of an unbatch; fastconv does when it can.
        assert int(theirs.cardinality()) in (ours.cardinality(), UNKNOWN_CARDINALITY)
        ref = [tuple(np.asarray(v).tolist() for v in e) if isinstance(e, tuple) else np.asarray(e).tolist()
               for e in theirs.as_numpy_iterator()]
        assert elements(ours) == ref


# -- fit, evaluate and predict ----------------------------------------------------------------------

def test_fit_evaluate_predict_take_the_dataset(png_folder):
    from fastconv.keras import Sequential, layers, utils as k_utils

    def model():
        k_utils.set_random_seed(0)
        m = Sequential([layers.Input((8, 8, 3)), layers.Conv2D(2, 3, activation="relu"), layers.Flatten(),
                        layers.Dense(1, activation="sigmoid")])
        m.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
        return m

    ds = image_dataset_from_directory(png_folder, image_size=(8, 8), batch_size=4, shuffle=False,
                                      label_mode="binary", verbose=False).map(lambda x, y: (x / 255.0, y))
    x, y = collect(ds)
    by_dataset, by_arrays = model(), model()
    h1 = by_dataset.fit(ds, epochs=2, verbose=0)
    h2 = by_arrays.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], rtol=1e-6)
    np.testing.assert_allclose(by_dataset.evaluate(ds, verbose=0), by_arrays.evaluate(x, y, verbose=0), rtol=1e-6)
    np.testing.assert_allclose(by_dataset.predict(ds, verbose=0), by_arrays.predict(x, verbose=0), rtol=1e-6)
