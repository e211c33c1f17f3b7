"""fastconv.datasets.malaria: reading the NIH layout, TensorFlow Datasets, the split by slide,
synthetic cells, and the real images when they are present."""
import io
import os
import sys
import types

import numpy as np
import pytest

from fastconv.datasets import malaria
from fastconv.datasets._progress import ProgressBar

REAL_NAMES = [  # the forms of the real file names
    "C100P61ThinF_IMG_20150918_144104_cell_162.png",
    "C37BP2_thinF_IMG_20150620_131423a_cell_93.png",
    "C1_thinF_IMG_20150604_104722_cell_9.png",
    "C2NThinF_IMG_20150604_114631_cell_10.png",
    "C99P60ThinF_IMG_20150918_141001_cell_133.png",
    "C182P143NThinF_IMG_20151201_172216_cell_84.png",
    "C59P20thinF_IMG_20150803_111333_cell_144.png",
]


@pytest.fixture(scope="module")
def real_dir():
    """The folder of the real images, or a skip that says how to provide it."""
    path = malaria.default_data_dir()
    if path is None:
        pytest.skip(f"real malaria images not found: set {malaria.MALARIA_DIR_ENV} to the folder holding "
                    "Parasitized/ and Uninfected/ (or put them at ../shared/malaria)")
    return path


@pytest.fixture
def pil():
    return pytest.importorskip("PIL.Image", reason="Pillow is not installed: reading PNG files skipped")


def BILINEAR(pil):
    return getattr(pil, "Resampling", pil).BILINEAR  # Pillow < 9.1 has no Resampling


def _write_png(pil, path, size=(30, 40), mode="RGB", value=None, rng=None):
    rng = rng or np.random.default_rng(abs(hash(path.name)) % 2**32)
    h, w = size
    arr = (rng.random((h, w, 3)) * 255).astype(np.uint8) if value is None else np.full((h, w, 3), value, np.uint8)
    pil.fromarray(arr).convert(mode).save(path)
    return arr


def _fake_dataset(pil, root, n_par=5, n_uni=4, nested=True, case=("Parasitized", "uninfected")):
    base = root / "cell_images" if nested else root
    par, uni = base / case[0], base / case[1]
    par.mkdir(parents=True)
    uni.mkdir(parents=True)
    for k in range(n_par):
        _write_png(pil, par / f"C{10 + k % 3}P{k % 3}ThinF_IMG_2015_cell_{k}.png", size=(30 + k, 40 - k))
    for k in range(n_uni):
        _write_png(pil, uni / f"C{20 + k % 2}ThinF_IMG_2015_cell_{k}.png", size=(35, 35),
                   mode=("RGB", "RGBA", "L", "P")[k % 4])
    return par, uni


# -- load ---------------------------------------------------------------------------------------

def test_load_reads_the_layout(pil, tmp_path):
    par, uni = _fake_dataset(pil, tmp_path)
    d = malaria.load(tmp_path, image_size=(20, 24))
    assert d.images.shape == (9, 20, 24, 3) and d.images.dtype == np.float32
    assert 0 <= d.images.min() and d.images.max() <= 1
    np.testing.assert_array_equal(d.labels, [0] * 5 + [1] * 4)
    assert list(d.names) == sorted(p.name for p in par.iterdir()) + sorted(p.name for p in uni.iterdir())
    # One image by hand: Pillow's antialiased bilinear resize of the file, scaled to [0, 1].
    with pil.open(uni / d.names[5]) as im:
        expected = np.asarray(im.convert("RGB").resize((24, 20), BILINEAR(pil))) / 255
    np.testing.assert_allclose(d.images[5], expected, atol=1e-7)
    square = malaria.load(tmp_path / "cell_images", image_size=16)
    assert square.images.shape == (9, 16, 16, 3)


def test_load_finds_the_folders_in_any_case(pil, tmp_path):
    _fake_dataset(pil, tmp_path, nested=False, case=("PARASITIZED", "Uninfected"))
    assert malaria.load(tmp_path, image_size=8).images.shape == (9, 8, 8, 3)


