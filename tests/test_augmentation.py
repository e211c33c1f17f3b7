"""The affine warp kernel and ImageDataGenerator: NumPy reference, SciPy, Keras, threads, flow."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv as fc
from fastconv import reference as ref
from fastconv.image import FILL_MODES, affine_transform
from fastconv.preprocessing.image import (
    ImageDataGenerator,
    NumpyArrayIterator,
    array_to_img,
    img_to_array,
    load_img,
    transform_matrix,
)
from _helpers import DTYPES, assert_close

MODES = sorted(FILL_MODES)


@pytest.fixture
def keras_generator(tf):
    """tf.keras's (legacy) ImageDataGenerator, the peer of fastconv's."""
    try:
        return tf.keras.preprocessing.image.ImageDataGenerator
    except AttributeError:
        pytest.skip("this TensorFlow has no tf.keras.preprocessing.image.ImageDataGenerator")


@st.composite
def warp_problems(draw):
    """Random images and matrices: general maps, and exact shifts and flips by whole and half
    pixels, whose positions fall on pixel centres and rounding ties."""
    n, h, w, c = draw(st.integers(1, 3)), draw(st.integers(1, 13)), draw(st.integers(1, 13)), draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    if draw(st.booleans()):
        a = rng.uniform(-2, 2, (n, 2, 2))
        t = rng.uniform(-25, 25, (n, 2, 1))
    else:
        a = np.eye(2) * rng.choice([-1.0, 1.0], (n, 2, 1))
        t = rng.integers(-30, 30, (n, 2, 1)) + rng.choice([0.0, 0.5], (n, 2, 1))
    return dict(x=rng.standard_normal((n, h, w, c)), m=np.concatenate([a, t], axis=2),
                order=draw(st.sampled_from([0, 1])), mode=draw(st.sampled_from(MODES)),
                cval=draw(st.sampled_from([0.0, -2.5])))


@settings(max_examples=150, deadline=None)
@given(problem=warp_problems(), dtype=st.sampled_from(DTYPES))
def test_warp_matches_reference(problem, dtype):
    p = problem
    x = p["x"].astype(dtype)
    expected = ref.affine_transform(x, p["m"], p["order"], p["mode"], p["cval"])
    got = affine_transform(x, p["m"], order=p["order"], fill_mode=p["mode"], cval=p["cval"])
    assert_close(got, expected, dtype, magnitude=4)


@settings(max_examples=150, deadline=None)
@given(problem=warp_problems())
def test_reference_is_scipy_affine_transform(problem):
    """The reference's definition of the fill modes and rounding is SciPy's (what Keras calls)."""
    ndimage = pytest.importorskip("scipy.ndimage")
    p = problem
    expected = np.stack([
        np.stack([ndimage.affine_transform(img[..., k], m[:, :2], m[:, 2], order=p["order"], mode=p["mode"],
                                           cval=p["cval"]) for k in range(img.shape[-1])], axis=-1)
        for img, m in zip(p["x"], p["m"])])
    np.testing.assert_allclose(ref.affine_transform(p["x"], p["m"], p["order"], p["mode"], p["cval"]), expected,
                               rtol=0, atol=1e-12)


def test_warp_by_hand():
    """A 3x3 image shifted by half a pixel along the columns, and the fill modes at the border."""
    x = np.arange(9, dtype=np.float64).reshape(1, 3, 3, 1)
    m = [[1, 0, 0], [0, 1, 0.5]]  # output (i, j) reads (i, j + 0.5)
    y = affine_transform(x, m, fill_mode="nearest")[0, :, :, 0]
    np.testing.assert_array_equal(y, [[0.5, 1.5, 2], [3.5, 4.5, 5], [6.5, 7.5, 8]])
    y = affine_transform(x, m, fill_mode="constant", cval=-1)[0, :, :, 0]
    np.testing.assert_array_equal(y[:, 2], [-1, -1, -1])
    # Column -1.25 lies between the mirror images x(-1) = x(0) and x(-2) = x(1): 0.75 * 0 + 0.25 * 1.
    m = [[1, 0, 0], [0, 1, -1.25]]
    assert affine_transform(x, m, fill_mode="reflect")[0, 0, 0, 0] == pytest.approx(0.25)
    m = [[1, 0, 0], [0, 1, 2.5]]  # wrap with period 2 (size - 1): column 2.5 reads column 0.5
    assert affine_transform(x, m, fill_mode="wrap")[0, 0, 0, 0] == pytest.approx(0.5)
    assert affine_transform(x, m, order=0, fill_mode="wrap")[0, 0, 0, 0] == 1.0  # round(0.5) = 1


def test_warp_threads_give_the_same_bits():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 97, 101, 3)).astype(np.float32)
    m = transform_matrix({"theta": np.array([5, 50, 95, 140, 185]), "zx": 1.1, "shear": 7}, x.shape[1:])
    fc.set_num_threads(1)
    one = affine_transform(x, m, fill_mode="reflect")
    fc.set_num_threads(3)
    np.testing.assert_array_equal(affine_transform(x, m, fill_mode="reflect"), one)


def test_warp_shapes_dtypes_and_inputs():
    rng = np.random.default_rng(0)
    img = rng.random((6, 7, 3))
    m = [[0.9, 0.1, 0.3], [-0.1, 1.1, 0.2]]
    batch = affine_transform(img[None], m)
    np.testing.assert_array_equal(affine_transform(img, m), batch[0])
    np.testing.assert_array_equal(affine_transform(img[..., 0], m), batch[0, ..., 0])
    np.testing.assert_array_equal(affine_transform(img, np.vstack([m, [0, 0, 1]])), batch[0])
    np.testing.assert_array_equal(affine_transform(np.stack([img, img]), [m])[1], batch[0])  # one matrix, two images
    assert affine_transform(img.astype(np.float32), m).dtype == np.float32
    assert affine_transform(img.astype(np.float16), m).dtype == np.float16
    assert affine_transform((img * 10).astype(np.uint8), m).dtype == np.float64
    before = img.copy()
    affine_transform(img, m)
    np.testing.assert_array_equal(img, before)
    assert affine_transform(np.zeros((0, 4, 4, 2)), m).shape == (0, 4, 4, 2)
    identity = affine_transform(img, [[1, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(identity, img)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(images=np.zeros((2, 2, 2, 2, 2))), ValueError, "images must be"),
    (dict(images=np.array([["a"]])), TypeError, "images must hold numbers"),
    (dict(order=2), ValueError, "order must be 0"),
    (dict(order=True), ValueError, "order must be 0"),
    (dict(fill_mode="mirror"), ValueError, "fill_mode must be one of"),
    (dict(cval="x"), TypeError, "cval must be a number"),
    (dict(matrices=np.eye(2)), ValueError, "2x3 or 3x3"),
    (dict(matrices=np.zeros((3, 2, 3))), ValueError, "3 matrices for 2 image"),
    (dict(matrices=[[1, 0, 0], [0, 1, 0], [0.1, 0, 1]]), ValueError, "last row"),
    (dict(matrices=[[np.nan, 0, 0], [0, 1, 0]]), ValueError, "finite"),
    (dict(matrices=[[1e308, 1e308, 0], [0, 1, 0]]), ValueError, "beyond the range"),
])
def test_warp_rejects_bad_arguments(kwargs, error, match):
    args = dict(images=np.zeros((2, 4, 5, 1)), matrices=[[1, 0, 0], [0, 1, 0]])
    args.update(kwargs)
    images, matrices = args.pop("images"), args.pop("matrices")
    with pytest.raises(error, match=f"affine_transform: .*{match}"):
        affine_transform(images, matrices, **args)


def test_huge_but_finite_positions_fill_without_crashing():
    x = np.arange(12.0).reshape(1, 3, 4, 1)
    for mode in MODES:
        y = affine_transform(x, [[1e200, 0, 0], [0, 1, 1e200]], fill_mode=mode, cval=-1)
        assert np.all(np.isfinite(y))


# -- Keras's transforms --------------------------------------------------------------------------

def _keras_parameters(rng):
    return dict(theta=rng.uniform(-180, 180), tx=rng.uniform(-15, 15), ty=rng.uniform(-15, 15),
                shear=rng.uniform(-30, 30), zx=rng.uniform(0.7, 1.3), zy=rng.uniform(0.7, 1.3),
                flip_horizontal=bool(rng.random() < 0.5), flip_vertical=bool(rng.random() < 0.5))


# Keras's legacy generator calls the deprecated scipy.ndimage.interpolation namespace.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("fill_mode", MODES)
@pytest.mark.parametrize("shape", [(48, 48, 3), (31, 45, 2)])
@pytest.mark.parametrize("order", [0, 1])
def test_apply_transform_matches_keras(keras_generator, fill_mode, shape, order):
    """Same parameter dictionary, same image as tf.keras's ImageDataGenerator.apply_transform,
    for every fill mode, square and non-square images (where Keras's centre is off), with flips."""
    rng = np.random.default_rng(sum(shape) + order)
    x = rng.random(shape).astype(np.float32)
    ours = ImageDataGenerator(fill_mode=fill_mode, cval=0.25, interpolation_order=order)
    keras = keras_generator(fill_mode=fill_mode, cval=0.25, interpolation_order=order)
    for _ in range(12):
        params = _keras_parameters(rng)
        expected = keras.apply_transform(x, params)
        got = ours.apply_transform(x, params)
        assert got.dtype == np.float32
        # The same double-precision positions as SciPy: equal up to float32 rounding.
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_shift_parameters_act_as_in_keras(keras_generator):
    """Keras's 'tx' (from height_shift_range) moves the image along the columns: kept as is."""
    x = np.zeros((20, 30, 1), np.float32)
    x[5, 8, 0] = 1
    ours = ImageDataGenerator()
    assert np.argwhere(ours.apply_transform(x, {"tx": 3})[..., 0] > 0.5).tolist() == [[5, 5]]
    assert np.argwhere(ours.apply_transform(x, {"ty": 3})[..., 0] > 0.5).tolist() == [[2, 8]]
    keras = keras_generator()
    assert np.argwhere(keras.apply_transform(x, {"tx": 3})[..., 0] > 0.5).tolist() == [[5, 5]]


# -- random parameters ---------------------------------------------------------------------------

def test_random_parameters_follow_keras_ranges():
    gen = ImageDataGenerator(rotation_range=30, width_shift_range=0.1, height_shift_range=4, shear_range=5,
                             zoom_range=0.2, horizontal_flip=True)
    draws = [gen.get_random_transform((50, 80, 3), seed=s) for s in range(400)]
    theta, tx, ty, shear = (np.array([d[k] for d in draws]) for k in ("theta", "tx", "ty", "shear"))
    zooms = np.array([[d["zx"], d["zy"]] for d in draws])
    assert np.all(np.abs(theta) <= 30) and theta.std() > 10
    assert set(np.unique(tx)) <= {-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0}  # int 4: whole pixels in (-4, 4)
    assert np.all(np.abs(ty) <= 8) and np.abs(ty).max() > 6  # 0.1 of the width 80
    assert np.all(np.abs(shear) <= 5)
    assert np.all((zooms >= 0.8) & (zooms <= 1.2)) and not np.allclose(zooms[:, 0], zooms[:, 1])
    flips = np.mean([d["flip_horizontal"] for d in draws])
    assert 0.4 < flips < 0.6 and not any(d["flip_vertical"] for d in draws)
    assert gen.get_random_transform((50, 80, 3), seed=7) == draws[7]
    listed = ImageDataGenerator(width_shift_range=[0.25])
    assert {listed.get_random_transform((10, 40, 1), seed=s)["ty"] for s in range(50)} == {-10.0, 10.0}
    pixels = ImageDataGenerator(height_shift_range=np.array([2, 5]))
    assert {pixels.get_random_transform((10, 40, 1), seed=s)["tx"] for s in range(50)} == {-5.0, -2.0, 2.0, 5.0}


@pytest.mark.parametrize("kwargs, match", [
    (dict(rotation_range=-1), "rotation_range"),
    (dict(width_shift_range="a"), "width_shift_range"),
    (dict(height_shift_range=[]), "height_shift_range"),
    (dict(shear_range=[1, 2]), "shear_range"),
    (dict(zoom_range=[1.2, 0.8]), "zoom_range"),
    (dict(zoom_range=[0.5, 1, 2]), "zoom_range"),
    (dict(fill_mode="mirror"), "fill_mode"),
    (dict(rescale="1/255"), "rescale"),
    (dict(interpolation_order=3), "interpolation_order"),
])
def test_generator_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=f"ImageDataGenerator: {match}"):
        ImageDataGenerator(**kwargs)


