"""ImageDataGenerator as a whole against Keras's (legacy) one: the channel shift and brightness,
the standardization and ``fit`` statistics, ``flow(subset=...)``, ``flow_from_directory`` and
``flow_from_dataframe``.  Where Keras's result is deterministic for the given parameters
(``apply_transform`` of a parameter dictionary, ``standardize`` after ``fit``, the batches of an
unshuffled iterator without random transforms) fastconv's must equal it.  The geometric
transforms are covered by tests/test_augmentation.py."""
import os
import shutil

import numpy as np
import pytest

from fastconv.preprocessing.image import ImageDataGenerator

MALARIA = "/work/shared/malaria"


@pytest.fixture
def keras_generator(tf):
    try:
        return tf.keras.preprocessing.image.ImageDataGenerator
    except AttributeError:
        pytest.skip("this TensorFlow has no tf.keras.preprocessing.image.ImageDataGenerator")


def _pil():
    return pytest.importorskip("PIL.Image")


@pytest.fixture
def image_folder(tmp_path):
    """Two class folders of RGB PNGs of assorted sizes (one nested folder, one non-image)."""
    image = _pil()
    rng = np.random.default_rng(0)
    for cls, count in (("cats", 7), ("dogs", 5)):
        (tmp_path / cls / "more").mkdir(parents=True)
        for i in range(count):
            h, w = rng.integers(20, 60, 2)
            sub = "more" if i == 0 else ""
            image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / cls / sub / f"{i}.png")
        (tmp_path / cls / "notes.txt").write_text("not an image")
    return tmp_path


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("values", ["pixels", "unit", "signed"])
def test_channel_shift_and_brightness_match_keras(keras_generator, values):
    rng = np.random.default_rng(1)
    x = {"pixels": rng.uniform(0, 255, (17, 23, 3)), "unit": rng.random((17, 23, 3)),
         "signed": rng.uniform(-300, 300, (17, 23, 3))}[values].astype(np.float32)
    ours, keras = ImageDataGenerator(), keras_generator()
    for params in ({"channel_shift_intensity": 40.0}, {"channel_shift_intensity": -0.3},
                   {"brightness": 0.6}, {"brightness": 1.7}, {"brightness": 1.3, "theta": 20.0, "flip_horizontal": True,
                                                              "channel_shift_intensity": 12.0}):
        np.testing.assert_allclose(ours.apply_transform(x, params), keras.apply_transform(x, params),
                                   rtol=1e-6, atol=1e-4 if values == "signed" else 1e-5)


def test_random_parameters_include_channel_shift_and_brightness():
    gen = ImageDataGenerator(channel_shift_range=20.0, brightness_range=(0.5, 1.5))
    draws = [gen.get_random_transform((8, 8, 3), seed=s) for s in range(200)]
    shifts, bright = np.array([d["channel_shift_intensity"] for d in draws]), np.array([d["brightness"] for d in draws])
    assert np.all(np.abs(shifts) <= 20) and shifts.std() > 8
    assert np.all((bright >= 0.5) & (bright <= 1.5)) and bright.std() > 0.2
    plain = ImageDataGenerator().get_random_transform((8, 8, 3), seed=0)
    assert plain["channel_shift_intensity"] is None and plain["brightness"] is None


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("options", [
    dict(featurewise_center=True), dict(featurewise_center=True, featurewise_std_normalization=True),
    dict(featurewise_std_normalization=True, rescale=1 / 255),
    dict(samplewise_center=True, samplewise_std_normalization=True),
    dict(zca_whitening=True, zca_epsilon=1e-3),
    dict(featurewise_center=True, data_format="channels_first"),
    dict(preprocessing_function=lambda im: im[::-1] * 2, rescale=0.5, samplewise_center=True),
])
def test_fit_and_standardize_match_keras(keras_generator, options):
    rng = np.random.default_rng(2)
    shape = (12, 3, 6, 5) if options.get("data_format") == "channels_first" else (12, 6, 5, 3)
    x = rng.uniform(0, 255, shape).astype(np.float32)
    ours, keras = ImageDataGenerator(**options), keras_generator(**options)
    ours.fit(x)
    keras.fit(x)
    for name in ("mean", "std", "zca_whitening_matrix"):
        if getattr(keras, name) is not None:
            np.testing.assert_allclose(getattr(ours, name), getattr(keras, name), rtol=2e-4, atol=1e-4)
    for image in x[:3]:
        np.testing.assert_allclose(ours.standardize(image), keras.standardize(image.copy()), rtol=2e-4, atol=2e-4)


