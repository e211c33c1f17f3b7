"""fastconv.plot: every figure has the expected panels, saves a PNG, and the counts are right."""
import importlib
import sys
import types

import numpy as np
import pytest

import fastconv

pytest.importorskip("matplotlib", reason="matplotlib is not installed: figures skipped")

from fastconv import plot  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _saved(path):
    return path.is_file() and path.read_bytes()[:8] == PNG_SIGNATURE


def _image_count(fig):
    return sum(len(ax.images) for ax in fig.axes)


def test_image_channels(tmp_path):
    img = np.random.default_rng(0).random((20, 30, 3)).astype(np.float32)
    fig = plot.image_channels(img, tmp_path / "channels.png")
    assert len(fig.axes) == 4 and _image_count(fig) == 4
    assert [ax.get_title() for ax in fig.axes] == ["image", "R", "G", "B"]
    np.testing.assert_array_equal(fig.axes[2].images[0].get_array(), img[..., 1])  # the green channel
    assert _saved(tmp_path / "channels.png")
    assert len(plot.image_channels(img[..., 0]).axes) == 2  # one grey channel


def test_channel_histograms(tmp_path):
    img = np.random.default_rng(1).integers(0, 256, (16, 16, 3)).astype(np.uint8)
    fig = plot.channel_histograms(img, tmp_path / "hist.png", bins=16)
    assert len(fig.axes) == 3
    for k, ax in enumerate(fig.axes):
        heights = [patch.get_height() for patch in ax.patches]
        assert len(heights) == 16 and sum(heights) == 256
        assert heights == np.histogram(img[..., k], bins=np.linspace(img.min(), img.max(), 17))[0].tolist()
    assert _saved(tmp_path / "hist.png")


def test_filters_grid(tmp_path):
    w = np.random.default_rng(2).standard_normal((3, 3, 3, 10))
    fig = plot.filters(w, tmp_path / "filters.png")
    assert len(fig.axes) == 30 and _image_count(fig) == 30
    np.testing.assert_array_equal(fig.axes[1 * 10 + 4].images[0].get_array(), w[:, :, 1, 4])  # row c, column k
    assert _saved(tmp_path / "filters.png")
    assert len(plot.filters(w, channel=2, max_filters=4).axes) == 4
    line = plot.filters(np.array([[0, 1, 0], [0, 1, 0], [0, 1, 0]]))
    assert len(line.axes) == 1 and [t.get_text() for t in line.axes[0].texts] == ["0", "1", "0"] * 3
    with pytest.raises(ValueError, match="channel 3 does not exist"):
        plot.filters(w, channel=3)


def test_feature_maps_grid(tmp_path):
    maps = np.random.default_rng(3).random((2, 12, 12, 11))
    fig = plot.feature_maps(maps, tmp_path / "maps.png", ncols=4, image_index=1)
    assert len(fig.axes) == 11 and _image_count(fig) == 11
    np.testing.assert_array_equal(fig.axes[7].images[0].get_array(), maps[1, :, :, 7])
    assert _saved(tmp_path / "maps.png")
    assert len(plot.feature_maps(maps[0], max_maps=5).axes) == 5
    with pytest.raises(ValueError, match="image_index 2"):
        plot.feature_maps(maps, image_index=2)


def test_image_grid(tmp_path):
    images = np.random.default_rng(4).random((10, 8, 8, 3))
    fig = plot.image_grid(images, tmp_path / "grid.png", titles=[f"#{k}" for k in range(10)], ncols=4)
    assert len(fig.axes) == 10 and fig.axes[9].get_title() == "#9"
    assert _saved(tmp_path / "grid.png")
    with pytest.raises(ValueError, match="3 titles for 10 images"):
        plot.image_grid(images, titles=["a", "b", "c"])


def test_history_curves(tmp_path):
    logs = {"loss": [0.9, 0.5, 0.3], "accuracy": [0.6, 0.8, 0.9], "val_loss": [1.0, 0.7, 0.6],
            "val_accuracy": [0.5, 0.7, 0.8]}
    fig = plot.history(types.SimpleNamespace(history=logs), tmp_path / "history.png")
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    lines = fig.axes[1].get_lines()
    assert [line.get_label() for line in lines] == ["training", "validation"]
    np.testing.assert_array_equal(lines[1].get_ydata(), logs["val_accuracy"])
    np.testing.assert_array_equal(lines[0].get_xdata(), [1, 2, 3])
    assert _saved(tmp_path / "history.png")
    assert len(plot.history({"loss": [1, 0.5]}).axes) == 1
    with pytest.raises(ValueError, match="no values for"):
        plot.history(logs, metrics=["auc"])


def test_confusion_matrix_counts(tmp_path):
    rng = np.random.default_rng(5)
    y_true = rng.integers(0, 3, 200)
    y_pred = np.where(rng.random(200) < 0.7, y_true, rng.integers(0, 3, 200))
    counts = plot.confusion_counts(y_true, y_pred)
    expected = np.array([[np.sum((y_true == i) & (y_pred == j)) for j in range(3)] for i in range(3)])
    np.testing.assert_array_equal(counts, expected)
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    np.testing.assert_array_equal(counts, sklearn_metrics.confusion_matrix(y_true, y_pred))

    fig = plot.confusion_matrix([0, 0, 1, 1, 1], np.array([[0], [1], [1], [1], [0]]), tmp_path / "cm.png",
                                class_names=("parasitized", "uninfected"))
    assert len(fig.axes) == 1 and _image_count(fig) == 1
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["1\n(50.0%)", "1\n(50.0%)", "1\n(33.3%)", "2\n(66.7%)"]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["parasitized", "uninfected"]
    assert fig.axes[0].get_title() == "accuracy 60.0% of 5"
    assert _saved(tmp_path / "cm.png")
    assert plot.confusion_counts([1, 1], [1, 1], num_classes=2).tolist() == [[0, 0], [0, 2]]


def test_confusion_matrix_refuses_probabilities():
    with pytest.raises(ValueError, match="threshold"):
        plot.confusion_counts([0, 1], [0.2, 0.9])
    with pytest.raises(ValueError, match="one length"):
        plot.confusion_counts([0, 1, 1], [0, 1])


def test_bad_images_are_refused():
    with pytest.raises(ValueError, match="image_channels: image must be"):
        plot.image_channels(np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="filters: weights must be"):
        plot.filters(np.zeros((3, 3, 3)))


def test_modules_import_without_matplotlib_and_pillow(monkeypatch):
    """Only the functions that draw or decode need the optional packages."""
    for name in ("matplotlib", "matplotlib.figure", "PIL", "PIL.Image"):
        monkeypatch.setitem(sys.modules, name, None)
    for name in ("fastconv.plot", "fastconv.datasets", "fastconv.datasets.malaria", "fastconv.preprocessing",
                 "fastconv.preprocessing.image"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    for name in ("plot", "datasets", "preprocessing"):  # re-imported below: restore the originals after
        monkeypatch.delattr(fastconv, name, raising=False)
    fresh_plot = importlib.import_module("fastconv.plot")
    fresh_malaria = importlib.import_module("fastconv.datasets").malaria
    fresh_image = importlib.import_module("fastconv.preprocessing.image")

    with pytest.raises(ImportError, match=r"fastconv\[examples\]"):
        fresh_plot.history({"loss": [1.0]})
    assert fresh_malaria.synthetic(2, image_size=6).images.shape == (2, 6, 6, 3)
    gen = fresh_image.ImageDataGenerator(rotation_range=10)
    assert gen.flow(np.zeros((3, 5, 5, 1)), batch_size=3).next().shape == (3, 5, 5, 1)