def test_load_resizes_with_antialiasing(pil, tmp_path):
    """A one-pixel checkerboard shrunk 4x is flat grey; sampling without a filter would keep it."""
    (tmp_path / "parasitized").mkdir()
    (tmp_path / "uninfected").mkdir()
    board = ((np.indices((64, 64)).sum(axis=0) % 2) * 255).astype(np.uint8)
    pil.fromarray(np.repeat(board[..., None], 3, axis=2)).save(tmp_path / "parasitized" / "C1P1_cell_1.png")
    _write_png(pil, tmp_path / "uninfected" / "C2P2_cell_1.png")
    img = malaria.load(tmp_path, image_size=16).images[0]
    assert abs(img.mean() - 0.5) < 0.01 and img.std() < 0.01


def test_load_resizes_as_tensorflow_antialiased_bilinear(pil, tmp_path, tf):
    par, _ = _fake_dataset(pil, tmp_path, n_par=3, n_uni=1)
    d = malaria.load(tmp_path, image_size=(17, 23))
    for k in range(3):
        with pil.open(par / d.names[k]) as im:
            original = np.asarray(im.convert("RGB"), dtype=np.float32) / 255
        expected = tf.image.resize(original, (17, 23), method="bilinear", antialias=True).numpy()
        np.testing.assert_allclose(d.images[k], expected, atol=1.5 / 255)  # Pillow rounds to 8 bits


def test_load_skips_and_reports_unreadable_files(pil, tmp_path):
    par, uni = _fake_dataset(pil, tmp_path, nested=False)
    (par / "notes.txt").write_text("not an image")
    (par / "empty.png").write_bytes(b"")
    good = io.BytesIO()
    pil.fromarray(np.zeros((20, 20, 3), np.uint8) + 90).save(good, format="PNG")
    (uni / "truncated.png").write_bytes(good.getvalue()[:60])
    (uni / "Thumbs.db").write_bytes(os.urandom(300))
    with pytest.warns(UserWarning, match="skipped 4 file") as record:
        d = malaria.load(tmp_path, image_size=10)
    message = str(record[0].message)
    assert all(name in message for name in ("notes.txt", "empty.png", "truncated.png", "Thumbs.db"))
    assert d.images.shape == (9, 10, 10, 3) and len(d.labels) == len(d.names) == 9
    assert not any(n in d.names for n in ("notes.txt", "empty.png", "truncated.png", "Thumbs.db"))
    # The images after the skipped ones moved down with their names.
    for k in (4, 8):
        folder = par if d.labels[k] == 0 else uni
        with pil.open(folder / d.names[k]) as im:
            expected = np.asarray(im.convert("RGB").resize((10, 10), BILINEAR(pil))) / 255
        np.testing.assert_allclose(d.images[k], expected, atol=1e-7)


def test_load_limit_takes_a_balanced_reproducible_subset(pil, tmp_path):
    _fake_dataset(pil, tmp_path, n_par=9, n_uni=8)
    full = malaria.load(tmp_path, image_size=6)
    a = malaria.load(tmp_path, image_size=6, limit=6, seed=1)
    b = malaria.load(tmp_path, image_size=6, limit=6, seed=1)
    c = malaria.load(tmp_path, image_size=6, limit=6, seed=2)
    assert np.bincount(a.labels).tolist() == [3, 3]
    np.testing.assert_array_equal(a.images, b.images)
    assert list(a.names) == list(b.names) and list(a.names) != list(c.names)
    assert set(a.names) <= set(full.names)
    index = {n: k for k, n in enumerate(full.names)}
    np.testing.assert_array_equal(a.images, full.images[[index[n] for n in a.names]])
    assert np.bincount(malaria.load(tmp_path, image_size=6, limit=7).labels).tolist() == [3, 4]
    assert len(malaria.load(tmp_path, image_size=6, limit=100).names) == 17