def test_random_transform_and_standardize():
    rng = np.random.default_rng(0)
    x = rng.random((16, 16, 3)).astype(np.float32)
    gen = ImageDataGenerator(rotation_range=40, rescale=0.5)
    y = gen.random_transform(x, seed=3)
    np.testing.assert_array_equal(y, gen.apply_transform(x, gen.get_random_transform(x.shape, seed=3)))
    np.testing.assert_array_equal(gen.standardize(x), x * 0.5)
    with pytest.raises(ValueError, match="one image"):
        gen.random_transform(x[None])


# -- flow ---------------------------------------------------------------------------------------

def test_flow_is_a_sequence_that_visits_every_sample_once_per_epoch():
    x = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1) * np.ones((1, 4, 4, 2), np.float32)
    y = np.arange(10)
    it = ImageDataGenerator(rescale=2.0).flow(x, y, batch_size=4, seed=1)
    assert isinstance(it, NumpyArrayIterator) and len(it) == 3
    batches = [it[i] for i in range(len(it))]
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    seen = np.concatenate([b[1] for b in batches])
    assert sorted(seen) == list(range(10)) and list(seen) != list(range(10))  # shuffled
    for bx, by in batches:
        assert bx.dtype == np.float32 and bx.shape[1:] == (4, 4, 2)
        np.testing.assert_array_equal(bx, 2.0 * x[by])  # no transform: the rescaled samples of by
    np.testing.assert_array_equal(it[1][1], batches[1][1])  # same epoch, same batch
    it.on_epoch_end()
    assert list(np.concatenate([it[i][1] for i in range(3)])) != list(seen)
    with pytest.raises(IndexError, match="length 3"):
        it[3]


