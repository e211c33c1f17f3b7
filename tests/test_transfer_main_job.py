"""The main job's transfer learning (``python -m fastconv.examples.malaria --base NAME``) and
fastconv.examples.transfer: synthetic cells at the applications' minimum size, bases with
weights files of random weights made here (never a download), and the numbers the run prints
checked against the model it returns."""
import re

import numpy as np
import pytest

from fastconv.examples import malaria as job
from fastconv.examples import transfer
from fastconv.keras.applications import imagenet_utils
from fastconv.keras.models import load_model

SIDE = 32        # every base's minimum (Keras's min_size)
CELLS = 300      # synthetic cells come in slides of about 100: test, validation and fit slides


class _AskedFor(Exception):
    pass


@pytest.mark.parametrize("name", sorted(transfer.BASES))
def test_spec_matches_the_builder(name, monkeypatch):
    """The notop file (name and URL) the spec looks for in Keras's cache is the one the builder
    asks get_file for; the minimum size is the one the builder checks."""
    spec = transfer.BASES[name]
    asked = []

    def get_file(fname, origin, **kwargs):
        asked.append((fname, origin))
        raise _AskedFor

    monkeypatch.setattr(imagenet_utils, "get_file", get_file)
    sides = (SIDE, 96) if name == "mobilenet_v2" else (SIDE,)   # MobileNetV2's file depends on the side
    for side in sides:
        with pytest.warns(UserWarning) if name == "mobilenet_v2" and side == SIDE else _no_warning():
            with pytest.raises(_AskedFor):
                transfer.build_base(spec, side, "imagenet")
        assert asked[-1] == spec.notop_file(side)
    if name == "mobilenet_v2":
        assert asked[0][0].endswith("_1.0_224_no_top.h5") and asked[1][0].endswith("_1.0_96_no_top.h5")
    with pytest.raises(ValueError, match=f"at least {spec.min_size}x{spec.min_size}"):
        spec.builder(include_top=False, weights=None, input_shape=(spec.min_size - 1, spec.min_size, 3))
    with pytest.raises(ValueError, match=rf"base {name} \({spec.builder_name}\) needs images of at least "
                                         rf"{spec.min_size}x{spec.min_size} pixels.*image_size={spec.min_size - 1}"):
        transfer.build_base(spec, spec.min_size - 1, None)


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _run(capsys, *args):
    result = job.main(["--limit", str(CELLS), "--image-size", str(SIDE), "--epochs", "3", "--verbose", "0",
                       "--seed", "1", *args])
    return result, capsys.readouterr().out


def _printed_accuracy(out):
    match = re.search(r"test accuracy on unseen slides: (\d\.\d{4}) \((\d+)/(\d+)\)", out)
    assert match, out
    return float(match[1]), int(match[2]), int(match[3])