def test_load_threads_and_progress(pil, tmp_path, capsys):
    _fake_dataset(pil, tmp_path, n_par=40, n_uni=30)
    one = malaria.load(tmp_path, image_size=12, workers=1, progress=True)
    err = capsys.readouterr().err
    assert "malaria.load [" in err and "70/70" in err
    two = malaria.load(tmp_path, image_size=12, workers=3, progress=False)
    assert capsys.readouterr().err == ""
    np.testing.assert_array_equal(one.images, two.images)


def test_progress_bar_in_a_log_writes_a_line_per_tenth():
    stream = io.StringIO()
    bar = ProgressBar(1000, "job", stream=stream)
    for _ in range(100):
        bar.update(10)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11 and lines[-1].startswith("job [" + "#" * 30 + "] 1000/1000")


@pytest.mark.parametrize("kwargs, match", [
    (dict(image_size=0), "image_size"),
    (dict(image_size=(10, 10, 3)), "image_size"),
    (dict(image_size=(10.5, 10)), "image_size"),
    (dict(limit=0), "limit"),
    (dict(limit=2.5), "limit"),
])
def test_load_rejects_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=f"malaria.load: {match}"):
        malaria.load(tmp_path, **kwargs)


def test_missing_folders_are_reported(pil, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        malaria.load(tmp_path / "nowhere")
    (tmp_path / "Parasitized").mkdir()
    with pytest.raises(FileNotFoundError, match="no Parasitized/ and Uninfected/"):
        malaria.load(tmp_path)
    for sub in ("a", "b"):
        _fake_dataset(pil, tmp_path / sub, n_par=1, n_uni=1, nested=False)
    with pytest.raises(FileNotFoundError, match="several folders"):
        malaria.find_class_dirs(tmp_path)


def test_default_data_dir_follows_the_environment(pil, tmp_path, monkeypatch):
    _fake_dataset(pil, tmp_path, n_par=1, n_uni=1, nested=False)
    monkeypatch.setenv(malaria.MALARIA_DIR_ENV, str(tmp_path))
    assert malaria.default_data_dir() == tmp_path
    assert len(malaria.load(image_size=4).names) == 2  # no path: the default
    monkeypatch.setenv(malaria.MALARIA_DIR_ENV, str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match=malaria.MALARIA_DIR_ENV):
        malaria.default_data_dir()


def test_without_pillow_loading_says_which_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    (tmp_path / "Parasitized").mkdir()
    (tmp_path / "Uninfected").mkdir()
    with pytest.raises(ImportError, match=r"fastconv\[examples\]"):
        malaria.load(tmp_path)
    assert malaria.synthetic(2, image_size=8).images.shape == (2, 8, 8, 3)  # NumPy only


# -- TensorFlow Datasets (mocked: the package and its data are usually absent) --------------------

def _fake_tfds(monkeypatch, tmp_path, labels, prepared=True):
    rng = np.random.default_rng(0)
    examples = [((rng.random((30 + k, 28, 3)) * 255).astype(np.uint8), np.int64(lab)) for k, lab in enumerate(labels)]
    data_dir = tmp_path / "malaria" / "1.0.0"
    data_dir.mkdir(parents=True)
    if prepared:
        (data_dir / "dataset_info.json").write_text("{}")
    calls = {}

    def load(name, split, data_dir=None, download=True, as_supervised=False, with_info=False):
        calls.update(name=name, split=split, download=download, as_supervised=as_supervised)
        info = types.SimpleNamespace(splits={"train": types.SimpleNamespace(num_examples=len(examples))})
        return examples, info

    module = types.SimpleNamespace(
        builder=lambda name, data_dir=None, prepared_dir=data_dir: types.SimpleNamespace(data_dir=str(prepared_dir)),
        load=load, as_numpy=iter)
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", module)
    return examples, calls


def test_load_tfds_reads_the_prepared_dataset(pil, tmp_path, monkeypatch):
    examples, calls = _fake_tfds(monkeypatch, tmp_path, [0, 1, 1, 0, 1, 0, 0])
    assert malaria.tfds_available()
    d = malaria.load_tfds(image_size=(10, 12))
    assert calls == dict(name="malaria", split="train", download=False, as_supervised=True)
    assert d.images.shape == (7, 10, 12, 3) and d.images.dtype == np.float32
    np.testing.assert_array_equal(d.labels, [0, 1, 1, 0, 1, 0, 0])
    assert d.names[2] == "tfds:malaria/train/2"
    expected = np.asarray(pil.fromarray(examples[2][0]).resize((12, 10), BILINEAR(pil))) / 255
    np.testing.assert_allclose(d.images[2], expected, atol=1e-7)
    limited = malaria.load_tfds(image_size=4, limit=4)
    assert list(limited.names) == [f"tfds:malaria/train/{k}" for k in (0, 1, 2, 3)]
    assert np.bincount(limited.labels).tolist() == [2, 2]


def test_tfds_unavailable_falls_back_to_synthetic(tmp_path, monkeypatch):
    _fake_tfds(monkeypatch, tmp_path, [0, 1], prepared=False)
    assert not malaria.tfds_available()
    monkeypatch.setattr(malaria, "default_data_dir", lambda: None)
    with pytest.warns(UserWarning, match="SYNTHETIC"):
        d, source = malaria.load_or_synthetic(image_size=12, limit=6)
    assert source.startswith("synthetic") and d.images.shape == (6, 12, 12, 3)
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    assert not malaria.tfds_available()


def test_load_or_synthetic_prefers_real_images(pil, tmp_path):
    _fake_dataset(pil, tmp_path, n_par=2, n_uni=2)
    d, source = malaria.load_or_synthetic(tmp_path, image_size=5)
    assert source == f"images in {tmp_path}" and len(d.names) == 4


# -- the split by slide -------------------------------------------------------------------------

def test_slide_of_reads_the_real_name_forms():
    assert [malaria.slide_of(n) for n in REAL_NAMES] == ["C100", "C37", "C1", "C2", "C99", "C182", "C59"]
    assert malaria.slide_of("/data/Parasitized/C007P3_cell_1.png") == "C7"
    with pytest.raises(ValueError, match="does not start with C"):
        malaria.slide_of("IMG_0001.png")


def _slides(names):
    return np.array([malaria.slide_of(n) for n in names])


def test_split_by_slide_keeps_slides_apart():
    d = malaria.synthetic(1500, image_size=8, seed=4)
    train, test = malaria.split_by_slide(d.names, test_size=0.25, seed=0, labels=d.labels)
    slides = _slides(d.names)
    assert not set(slides[train]) & set(slides[test])
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(1500))
    assert abs(len(test) / 1500 - 0.25) < 0.04
    share = np.bincount(d.labels[test], minlength=2) / np.bincount(d.labels, minlength=2)
    assert np.all(np.abs(share - 0.25) < 0.05)
    again = malaria.split_by_slide(d.names, test_size=0.25, seed=0, labels=d.labels)
    other = malaria.split_by_slide(d.names, test_size=0.25, seed=1, labels=d.labels)
    assert np.array_equal(again[1], test) and not np.array_equal(other[1], test)