def test_flow_next_runs_epoch_after_epoch_and_is_reproducible():
    rng = np.random.default_rng(0)
    x = rng.random((7, 8, 8, 3)).astype(np.float32)
    gen = ImageDataGenerator(rotation_range=30, zoom_range=0.1, horizontal_flip=True)
    a = gen.flow(x, batch_size=3, seed=5)
    b = gen.flow(x, batch_size=3, seed=5)
    first = [next(a) for _ in range(7)]
    assert [len(batch) for batch in first] == [3, 3, 1, 3, 3, 1, 3]
    for batch, other in zip(first, [b.next() for _ in range(7)]):
        np.testing.assert_array_equal(batch, other)
    assert iter(a) is a
    c = gen.flow(x, batch_size=3, seed=6)
    assert not np.array_equal(next(c), first[0])


def test_flow_flips_images_as_asked():
    rng = np.random.default_rng(1)
    x = rng.random((40, 5, 6, 1)).astype(np.float32)
    bx, by = ImageDataGenerator(horizontal_flip=True).flow(x, np.arange(40), batch_size=40, seed=0)[0]
    flipped = [np.array_equal(img, x[k][:, ::-1]) for img, k in zip(bx, by)]
    kept = [np.array_equal(img, x[k]) for img, k in zip(bx, by)]
    assert all(f or k for f, k in zip(flipped, kept)) and 5 < sum(flipped) < 35


