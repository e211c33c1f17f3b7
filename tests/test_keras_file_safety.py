"""Files that are cut short, forged or hostile: saving never leaves a half-written file, loading
checks everything before it changes anything, bounds sizes before reading or allocating, runs
no code, and reports every broken file as a ValueError naming the file and the entry."""
import json
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zipfile

import h5py
import numpy as np
import pytest

import fastconv.keras as fk
from _helpers import child_env
from fastconv.keras import layers as L


def _model(units=3):
    model = fk.Sequential([fk.Input((6, 6, 2)), L.Conv2D(3, 3, activation="relu", name="conv2d"),
                           L.BatchNormalization(name="batch_normalization"), L.Flatten(), L.Dense(units, name="dense")])
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).random((4, 6, 6, 2), dtype=np.float32)
    model.fit(x, np.zeros((4, units), np.float32), epochs=1, verbose=0)
    return model


def _entries(path):
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _write_zip(path, entries):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)


def _with_config(src, dst, edit):
    entries = _entries(src)
    config = json.loads(entries["config.json"])
    edit(config)
    entries["config.json"] = json.dumps(config)
    _write_zip(dst, entries)


def _refused(path, match, load=fk.models.load_model, **kwargs):
    with pytest.raises(ValueError, match=match) as info:
        load(path, **kwargs)
    assert str(path) in str(info.value)


# ------------------------------------------------------------------------------- nothing lost
_SAVER = textwrap.dedent("""
    import sys
    import numpy as np
    import fastconv.keras as fk
    from fastconv.keras import layers as L
    model = fk.Sequential([fk.Input((512,)), L.Dense(1024), L.Dense(512)])
    round = 0
    while True:
        for layer in model.layers:   # every weight of round n holds n: a mixed file would show
            for w in layer.weights:
                w.assign(np.full(w.shape, round, np.float32))
        model.save(sys.argv[1])
        model.save_weights(sys.argv[2])
        round += 1
        print(round, flush=True)
""")