def test_split_by_slide_on_few_slides_keeps_both_sides():
    names = ["C1P1_cell_1.png"] * 10 + ["C2P2_cell_1.png"]
    train, test = malaria.split_by_slide(names, test_size=0.01)
    assert len(train) and len(test) and not set(_slides(np.array(names)[train])) & set(_slides(np.array(names)[test]))
    train, test = malaria.split_by_slide(names, test_size=0.99)
    assert len(train) and len(test)


@pytest.mark.parametrize("names, kwargs, match", [
    (REAL_NAMES, dict(test_size=0), "test_size"),
    (REAL_NAMES, dict(test_size=1.5), "test_size"),
    (REAL_NAMES + ["img.png"], {}, "does not start with C"),
    (["C1P1_a.png", "C1P1_b.png"], {}, "at least 2 slides"),
    (REAL_NAMES, dict(labels=[0, 1]), "labels for"),
])
def test_split_by_slide_rejects_bad_arguments(names, kwargs, match):
    with pytest.raises(ValueError, match=match):
        malaria.split_by_slide(names, **kwargs)


# -- synthetic cells ----------------------------------------------------------------------------

def test_synthetic_images_are_cells_on_black():
    d = malaria.synthetic(41, image_size=(36, 44), seed=2)
    assert d.images.shape == (41, 36, 44, 3) and d.images.dtype == np.float32
    assert d.images.min() >= 0 and d.images.max() <= 1
    assert np.bincount(d.labels).tolist() == [21, 20]
    centre = np.median(d.images[:, 14:22, 18:26], axis=(1, 2))
    assert np.all(d.images[:, :2, :2] == 0) and np.all(centre.min(axis=-1) > 0.4)
    assert np.all(centre[:, 0] > 0.6) and np.all(centre[:, 2] > 0.45)  # pink to lavender cells
    again = malaria.synthetic(41, image_size=(36, 44), seed=2)
    np.testing.assert_array_equal(again.images, d.images)
    assert not np.array_equal(malaria.synthetic(41, image_size=(36, 44), seed=3).images, d.images)
    assert all("synthetic" in n for n in d.names) and len(set(_slides(d.names))) >= 2
    assert malaria.synthetic(0).images.shape == (0, 100, 100, 3)