def _check_run(result, out, spec, weights_path, tmp_path):
    """What every --base run must satisfy: the printed accuracy is the returned model's on the
    returned test cells, the frozen layers are those of the weights file, the saved model reloads."""
    accuracy, right, total = _printed_accuracy(out)
    assert total == result["n_test"] == len(result["y_test"]) and result["n_train"] + result["n_test"] == CELLS
    assert result["n_fit"] + result["n_validation"] == result["n_train"]
    assert right == int(np.sum(result["y_pred"] == result["y_test"]))
    assert accuracy == pytest.approx(result["accuracy"], abs=5e-5) and result["accuracy"] == right / total
    model = result["model"]
    evaluated = model.evaluate(result["x_test"], result["y_test"].astype(np.float32), batch_size=100, verbose=0,
                               return_dict=True)
    assert evaluated["accuracy"] == pytest.approx(result["accuracy"], abs=1e-6)
    assert result["transfer"].accuracy == pytest.approx(result["accuracy"], abs=1e-12)

    run = result["transfer"]
    fresh = transfer.build_base(spec, SIDE, weights_path)
    # The first batch of 100 cells is enough to show the features are the file's base's.
    np.testing.assert_allclose(run.features[:100], fresh.predict(run.x[:100], batch_size=100, verbose=0), rtol=1e-5,
                               atol=1e-5)
    first = [layer.name for layer in fresh.layers].index(spec.first_unfrozen)
    for before, after in zip(fresh.layers[:first], run.base.layers[:first]):
        assert not after.trainable
        for w0, w1 in zip(before.get_weights(), after.get_weights()):
            np.testing.assert_array_equal(w0, w1, err_msg=f"frozen {after.name} moved")
    moved = False
    for before, after in zip(fresh.layers[first:], run.base.layers[first:]):
        assert after.trainable
        for w0, w1 in zip(before.non_trainable_weights, after.non_trainable_weights):
            # BatchNormalization in inference mode: its statistics do not move while fine-tuning.
            np.testing.assert_array_equal(w0.numpy(), w1.numpy(), err_msg=f"{after.name}'s statistics moved")
        moved |= any(not np.array_equal(w0.numpy(), w1.numpy())
                     for w0, w1 in zip(before.trainable_weights, after.trainable_weights))
    assert moved                                    # the fine-tuning trained the last block
    head = run.features.shape[1] + 1
    unfrozen = sum(int(np.prod(w.shape)) for layer in fresh.layers[first:] for w in layer.trainable_weights)
    assert run.trainable_params == unfrozen + head
    assert run.trainable_params + run.non_trainable_params == fresh.count_params() + head
    assert f"Trainable params: {unfrozen + head:,}" in out

    restored = load_model(str(tmp_path / "model.keras"))
    cells = result["x_test"][:20]
    np.testing.assert_allclose(restored.predict(cells, verbose=0), model.predict(cells, verbose=0),
                               rtol=1e-6, atol=1e-6)
    assert "load_model restores it: yes" in out


