"""Saving and loading models and weights in a format that is data only.

A saved model is a zip file holding
- ``metadata.json``: the format name and version;
- ``config.json``: the architecture (the layers' get_config) and the compile arguments;
- ``model.weights.npz``: the weights, in the order of ``model.weights``;
- ``optimizer.npz``: the optimizer's iteration count and state (when it has been trained).
Loading parses JSON and reads the arrays with ``allow_pickle=False``: no code from the file runs
(unlike pickle).  The file is fastconv's own, not Keras's ``.keras`` format (which stores its
weights in HDF5).  ``save_weights`` writes the .npz part alone.
"""
import io
import json
import os
import zipfile

import numpy as np

from fastconv.keras import losses, metrics, optimizers
from fastconv.keras.layers import deserialize, serialize

FORMAT = "fastconv.keras"
VERSION = 1


def _check_overwrite(filepath, overwrite):
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath} exists and overwrite=False")


def _npz_bytes(arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **{f"a{i:05d}": np.asarray(a) for i, a in enumerate(arrays)})
    return buffer.getvalue()


def _read_npz(data):
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return [npz[f"a{i:05d}"] for i in range(len(npz.files))]


def _compile_config(model):
    if not model.compiled:
        return None
    return {"optimizer": optimizers.serialize(model.optimizer),
            "loss": None if model.loss is None else losses.serialize(model.loss),
            "metrics": [metrics.serialize(m) for m in model._metric_identifiers]}


def save_model(model, filepath, overwrite=True):
    filepath = os.fspath(filepath)
    _check_overwrite(filepath, overwrite)
    if not model.built:
        raise ValueError(f'Model "{model.name}" is not built yet (it has no input shape): call it on data or give '
                         "its first layer an input_shape before saving")
    weights = model.weights
    config = {"model": serialize(model), "compile": _compile_config(model),
              "weights": [{"path": w.path, "shape": list(w.shape), "dtype": str(w.dtype)} for w in weights]}
    with zipfile.ZipFile(filepath, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.json", json.dumps({"format": FORMAT, "version": VERSION}))
        zf.writestr("config.json", json.dumps(config, indent=1))
        zf.writestr("model.weights.npz", _npz_bytes([w.value for w in weights]))
        optimizer = model.optimizer if model.compiled else None
        if optimizer is not None and optimizer.built:
            trainable = model.trainable_weights
            zf.writestr("optimizer.npz", _npz_bytes([np.array(optimizer.iterations, dtype=np.int64)]
                                                    + optimizer.state_arrays(trainable)))


def load_model(filepath, custom_objects=None, compile=True):
    filepath = os.fspath(filepath)
    try:
        zf = zipfile.ZipFile(filepath)
    except zipfile.BadZipFile:
        raise ValueError(f"load_model: {filepath} is not a model saved by fastconv.keras (model.save); Keras's "
                         ".keras and .h5 files cannot be read") from None
    with zf:
        names = set(zf.namelist())
        if "metadata.json" not in names or json.loads(zf.read("metadata.json")).get("format") != FORMAT:
            raise ValueError(f"load_model: {filepath} is not a model saved by fastconv.keras (model.save)")
        config = json.loads(zf.read("config.json"))
        model = deserialize(config["model"], custom_objects)
        _assign(model, _read_npz(zf.read("model.weights.npz")), filepath)
        compile_config = config.get("compile")
        if compile and compile_config is not None:
            model.compile(optimizer=optimizers.deserialize(compile_config["optimizer"]),
                          loss=None if compile_config["loss"] is None else losses.deserialize(compile_config["loss"]),
                          metrics=[m if isinstance(m, str) else metrics.get(m) for m in compile_config["metrics"]])
            if "optimizer.npz" in names:
                arrays = _read_npz(zf.read("optimizer.npz"))
                model.optimizer.load_state_arrays(model.trainable_weights, int(arrays[0]), arrays[1:])
    return model


def _assign(model, arrays, filepath):
    own = model.weights
    if len(arrays) != len(own):
        raise ValueError(f'{filepath} holds {len(arrays)} weights but model "{model.name}" has {len(own)}')
    for variable, value in zip(own, arrays):
        if value.shape != variable.shape:
            raise ValueError(f"{filepath}: weight {variable.path} has shape {variable.shape} in the model but "
                             f"{value.shape} in the file")
    for variable, value in zip(own, arrays):
        variable.assign(value)


def save_weights(model, filepath, overwrite=True):
    filepath = os.fspath(filepath)
    _check_overwrite(filepath, overwrite)
    # Written through a file object so that NumPy keeps the name as given (no ".npz" appended).
    with open(filepath, "wb") as f:
        f.write(_npz_bytes([w.value for w in model.weights]))


def load_weights(model, filepath):
    filepath = os.fspath(filepath)
    with open(filepath, "rb") as f:
        data = f.read()
    try:
        arrays = _read_npz(data)
    except (ValueError, OSError, zipfile.BadZipFile):
        raise ValueError(f"load_weights: {filepath} is not a weights file written by fastconv.keras "
                         "(model.save_weights)") from None
    _assign(model, arrays, filepath)