def test_save_killed_at_random_moments_leaves_a_loadable_file(tmp_path):
    model_path, weights_path = tmp_path / "m.keras", tmp_path / "w.weights.h5"
    rng = np.random.default_rng(0)
    reader = fk.Sequential([fk.Input((512,)), L.Dense(1024), L.Dense(512)])
    for _ in range(2):
        # from tmp_path: ``python -c`` puts its working directory first on the path
        child = subprocess.Popen([sys.executable, "-c", _SAVER, str(model_path), str(weights_path)],
                                 stdout=subprocess.PIPE, env=child_env(), cwd=tmp_path)
        try:
            assert child.stdout.readline().strip()   # one complete save of each file
            time.sleep(rng.uniform(0.0, 0.3))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        loaded = fk.models.load_model(model_path)
        values = np.unique(np.concatenate([w.ravel() for w in loaded.get_weights()]))
        assert values.size == 1   # all weights from one and the same save
        reader.load_weights(weights_path)
        assert np.unique(np.concatenate([w.ravel() for w in reader.get_weights()])).size == 1


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    model = _model()
    path = tmp_path / "m.keras"
    model.save(path)
    before = path.read_bytes()

    def broken_writestr(self, name, data, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", broken_writestr)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]   # no temporary file left


def test_a_bad_file_leaves_the_model_as_it_was(tmp_path):
    model = _model()
    model.save_weights(tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "w.weights.h5", "a") as f:   # the last layer's bias of another size
        del f["layers/dense/vars/1"]
        f["layers/dense/vars/1"] = np.zeros(7, np.float32)
    other = _model()
    before = other.get_weights()
    state = [a.copy() for _, a in other.optimizer.variables]
    _refused(tmp_path / "w.weights.h5", r"layers/dense/vars/1: has shape \(7,\); the model expects \(3,\)",
             load=other.load_weights)
    for a, b in zip(other.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    for (_, a), b in zip(other.optimizer.variables, state):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------- hostile zip files
def test_zip_bomb_is_refused_with_bounded_memory(tmp_path):
    model = _model()
    model.save(tmp_path / "m.keras")
    entries = _entries(tmp_path / "m.keras")
    bomb = tmp_path / "bomb.keras"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.json", entries["metadata.json"])
        zf.writestr("config.json", b" " * (80 << 20))   # 80 MB of blanks, under 100 kB stored
        zf.writestr("model.weights.h5", entries["model.weights.h5"])
    assert bomb.stat().st_size < 2 << 20
    tracemalloc.start()
    try:
        _refused(bomb, r"entry 'config.json' declares 83886080 bytes; at most 67108864 are accepted")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_zip_structure_is_checked(tmp_path):
    model = _model()
    model.save(tmp_path / "m.keras")
    entries = _entries(tmp_path / "m.keras")
    _write_zip(tmp_path / "many.keras", {**entries, **{f"x{i}": b"" for i in range(100)}})
    _refused(tmp_path / "many.keras", "declares 103 entries; at most 64 are accepted")
    _write_zip(tmp_path / "extra.keras", {**entries, "../evil.py": b"print('hi')"})
    _refused(tmp_path / "extra.keras", r"entries \['../evil.py'\] are not part of a Keras model file")
    with pytest.warns(UserWarning, match="Duplicate name"):
        with zipfile.ZipFile(tmp_path / "twice.keras", "w") as zf:
            for name, data in [*entries.items(), ("config.json", entries["config.json"])]:
                zf.writestr(name, data)
    _refused(tmp_path / "twice.keras", r"several entries named \['config.json'\]")
    _write_zip(tmp_path / "noweights.keras", {k: v for k, v in entries.items() if k != "model.weights.h5"})
    _refused(tmp_path / "noweights.keras", "has no model.weights.h5")
    _write_zip(tmp_path / "future.keras", {**entries, "metadata.json": json.dumps({"keras_version": "4.0.0"})})
    _refused(tmp_path / "future.keras", "keras_version '4.0.0' is not a format fastconv.keras reads")
    _write_zip(tmp_path / "old_v2.keras", {**entries, "metadata.json": json.dumps({"format": "fastconv.keras",
                                                                                  "version": 2})})
    _refused(tmp_path / "old_v2.keras", "fastconv.keras format version 2 is not one this version reads")
    _write_zip(tmp_path / "deep.keras", {**entries, "config.json": "[" * 100_000 + "]" * 100_000})
    _refused(tmp_path / "deep.keras", "config.json: not valid JSON")


# ------------------------------------------------------------------------------ hostile arrays
@pytest.mark.parametrize("value, match", [
    (np.zeros(3, np.complex64), "holds dtype complex64; an array of real numbers is expected"),
    (np.array([b"abc"] * 3), r"holds dtype \|S3; an array of real numbers is expected"),
    (np.zeros(3, bool), "holds dtype bool; an array of real numbers is expected"),
    (np.full(3, 2 ** 30, np.int64), r"holds integers up to 1073741824; a float weight takes integers up to 2\*\*24"),
    (np.zeros((3, 1), np.float32), r"has shape \(3, 1\); the model expects \(3,\)"),
])
def test_only_float_arrays_of_the_declared_shapes(tmp_path, value, match):
    model = _model()
    model.save_weights(tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "w.weights.h5", "a") as f:
        del f["layers/dense/vars/1"]
        f["layers/dense/vars/1"] = value
    _refused(tmp_path / "w.weights.h5", "layers/dense/vars/1: " + match, load=_model().load_weights)


def test_links_out_of_the_file_are_refused(tmp_path):
    model = _model()
    model.save_weights(tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "w.weights.h5", "a") as f:
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = h5py.ExternalLink("/etc/passwd", "/x")
    _refused(tmp_path / "w.weights.h5", "layers/dense/vars/0: is a ExternalLink", load=_model().load_weights)
    with h5py.File(tmp_path / "w.weights.h5", "a") as f:
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = h5py.SoftLink("/layers/conv2d/vars/0")
    _refused(tmp_path / "w.weights.h5", "layers/dense/vars/0: is a SoftLink", load=_model().load_weights)


def test_only_lossless_built_in_hdf5_filters(tmp_path):
    model = _model()
    model.save_weights(tmp_path / "w.weights.h5")
    kernel = model.get_layer("dense").kernel.numpy()
    with h5py.File(tmp_path / "w.weights.h5", "a") as f:
        del f["layers/dense/vars/0"]
        f.create_dataset("layers/dense/vars/0", data=kernel, compression="gzip", shuffle=True)
    other = _model()
    other.load_weights(tmp_path / "w.weights.h5")
    np.testing.assert_array_equal(other.get_layer("dense").kernel.numpy(), kernel)
    with h5py.File(tmp_path / "w.weights.h5", "a") as f:
        del f["layers/dense/vars/0"]
        f.create_dataset("layers/dense/vars/0", data=kernel, chunks=kernel.shape, scaleoffset=2)
    _refused(tmp_path / "w.weights.h5", r"layers/dense/vars/0: is stored through HDF5 filter\(s\) \[6\]",
             load=other.load_weights)


@pytest.mark.parametrize("index, value, match", [
    (0, np.array(-1, np.int64), "the optimizer's iteration count is -1"),
    (0, np.array(1.5, np.float32), "holds dtype float32; an integer array is expected"),
    (1, np.array(np.nan, np.float32), "the optimizer's learning_rate is nan; it must be finite"),
    (1, np.array(-0.1, np.float32), "the learning rate is -0.1"),
])
def test_optimizer_state_is_checked(tmp_path, index, value, match):
    model = _model()
    model.save(tmp_path / "m.keras")
    entries = _entries(tmp_path / "m.keras")
    (tmp_path / "w.h5").write_bytes(entries["model.weights.h5"])
    with h5py.File(tmp_path / "w.h5", "a") as f:
        del f[f"optimizer/vars/{index}"]
        f[f"optimizer/vars/{index}"] = value
    _write_zip(tmp_path / "bad.keras", {**entries, "model.weights.h5": (tmp_path / "w.h5").read_bytes()})
    _refused(tmp_path / "bad.keras", f"optimizer/vars/{index}: .*{match}")


# ----------------------------------------------------------------------------- hostile configs
def _layer(config, class_name):
    return next(entry for entry in config["config"]["layers"] if entry["class_name"] == class_name)["config"]


@pytest.mark.parametrize("edit, match", [
    (lambda c: _layer(c, "Dense").update(units=10 ** 9),
     r'Layer "dense": weight kernel of shape \(48, 1000000000\) would take 192000000000 bytes, more than the file '
     "being loaded holds"),
    (lambda c: _layer(c, "Dense").update(units=-3), "units must be a positive integer"),
    (lambda c: _layer(c, "InputLayer").update(batch_shape=[None, 10 ** 6, 10 ** 6, 2]),
     "asks for more than 2147483648 values per sample"),
    (lambda c: _layer(c, "InputLayer").update(batch_shape=[None, -6, 6, 2]), "sizes must be positive integers"),
    (lambda c: c["config"]["layers"][2].update(class_name="Renormalizer"),
     "layer 'batch_normalization' has class 'Renormalizer', which fastconv.keras does not know"),
    (lambda c: _layer(c, "BatchNormalization").update(renorm=True),
     "BatchNormalization does not implement renorm=True"),
    (lambda c: c["config"]["layers"][3].update(class_name="Lambda"), "is a Lambda layer"),
    (lambda c: _layer(c, "Conv2D").update(kernel_size="big"), "layer 'conv2d' \\(Conv2D\\)"),
    (lambda c: c["config"].update(layers={"a": 1}), "layers must be a list"),
])
def test_configurations_are_validated(tmp_path, edit, match):
    model = _model()
    model.save(tmp_path / "m.keras")
    _with_config(tmp_path / "m.keras", tmp_path / "bad.keras", edit)
    tracemalloc.start()
    try:
        _refused(tmp_path / "bad.keras", "config.json: .*" + match)
        assert tracemalloc.get_traced_memory()[1] < 64 << 20   # refused before any absurd allocation
    finally:
        tracemalloc.stop()


def test_lambda_runs_only_when_trusted(tmp_path):
    inp = fk.Input((3,))
    model = fk.Model(inp, L.Lambda(lambda t: t * 2.0)(L.Dense(2)(inp)))
    model.save(tmp_path / "lambda.keras")
    _refused(tmp_path / "lambda.keras", "is a Lambda layer, whose function is Python code stored in the file")
    loaded = fk.models.load_model(tmp_path / "lambda.keras", safe_mode=False)
    x = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


# --------------------------------------------------------------------------- broken, at random
_ALLOWED = ValueError


def _fuzz(path, load, rng, rounds):
    data = path.read_bytes()
    broken = path.with_name("broken" + "".join(path.suffixes))
    cuts = rng.integers(0, len(data), rounds)
    for i, cut in enumerate(cuts):
        if i % 2:
            mutated = data[:cut]
        else:
            mutated = bytearray(data)
            for at in rng.integers(0, len(data), 8):
                mutated[at] = rng.integers(0, 256)
        broken.write_bytes(bytes(mutated))
        try:
            load(broken)
        except _ALLOWED as exc:
            assert str(broken) in str(exc), exc
        except Exception as exc:   # noqa: BLE001 - any other exception is the failure tested for
            pytest.fail(f"{type(exc).__name__} instead of a ValueError for a broken {path.name} "
                        f"(round {i}, cut/flip near byte {cut}): {exc}")


@pytest.mark.parametrize("name", ["m.keras", "deflated.keras", "m.h5", "w.weights.h5", "w.h5"])
def test_broken_files_raise_value_errors_naming_the_file(tmp_path, name):
    model = _model()
    path = tmp_path / name
    (model.save_weights if name.startswith("w") else model.save)(path)
    if name == "deflated.keras":   # compressed entries: broken data reaches zlib
        entries = _entries(path)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for entry, data in entries.items():
                zf.writestr(entry, data)
    load = _model().load_weights if name.startswith("w") else fk.models.load_model
    _fuzz(path, load, np.random.default_rng(len(name)), rounds=24)


def test_garbage_in_any_config_value_is_a_value_error(tmp_path):
    model = _model()
    model.save(tmp_path / "m.keras")
    entries = _entries(tmp_path / "m.keras")
    config = json.loads(entries["config.json"])
    leaves = []

    def walk(node, path):
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else None
        if items is None:
            leaves.append(path)
            return
        for key, value in items:
            walk(value, path + [key])

    walk(config, [])
    rng = np.random.default_rng(3)
    garbage = ["x", -1, None, [], {}, 1e308, True]
    for i in rng.choice(len(leaves), size=min(40, len(leaves)), replace=False):
        mutated = json.loads(entries["config.json"])
        node = mutated
        for key in leaves[i][:-1]:
            node = node[key]
        node[leaves[i][-1]] = garbage[rng.integers(len(garbage))]
        _write_zip(tmp_path / "mutated.keras", {**entries, "config.json": json.dumps(mutated)})
        try:
            fk.models.load_model(tmp_path / "mutated.keras")
        except ValueError as exc:
            assert "mutated.keras" in str(exc)
        except Exception as exc:   # noqa: BLE001
            pytest.fail(f"{type(exc).__name__} for config.json with {leaves[i]} = {node[leaves[i][-1]]!r}: {exc}")


def test_integer_arrays_for_float_weights_load_exactly(tmp_path):
    """Keras stores some weights as integers (a Normalization's count): taken where exact."""
    model = _model()
    model.save_weights(tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "w.weights.h5", "a") as f:
        del f["layers/dense/vars/1"]
        f["layers/dense/vars/1"] = np.array([3, -2, 7], np.int64)
    other = _model()
    other.load_weights(tmp_path / "w.weights.h5")
    np.testing.assert_array_equal(other.get_layer("dense").bias.numpy(), [3.0, -2.0, 7.0])