def test_standardize_warns_before_fit_and_leaves_its_input_alone():
    x = np.full((4, 4, 3), 10.0, np.float32)
    gen = ImageDataGenerator(featurewise_center=True, rescale=0.5)
    with pytest.warns(UserWarning, match="hasn't been fit"):
        out = gen.standardize(x)
    np.testing.assert_array_equal(out, 5.0)
    np.testing.assert_array_equal(x, 10.0)
    gen.fit(np.stack([x, x + 2]), augment=True, rounds=2, seed=0)
    assert gen.mean.shape == (1, 1, 3)


def test_flow_subsets_split_as_keras():
    x = np.arange(20, dtype=np.float32).reshape(20, 1, 1, 1)
    y = np.arange(20) % 2
    gen = ImageDataGenerator(validation_split=0.25)
    validation = gen.flow(x, y, batch_size=20, shuffle=False, subset="validation")[0]
    training = gen.flow(x, y, batch_size=20, shuffle=False, subset="training", sample_weight=np.arange(20.0))[0]
    assert validation[0].ravel().tolist() == list(range(5))
    assert training[0].ravel().tolist() == list(range(5, 20)) and training[2].tolist() == list(range(5, 20))
    with pytest.raises(ValueError, match="different number of classes"):
        gen.flow(x, np.arange(20) >= 5, subset="training")
    assert len(gen.flow(x, np.arange(20) >= 5, subset="training", ignore_class_split=True)) == 1
    with pytest.raises(ValueError, match="invalid subset name"):
        gen.flow(x, y, subset="test")


def _keras_batches(iterator):
    return [iterator[i] for i in range(len(iterator))]


@pytest.mark.parametrize("kwargs", [
    dict(target_size=(32, 40)), dict(target_size=(31, 17), class_mode="binary", keep_aspect_ratio=True),
    dict(target_size=(24, 24), class_mode="sparse", subset="validation"),
    dict(target_size=(24, 24), class_mode=None, subset="training", color_mode="grayscale"),
    dict(target_size=(20, 30), color_mode="rgba", interpolation="bilinear", classes=["dogs"]),
])
def test_flow_from_directory_gives_keras_batches(keras_generator, image_folder, kwargs, capsys):
    options = dict(rescale=1 / 255, validation_split=0.3)
    ours = ImageDataGenerator(**options).flow_from_directory(str(image_folder), batch_size=5, shuffle=False,
                                                             **kwargs)
    keras = keras_generator(**options).flow_from_directory(str(image_folder), batch_size=5, shuffle=False, **kwargs)
    assert ours.filenames == keras.filenames and ours.class_indices == keras.class_indices
    assert ours.classes.tolist() == keras.classes.tolist() and len(ours) == len(keras)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == printed[1] and printed[0].startswith("Found ")
    for got, expected in zip(_keras_batches(ours), _keras_batches(keras)):
        got, expected = (got, expected) if isinstance(got, tuple) else ((got,), (expected,))
        for a, b in zip(got, expected):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a, b)


def test_flow_from_directory_on_malaria_cells_equals_keras(keras_generator, tmp_path):
    if not os.path.isdir(MALARIA):
        pytest.skip("the malaria cells are not on this machine")
    for cls in ("Parasitized", "Uninfected"):
        (tmp_path / cls).mkdir()
        for name in sorted(os.listdir(os.path.join(MALARIA, cls)))[:6]:
            shutil.copy(os.path.join(MALARIA, cls, name), tmp_path / cls / name)
    ours = ImageDataGenerator(rescale=1 / 255).flow_from_directory(str(tmp_path), target_size=(100, 100),
                                                                    class_mode="binary", batch_size=12, shuffle=False)
    keras = keras_generator(rescale=1 / 255).flow_from_directory(str(tmp_path), target_size=(100, 100),
                                                                  class_mode="binary", batch_size=12, shuffle=False)
    (xa, ya), (xb, yb) = ours[0], keras[0]
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)