def _purple_area(images):
    """Pixels of parasite chromatin: purple (red and blue well above green) and dark."""
    r, g, b = images[..., 0], images[..., 1], images[..., 2]
    return ((r - g > 0.12) & (b - g > 0.12) & (g < 0.45)).sum(axis=(1, 2))


def test_synthetic_parasites_are_what_separates_the_classes():
    d = malaria.synthetic(400, image_size=(64, 64), seed=5)
    area = _purple_area(d.images)
    predicted = (area < 3).astype(int)  # uninfected when (almost) no chromatin
    assert np.mean(predicted == d.labels) > 0.97


def test_a_small_cnn_learns_synthetic_cells(tf):
    """The stand-in must teach something: a small CNN separates the classes on unseen slides."""
    d = malaria.synthetic(900, image_size=(40, 40), seed=11)
    train, test = malaria.split_by_slide(d.names, test_size=0.3, seed=0, labels=d.labels)
    tf.keras.utils.set_random_seed(0)
    layers = tf.keras.layers
    model = tf.keras.Sequential([tf.keras.Input((40, 40, 3)), layers.Conv2D(16, 3, activation="relu"),
                                 layers.MaxPooling2D(), layers.Conv2D(16, 3, activation="relu"),
                                 layers.MaxPooling2D(), layers.Flatten(), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=tf.keras.optimizers.Adam(0.003), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(d.images[train], d.labels[train], epochs=10, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(d.images[test], d.labels[test], verbose=0)
    assert accuracy > 0.9


# -- the real images (skipped when absent) -------------------------------------------------------

def test_real_images_load(real_dir):
    d = malaria.load(real_dir, limit=60, seed=0)
    assert d.images.shape == (60, 100, 100, 3) and d.images.dtype == np.float32
    assert np.bincount(d.labels).tolist() == [30, 30]
    assert 0 <= d.images.min() and d.images.max() <= 1 and d.images.mean() > 0.2
    assert all(n.endswith(".png") for n in d.names)
    par, _ = malaria.find_class_dirs(real_dir)
    assert all((par / n).is_file() for n in d.names[:30])


def test_real_names_split_by_slide(real_dir):
    par, uni = malaria.find_class_dirs(real_dir)
    names = np.array(sorted(os.listdir(par)) + sorted(os.listdir(uni)))
    labels = np.repeat([0, 1], [len(os.listdir(par)), len(os.listdir(uni))])
    train, test = malaria.split_by_slide(names, test_size=0.2, seed=0, labels=labels)
    slides = _slides(names)
    assert not set(slides[train]) & set(slides[test])
    assert len(set(slides)) > 20 and abs(len(test) / len(names) - 0.2) < 0.02
    share = np.bincount(labels[test]) / np.bincount(labels)
    assert np.all(np.abs(share - 0.2) < 0.03)
