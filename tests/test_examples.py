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


def test_malaria_cnn_on_synthetic_cells(tmp_path, monkeypatch):
    """The end-to-end example on synthetic cells (no data needed): the pipeline's numbers agree."""
    from fastconv.keras.models import load_model

    monkeypatch.delenv("FASTCONV_MALARIA_DIR", raising=False)
    from fastconv.examples import malaria as job

    out = tmp_path / "malaria"
    result = job.main(["--limit", "600", "--image-size", "40", "--epochs", "20", "--out", str(out),
                       "--save", str(out / "model.keras"), "--verbose", "0", "--seed", "1"])
    assert result["source"].startswith("SYNTHETIC")
    assert result["n_train"] + result["n_test"] == 600
    assert result["accuracy"] == pytest.approx(np.mean(result["y_pred"] == result["y_test"]))
    assert result["accuracy"] > 0.75          # synthetic cells are easy: a trained model must separate them
    history = result["history"]
    assert history["loss"][-1] < history["loss"][0]
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert result["model"].count_params() == 896 + 18496 + (9 * 9 * 64 + 1)
    restored = load_model(str(out / "model.keras"))
    x = np.random.default_rng(0).random((3, 40, 40, 3), dtype=np.float32)
    np.testing.assert_allclose(restored.predict(x, verbose=0), result["model"].predict(x, verbose=0), rtol=1e-6)
    for name in ("model.png", "cells.png", "history.png", "confusion_matrix.png", "filters.png", "feature_maps.png"):
        assert (out / name).stat().st_size > 0


def test_malaria_cnn_on_real_cells_keeps_slides_apart(tmp_path):
    from fastconv.datasets import malaria

    try:
        data_dir = malaria.default_data_dir()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    if data_dir is None:
        pytest.skip("the real malaria images are not here (set FASTCONV_MALARIA_DIR or put them in ../shared/malaria)")
    result, _ = run("08_malaria_cnn", tmp_path, "--limit", "400", "--epochs", "2", "--image-size", "48", "--no-figures")
    assert result["source"].startswith("real cell images")
    assert result["n_train"] + result["n_test"] == 400
    assert 0.0 <= result["accuracy"] <= 1.0 and len(result["history"]["loss"]) == 2


def test_lenet5_on_digits_reaches_97_percent(tmp_path):
    pytest.importorskip("sklearn", reason="the digits come with scikit-learn")
    result, out = run("09_lenet5_digits", tmp_path, "--verbose", "0")
    assert result["accuracy"] >= 0.97
    assert result["model"].count_params() == 81194
    assert (out / "confusion_matrix.png").exists()


def test_lenet5_with_sparse_labels(tmp_path):
    pytest.importorskip("sklearn", reason="the digits come with scikit-learn")
    result, _ = run("09_lenet5_digits", tmp_path, "--verbose", "0", "--epochs", "3",
                    "--loss", "sparse_categorical_crossentropy")
    assert result["accuracy"] > 0.5 and len(result["history"]["loss"]) == 3


def alexnet_param_counts():
    """Per layer, by the formulas: conv (kh * kw * cin + 1) * filters, dense (inputs + 1) * units."""
    convs = [(11, 3, 96), (5, 96, 256), (3, 256, 384), (3, 384, 384), (3, 384, 256)]
    dense = [(6 * 6 * 256, 4096), (4096, 4096), (4096, 1000)]
    return [(k * k * cin + 1) * cout for k, cin, cout in convs] + [(n + 1) * m for n, m in dense]


def test_alexnet_summary_matches_keras_counts(tmp_path):
    result, out = run("10_alexnet_summary", tmp_path, "--batch", "1")
    model = result["model"]
    counts = [layer.count_params() for layer in model.layers if layer.count_params()]
    assert counts == alexnet_param_counts()
    assert result["params"] == sum(alexnet_param_counts()) == 62378344
    assert "Total params: 62,378,344" in result["summary"]
    assert result["probabilities"].shape == (1, 1000)
    np.testing.assert_allclose(result["probabilities"].sum(axis=1), 1, rtol=1e-5)
    assert (out / "alexnet.png").exists()


def test_alexnet_summary_matches_keras_text(tf, tmp_path):
    """The same code on tensorflow.keras prints the same layers, shapes and counts."""
    spec = importlib.util.spec_from_file_location("alexnet", os.path.join(EXAMPLES, "10_alexnet_summary.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from fastconv.keras import backend

    summaries = []
    for keras, clear in ((tf.keras, tf.keras.backend.clear_session), (None, backend.clear_session)):
        clear()
        model = module.alexnet() if keras is None else module.alexnet(keras=keras)
        lines = []
        model.summary(print_fn=lambda line, *args, lines=lines, **kwargs: lines.append(line))
        summaries.append([line for line in "\n".join(lines).splitlines() if "(" in line and "params" not in line])
    assert summaries[0] == summaries[1]