def test_resnet50_base_from_a_weights_file(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FASTCONV_MALARIA_DIR", raising=False)
    spec = transfer.BASES["resnet50"]
    path = str(tmp_path / "resnet50_notop.weights.h5")
    transfer.build_base(spec, SIDE, None).save_weights(path)
    capsys.readouterr()
    result, out = _run(capsys, "--base", "resnet50", "--base-weights", path, "--fine-tune-epochs", "1",
                       "--save", str(tmp_path / "model.keras"), "--no-figures")
    assert f"resnet50 base weights from {path}" in out and "RANDOM" not in out
    assert not result["transfer"].pretrained and result["transfer"].features.shape == (CELLS, 2048)
    _check_run(result, out, spec, path, tmp_path)


def test_mobilenet_v2_base_from_a_legacy_h5_file(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FASTCONV_MALARIA_DIR", raising=False)
    spec = transfer.BASES["mobilenet_v2"]
    path = str(tmp_path / "mobilenet_v2_notop.h5")
    transfer.build_base(spec, SIDE, None).save_weights(path)
    capsys.readouterr()
    result, out = _run(capsys, "--base", "mobilenet_v2", "--base-weights", path, "--fine-tune-epochs", "1",
                       "--save", str(tmp_path / "model.keras"), "--out", str(tmp_path / "figures"))
    assert f"mobilenet_v2 base with weights from {path}" in out
    assert len(result["transfer"].fine_tune_history["loss"]) == 1
    _check_run(result, out, spec, path, tmp_path)
    for name in ("cells.png", "history.png", "confusion_matrix.png"):
        assert (tmp_path / "figures" / name).stat().st_size > 0


def test_auto_weights_without_keras_cache_say_random(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FASTCONV_MALARIA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty_keras_home"))
    result, out = _run(capsys, "--base", "densenet121", "--fine-tune-epochs", "0", "--no-figures")
    run = result["transfer"]
    assert run.weights is None and not run.pretrained and run.fine_tune_history == {}
    lines = out.splitlines()
    assert any(line.startswith("RANDOM base (densenet121), NOT pre-trained: Keras's "
                               "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5 is not in "
                               f"{tmp_path / 'empty_keras_home' / 'models'}") for line in lines)
    assert "densenet121 base with RANDOM weights, NOT pre-trained" in out
    # No fine-tuning: the test accuracy is the new classifier's on the frozen base.
    assert result["accuracy"] == pytest.approx(run.frozen_accuracy, abs=1e-12)
    assert _printed_accuracy(out)[0] == pytest.approx(result["accuracy"], abs=5e-5)


def test_auto_weights_take_keras_cached_file(tmp_path, monkeypatch):
    """A notop file in Keras's cache is what ``auto`` loads (MobileNetV2's file, which Keras
    checks without a hash, stands in for Keras's download)."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    spec = transfer.BASES["mobilenet_v2"]
    fname, _ = spec.notop_file(SIDE)
    (tmp_path / "models").mkdir()
    saved = transfer.build_base(spec, SIDE, None)
    saved.save_weights(str(tmp_path / "models" / fname))
    weights, source, pretrained = transfer.resolve_weights(spec, "auto", SIDE)
    assert weights == "imagenet" and pretrained and source.startswith(f"ImageNet mobilenet_v2 base: Keras's {fname}")
    with pytest.warns(UserWarning, match="224"):
        loaded = transfer.build_base(spec, SIDE, weights)
    for a, b in zip(saved.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    weights, source, pretrained = transfer.resolve_weights(spec, "none", SIDE)
    assert weights is None and not pretrained and source.startswith("RANDOM base (mobilenet_v2), NOT pre-trained")


@pytest.mark.parametrize("args, message", [
    (["--base", "vgg16", "--image-size", "31"], r"base vgg16 \(VGG16\) needs images of at least 32x32 pixels"),
    (["--base-weights", "none"], "--base-weights apply to transfer learning only: give --base too"),
    (["--fine-tune-epochs", "1"], "--fine-tune-epochs apply to transfer learning only"),
    (["--base", "resnet50", "--augment"], "--augment is not supported with --base"),
    (["--base", "resnet50", "--fine-tune-epochs", "-1"], "--fine-tune-epochs must be >= 0"),
    (["--base", "resnet18"], "invalid choice: 'resnet18'"),
])
def test_main_job_refuses_bad_arguments(args, message, capsys):
    with pytest.raises(SystemExit):
        job.parse_args(args)
    assert re.search(message, capsys.readouterr().err)


def test_missing_weights_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no file at"):
        transfer.resolve_weights(transfer.BASES["resnet50"], str(tmp_path / "absent.h5"), SIDE)


def test_preprocessing_is_keras(keras):
    """Each base's cells as Keras's own preprocess_input gives them (pixels 0..255)."""
    cells = np.random.default_rng(0).random((4, SIDE, SIDE, 3), dtype=np.float32)
    for spec in transfer.BASES.values():
        theirs = getattr(keras.applications, spec.module.__name__.rsplit(".", 1)[-1]).preprocess_input
        np.testing.assert_allclose(transfer.preprocess(spec, cells), np.asarray(theirs(cells * 255.0)),
                                   rtol=1e-6, atol=1e-4, err_msg=spec.name)


def test_efficientnetb0_base_from_a_file_keras_saved(keras, tmp_path, capsys, monkeypatch):
    """A weights file saved by Keras: the run's features are Keras's base's on the same cells."""
    monkeypatch.delenv("FASTCONV_MALARIA_DIR", raising=False)
    theirs = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(SIDE, SIDE, 3),
                                               pooling="avg")
    path = str(tmp_path / "efficientnetb0_notop.weights.h5")
    theirs.save_weights(path)
    result, out = _run(capsys, "--base", "efficientnetb0", "--base-weights", path, "--fine-tune-epochs", "0",
                       "--no-figures")
    run = result["transfer"]
    assert f"efficientnetb0 base with weights from {path}" in out
    np.testing.assert_allclose(run.features[:100], theirs.predict(run.x[:100], batch_size=100, verbose=0), rtol=1e-4,
                               atol=1e-4)
    assert _printed_accuracy(out)[0] == pytest.approx(result["accuracy"], abs=5e-5)