def test_flow_augments_uint8_images():
    x = np.full((4, 10, 10, 3), 200, np.uint8)
    bx = ImageDataGenerator(rotation_range=90, fill_mode="constant", cval=0, rescale=1 / 255).flow(
        x, batch_size=4, seed=0).next()
    assert bx.dtype == np.float32 and bx.max() == pytest.approx(200 / 255) and bx.min() == 0.0


@pytest.mark.parametrize("args, error, match", [
    ((np.zeros((4, 5, 5)),), ValueError, "4-D"),
    ((np.zeros((4, 5, 5, 1)), np.zeros(3)), ValueError, "same number of samples"),
    ((np.zeros((0, 5, 5, 1)),), ValueError, "no samples"),
    ((np.zeros((4, 5, 5, 1), dtype=object),), TypeError, "numbers"),
])
def test_flow_rejects_bad_data(args, error, match):
    with pytest.raises(error, match=match):
        ImageDataGenerator().flow(*args)
    with pytest.raises(ValueError, match="batch_size"):
        ImageDataGenerator().flow(np.zeros((4, 5, 5, 1)), batch_size=0)


# -- image files ---------------------------------------------------------------------------------

def test_image_file_helpers(tmp_path):
    pil = pytest.importorskip("PIL.Image", reason="Pillow is not installed")
    rng = np.random.default_rng(0)
    pixels = (rng.random((30, 40, 3)) * 255).astype(np.uint8)
    pil.fromarray(pixels).save(tmp_path / "photo.png")
    img = load_img(tmp_path / "photo.png")
    np.testing.assert_array_equal(img_to_array(img), pixels.astype(np.float32))
    assert img_to_array(load_img(tmp_path / "photo.png", target_size=(15, 20))).shape == (15, 20, 3)
    assert img_to_array(load_img(tmp_path / "photo.png", color_mode="grayscale")).shape == (30, 40, 1)
    back = img_to_array(array_to_img(pixels / 255.0 * 2 - 1))  # scaled from [-1, 1] to [0, 255]
    assert np.abs(back - pixels).max() <= 1.0
    np.testing.assert_array_equal(img_to_array(array_to_img(pixels, scale=False)), pixels)
    with pytest.raises(ValueError, match="color_mode"):
        load_img(tmp_path / "photo.png", color_mode="cmyk")
    with pytest.raises(ValueError, match="array_to_img"):
        array_to_img(np.zeros((4, 4, 2)))