def test_flow_from_directory_augments_and_shuffles_reproducibly(image_folder):
    gen = ImageDataGenerator(rotation_range=40, width_shift_range=0.2, height_shift_range=0.2, shear_range=0.2,
                             zoom_range=0.2, horizontal_flip=True, fill_mode="nearest", rescale=1 / 255)
    a = gen.flow_from_directory(str(image_folder), target_size=(16, 16), batch_size=4, seed=3)
    b = gen.flow_from_directory(str(image_folder), target_size=(16, 16), batch_size=4, seed=3)
    first = [next(a) for _ in range(4)]
    for (xa, ya), (xb, yb) in zip(first, (next(b) for _ in range(4))):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert first[0][0].shape == (4, 16, 16, 3) and first[0][1].shape == (4, 2)
    assert sum(len(y) for _, y in first[:3]) == 12  # one epoch: 3 batches of 4, 4 and 4
    plain = ImageDataGenerator(rescale=1 / 255).flow_from_directory(str(image_folder), target_size=(16, 16),
                                                                     batch_size=12, shuffle=False)
    assert not np.array_equal(np.sort(first[0][0].ravel()), np.sort(plain[0][0][:4].ravel()))


def test_flow_from_directory_saves_and_refuses(image_folder, tmp_path):
    out = tmp_path / "saved"
    out.mkdir()
    it = ImageDataGenerator().flow_from_directory(str(image_folder), target_size=(8, 8), batch_size=3,
                                                  save_to_dir=str(out), save_prefix="aug")
    it[0]
    assert len(os.listdir(out)) == 3 and all(f.startswith("aug_") and f.endswith(".png") for f in os.listdir(out))
    with pytest.raises(ValueError, match="Invalid class_mode"):
        ImageDataGenerator().flow_from_directory(str(image_folder), class_mode="onehot")
    with pytest.raises(ValueError, match="Invalid color mode"):
        ImageDataGenerator().flow_from_directory(str(image_folder), color_mode="cmyk")
    with pytest.raises(ValueError, match="target_size"):
        ImageDataGenerator().flow_from_directory(str(image_folder), target_size=(8,))
    with pytest.raises(ValueError, match="is not a folder"):
        ImageDataGenerator().flow_from_directory(str(tmp_path / "missing"))


@pytest.mark.parametrize("kwargs", [
    dict(class_mode="categorical"), dict(class_mode="binary", subset="training"),
    dict(class_mode="raw", y_col="score", weight_col="weight"), dict(class_mode="sparse", classes=["dogs", "cats"]),
])
def test_flow_from_dataframe_gives_keras_batches(keras_generator, image_folder, kwargs):
    pd = pytest.importorskip("pandas")
    files = sorted(os.path.relpath(os.path.join(root, f), image_folder)
                   for root, _, names in os.walk(image_folder) for f in names)
    df = pd.DataFrame({"filename": files, "class": [f.split(os.sep)[0] for f in files],
                       "score": np.arange(len(files), dtype=float), "weight": np.linspace(0.5, 1.5, len(files))})
    options = dict(rescale=1 / 255, validation_split=0.25)
    common = dict(directory=str(image_folder), target_size=(12, 14), batch_size=4, shuffle=False, **kwargs)
    with pytest.warns(UserWarning, match="invalid image filename"):
        ours = ImageDataGenerator(**options).flow_from_dataframe(df, **common)
    keras = keras_generator(**options).flow_from_dataframe(df, **common)
    assert ours.filenames == keras.filenames and len(ours) == len(keras)
    for got, expected in zip(_keras_batches(ours), _keras_batches(keras)):
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(brightness_range=0.5), ValueError, "brightness_range"),
    (dict(channel_shift_range=-1), ValueError, "channel_shift_range"),
    (dict(validation_split=1.5), ValueError, "validation_split"),
    (dict(data_format="nhwc"), ValueError, "data_format"),
    (dict(preprocessing_function="flip"), TypeError, "preprocessing_function"),
])
def test_bad_options_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        ImageDataGenerator(**kwargs)


def test_positional_arguments_follow_keras_order():
    gen = ImageDataGenerator(True, False, True)
    assert gen.featurewise_center and not gen.samplewise_center and gen.featurewise_std_normalization


def test_malaria_example_trains_on_augmented_batches_of_synthetic_cells(monkeypatch):
    """``--augment``: the lecture's generator on the training slides, validation on other slides."""
    monkeypatch.delenv("FASTCONV_MALARIA_DIR", raising=False)
    from fastconv.examples import malaria as job

    result = job.main(["--limit", "300", "--image-size", "32", "--epochs", "2", "--augment", "--no-figures",
                       "--verbose", "0", "--seed", "2"])
    assert result["source"].startswith("SYNTHETIC") and result["epochs"] == 2
    assert set(result["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert 0.0 <= result["accuracy"] <= 1.0 and np.isfinite(result["history"]["val_loss"]).all()
