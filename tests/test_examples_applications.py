"""The lecture's last examples (11 residual networks, 12 a pre-trained network, 13 transfer
learning), run small and headless; each test checks the numbers the script computes."""
import importlib.util
import os

import numpy as np
import pytest

from fastconv.keras.applications import imagenet_utils

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")

pytest.importorskip("matplotlib", reason="the examples draw figures with matplotlib")


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(name, tmp_path, *args):
    out = tmp_path / name
    return load(name).main(["--out", str(out), *args]), out


def test_resnet34_block_and_summary(tf, tmp_path):
    import keras
    result, out = run("11_resnet", tmp_path, "--image-size", "32", "--batch", "1")
    assert result["identity_gap"] == 0.0   # residual branch at zero: the block passes x >= 0 through exactly
    keras.backend.clear_session()
    theirs = load("11_resnet").resnet34((32, 32, 3), keras=keras)
    assert result["params"] == theirs.count_params()
    assert "Trainable params: 21,797,672" in result["summary"]   # ResNet-34's 21.8 M (He et al., table 1)
    np.testing.assert_allclose(result["probabilities"].sum(axis=1), 1.0, rtol=1e-5)
    assert (out / "resnet34.png").stat().st_size > 0


def test_pretrained_with_a_weights_file(tmp_path, monkeypatch):
    """With a weights file (random ones, saved as Keras's legacy .h5): the top 5 are the
    decoded largest probabilities."""
    from fastconv.keras.applications import ResNet50
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty_cache"))
    path = str(tmp_path / "resnet50.h5")
    ResNet50(weights=None).save_weights(path)
    result, out = run("12_pretrained", tmp_path, "--weights", path, "--batch", "1")
    assert result["source"] == f"weights from {path}"
    probabilities = result["probabilities"]
    order = np.argsort(probabilities[0])[::-1][:5]
    index = imagenet_utils._load_class_index()
    assert [(w, n) for w, n, _ in result["top5"]] == [tuple(index[str(i)]) for i in order]
    np.testing.assert_allclose([s for _, _, s in result["top5"]], probabilities[0, order])
    assert result["images_per_second"] > 0
    assert (out / "photograph.png").stat().st_size > 0


@pytest.mark.slow
def test_pretrained_without_weights_predicts_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty_cache"))
    result, _ = run("12_pretrained", tmp_path, "--batch", "1")
    assert result["weights"] is None and result["top5"] is None
    assert "no predictions shown" in capsys.readouterr().out


def test_transfer_learning_on_malaria_cells(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty_cache"))
    result, out = run("13_transfer_learning", tmp_path, "--limit", "120", "--image-size", "32", "--epochs", "2",
                      "--batch", "30")
    assert result["base_source"].startswith("RANDOM base")   # said, not hidden
    assert result["n_train"] + result["n_test"] == len(result["features"])
    assert result["features"].shape[1] == 2048
    for key in ("frozen_accuracy", "fine_tuned_accuracy", "cnn_accuracy"):
        assert 0.0 <= result[key] <= 1.0
    base = result["base"]
    first = [layer.name for layer in base.layers].index("conv5_block3_1_conv")   # the last bottleneck block
    assert result["unfrozen_layers"] == len(base.layers) - first == 11            # its 10 layers and avg_pool
    assert not any(layer.trainable for layer in base.layers[:first])
    assert all(layer.trainable for layer in base.layers[first:])
    expected = sum(int(np.prod(w.shape)) for layer in base.layers[first:] for w in layer.trainable_weights) + 2049
    assert result["trainable"] == expected
    assert result["trainable"] + result["non_trainable"] == base.count_params() + 2049
    assert f"Trainable params: {expected:,}" in result["summary"]
    assert (out / "accuracy.png").stat().st_size > 0