def test_image_file_helpers_match_keras(tmp_path, tf):
    pil = pytest.importorskip("PIL.Image", reason="Pillow is not installed")
    keras_utils = tf.keras.utils
    pixels = (np.random.default_rng(1).random((25, 33, 3)) * 255).astype(np.uint8)
    pil.fromarray(pixels).save(tmp_path / "photo.png")
    for kwargs in ({}, dict(target_size=(12, 20)), dict(target_size=(40, 50), interpolation="bilinear"),
                   dict(color_mode="grayscale")):
        expected = keras_utils.img_to_array(keras_utils.load_img(tmp_path / "photo.png", **kwargs))
        np.testing.assert_array_equal(img_to_array(load_img(tmp_path / "photo.png", **kwargs)), expected)
    x = np.random.default_rng(2).standard_normal((6, 7, 3))
    expected = keras_utils.img_to_array(keras_utils.array_to_img(x))
    np.testing.assert_array_equal(img_to_array(array_to_img(x)), expected)


def test_affine_transform_output_shape_resizes_as_scipy():
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    from fastconv.image import affine_transform

    img = np.random.default_rng(0).random((8, 6)).astype(np.float64)
    m = np.array([[8 / 32, 0, 0.5 * 8 / 32 - 0.5], [0, 6 / 24, 0.5 * 6 / 24 - 0.5]])
    out = affine_transform(img, m, order=1, fill_mode="nearest", output_shape=(32, 24))
    expected = scipy_ndimage.affine_transform(img, m[:, :2], offset=m[:, 2], output_shape=(32, 24), order=1,
                                              mode="nearest")
    assert out.shape == (32, 24)
    np.testing.assert_allclose(out, expected, atol=1e-12)
    with pytest.raises(TypeError, match="output_shape must be two ints"):
        affine_transform(img, m, output_shape=(3.5, 2))


@pytest.mark.parametrize("fill_mode", sorted(FILL_MODES))
def test_images_without_pixels_warp_to_the_fill_value(fill_mode):
    """An empty input image has no pixel to read: every output pixel is the fill (the kernel
    used to read out of bounds and return uninitialised memory)."""
    empty = np.zeros((2, 0, 5, 3), np.float32)
    out = affine_transform(empty, np.eye(3), fill_mode=fill_mode, cval=7.0, output_shape=(4, 5))
    assert out.shape == (2, 4, 5, 3) and out.dtype == np.float32
    assert np.all(out == 7.0)
    assert affine_transform(empty, np.eye(3), fill_mode=fill_mode).shape == (2, 0, 5, 3)
