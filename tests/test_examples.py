"""The lecture's example scripts (examples/), run headless into a temporary folder; each test
checks the numbers the script computes, not only that it ran."""
import importlib.util
import os

import numpy as np
import pytest

from fastconv import reference as ref

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")

pytest.importorskip("matplotlib", reason="the examples draw figures with matplotlib")


def run(name, tmp_path, *args):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / name
    result = module.main(["--out", str(out), *args])
    return result, out


def test_image_as_array(tmp_path):
    pytest.importorskip("skimage", reason="the default photograph comes with scikit-image")
    result, out = run("01_image_as_array", tmp_path)
    assert result["shape"] == (427, 640, 3) and result["dtype"] == "uint8"
    np.testing.assert_allclose(result["channel_means"], result["image"].reshape(-1, 3).mean(axis=0))
    np.testing.assert_allclose(result["channel_means"], [52.3, 61.3, 82.3], atol=1.0)  # a dark sky, blue
    assert (out / "channels.png").stat().st_size > 0 and (out / "histograms.png").exists()


def test_convolution_by_hand_gives_the_lecture_tables(tmp_path):
    result, out = run("02_convolution_by_hand", tmp_path)
    np.testing.assert_array_equal(result["tables"]["vertical"],
                                  [[0, 2, 0, 2, 0], [0, 2, 0, 2, 0], [1, 1, 0, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1]])
    np.testing.assert_array_equal(result["tables"]["bottom_row"],
                                  [[1, 1, 2, 1, 1], [0, 0, 0, 0, 0], [1, 1, 0, 1, 1], [1, 2, 3, 2, 1], [0, 0, 0, 0, 0]])
    assert result["by_hand"] == result["tables"]["vertical"][2, 0] == 1
    assert (out / "smiley.png").exists()


def test_photo_vertical_filter(tmp_path):
    pytest.importorskip("skimage", reason="the default photograph comes with scikit-image")
    result, _ = run("03_photo_vertical_filter", tmp_path)
    photo, maps = result["photo"], result["maps"]
    assert maps.shape == (1,) + photo.shape + (2,) and maps.dtype == np.float32
    np.testing.assert_allclose(maps, result["reference"], atol=1e-5)
    # the vertical line sums each pixel with the ones above and below it
    np.testing.assert_allclose(maps[0, 100, 200, 0], photo[99:102, 200].sum(), rtol=1e-6)


def test_strides(tmp_path):
    result, _ = run("04_strides", tmp_path)
    outputs = result["outputs"]
    assert {k: v.shape for k, v in outputs.items()} == {(1, "SAME"): (5, 5), (2, "SAME"): (3, 3),
                                                         (1, "VALID"): (3, 3), (2, "VALID"): (2, 2)}
    np.testing.assert_array_equal(outputs[(2, "SAME")], [[0, 0, 0], [1, 0, 1], [1, 1, 1]])
    np.testing.assert_array_equal(outputs[(2, "VALID")], outputs[(1, "VALID")][::2, ::2])


def test_feature_maps(tmp_path):
    pytest.importorskip("skimage", reason="the default photograph comes with scikit-image")
    spec = importlib.util.spec_from_file_location("fm", os.path.join(EXAMPLES, "05_feature_maps.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--out", str(tmp_path)])
    expected = np.maximum(ref.conv2d(result["photo"], module.FILTERS, (1, 1), "SAME"), 0)
    np.testing.assert_allclose(result["maps"], expected, atol=1e-5)
    assert result["deeper"].shape == (1, 214, 320, 8) and result["deeper"].min() >= 0
    for name in ("filters.png", "feature_maps.png", "second_layer_maps.png"):
        assert (tmp_path / name).exists()


def test_pooling(tmp_path):
    pytest.importorskip("skimage", reason="the default photograph comes with scikit-image")
    result, _ = run("06_pooling", tmp_path)
    np.testing.assert_array_equal(result["max_table"], [[6, 8], [3, 4]])
    np.testing.assert_array_equal(result["avg_table"], [[3.25, 5.25], [2, 2]])
    maps = result["maps"]
    assert result["pooled_max"].shape == (1, maps.shape[1] // 2, maps.shape[2] // 2, 4)
    np.testing.assert_allclose(result["pooled_avg"], ref.avg_pool2d(maps, (2, 2), (2, 2), "VALID"), atol=1e-6)


def test_augmentation_makes_ten_images(tmp_path):
    pytest.importorskip("skimage", reason="the default photograph comes with scikit-image")
    result, out = run("07_augmentation", tmp_path)
    aug, img = result["augmented"], result["image"]
    assert aug.shape == (10,) + img.shape
    assert 0 <= aug.min() and aug.max() <= 1
    assert all(not np.allclose(a, img) for a in aug)                      # every copy is transformed
    np.testing.assert_array_equal(aug, run("07_augmentation", tmp_path)[0]["augmented"])  # seeded
    assert (out / "augmented.png").exists()
