"""Saving and loading models and weights in Keras's own files, safely.

- ``model.save("m.keras")``: Keras 3's native format (keras_format): a zip of metadata.json,
  config.json and model.weights.h5, which Keras 3 loads;
- ``model.save("m.h5")``: Keras's legacy HDF5 model file (legacy_h5);
- ``save_weights("w.weights.h5")``: Keras 3's weights file; ``save_weights("w.h5")``: the legacy
  HDF5 weights file of tf.keras 2 (what Keras's Applications weights are).

Loading goes by the file's content (a zip or HDF5), not its name, and reads Keras 3 and
tf.keras 2 files, and fastconv's earlier zip format.  Every save writes a temporary file next to
the target and renames it over the target once complete (atomic): a crash leaves the previous
file.  Every load validates the whole file before it assigns anything (a bad file leaves the
model as it was), bounds sizes before reading or allocating, runs no code from the file, and
reports a broken file as a ValueError naming the file and the entry.

The pieces: safe_zip and safe_h5 (reading untrusted containers), config_translation (fastconv
configurations <-> Keras's), keras_format, legacy_h5, layer_order, optimizer_state, atomic
(writing in place) and object_registration (``register_keras_serializable``).  h5py is
imported only when a Keras file is read or written.
"""
import json
import os

from fastconv.keras.saving import config_translation, keras_format, legacy_h5
from fastconv.keras.saving.atomic import check_overwrite
from fastconv.keras.saving.object_registration import (
    CustomObjectScope,
    custom_object_scope,
    get_custom_objects,
    get_registered_name,
    register_keras_serializable,
)
from fastconv.keras.saving.safe_h5 import SafeH5, is_hdf5
from fastconv.keras.saving.safe_zip import is_zip


__all__ = ["CustomObjectScope", "custom_object_scope", "get_custom_objects", "get_registered_name", "load_model",
           "load_weights", "model_from_json", "model_to_json", "register_keras_serializable", "save_model",
           "save_weights"]


def _path(filepath, what):
    try:
        return os.fspath(filepath)
    except TypeError:
        raise TypeError(f"{what}: filepath must be a str or os.PathLike; received {type(filepath).__name__}") from None


def save_model(model, filepath, overwrite=True, zipped=None, **kwargs):
    filepath = _path(filepath, "save")
    if zipped is not None and zipped is not True:
        raise ValueError("save: zipped=False (an unzipped folder) is not implemented in fastconv.keras")
    legacy = filepath.endswith((".h5", ".hdf5"))
    unknown = sorted(set(kwargs) - ({"include_optimizer"} if legacy else set()))
    if unknown:
        where = "" if legacy else " with the native Keras format"
        raise ValueError(f"The following argument(s) are not supported{where}: {unknown}")
    check_overwrite(filepath, overwrite)
    if filepath.endswith(".keras"):
        keras_format.save_model(model, filepath)
    elif legacy:
        legacy_h5.save_model(model, filepath, include_optimizer=kwargs.get("include_optimizer", True))
    else:
        raise ValueError("Invalid filepath extension for saving. Please add either a `.keras` extension for the native "
                         f"Keras format (recommended) or a `.h5` extension. Received: filepath={filepath}")


def save_weights(model, filepath, overwrite=True):
    filepath = _path(filepath, "save_weights")
    check_overwrite(filepath, overwrite)
    if filepath.endswith(".weights.h5"):
        keras_format.save_weights(model, filepath)
    elif filepath.endswith((".h5", ".hdf5")):
        legacy_h5.save_weights(model, filepath)
    else:
        raise ValueError("The filename must end in `.weights.h5` (Keras 3's weights file) or `.h5` (the legacy HDF5 "
                         f"weights file of tf.keras 2). Received: filepath={filepath}")


def _open_kind(filepath, what):
    if not os.path.isfile(filepath):
        raise FileNotFoundError(f"{what}: no file at {filepath}")
    if is_zip(filepath):
        return "zip"
    if is_hdf5(filepath):
        return "hdf5"
    raise ValueError(f"{what}: {filepath} is neither a Keras model file (.keras, a zip) nor an HDF5 file (.h5)")


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    filepath = _path(filepath, "load_model")
    kind = _open_kind(filepath, "load_model")
    if kind == "zip":
        return keras_format.load_model(filepath, custom_objects, compile, safe_mode)
    return legacy_h5.load_model(filepath, custom_objects, compile, safe_mode)


def load_weights(model, filepath, skip_mismatch=False, by_name=False):
    filepath = _path(filepath, "load_weights")
    kind = _open_kind(filepath, "load_weights")
    if kind == "zip":
        if by_name:
            raise ValueError("load_weights: by_name=True is only supported for legacy '.h5' weights files")
        keras_format.load_weights_from_zip(model, filepath, skip_mismatch)
        return
    with SafeH5(filepath, filepath) as h5:
        path = legacy_h5.is_legacy_weights(h5)
    if path is None:
        if by_name:
            raise ValueError(f"load_weights: {filepath} is a Keras 3 weights file (.weights.h5); by_name=True is only "
                             "supported for legacy '.h5' weights files")
        keras_format.load_weights(model, filepath, filepath, skip_mismatch)
        return
    with SafeH5(filepath, filepath) as h5:
        plan = legacy_h5.read_weights(h5, path, model, by_name=by_name, skip_mismatch=skip_mismatch)
    keras_format.assign(plan)


def model_to_json(model, **kwargs):
    """Keras's ``to_json``: the model's Keras 3 serialization (a .keras file's config.json
    without the compile configuration); ``kwargs`` go to ``json.dumps``."""
    return json.dumps(config_translation.model_to_keras(model), **kwargs)


def model_from_json(json_string, custom_objects=None):
    """A model (new weights) from Keras's JSON (of Keras 3 or tf.keras 2) or fastconv's earlier
    own; a Lambda's code is rebuilt only after ``keras.config.enable_unsafe_deserialization()``,
    as in Keras."""
    from fastconv.keras.layers import deserialize

    config = keras_format.parse_json(json_string, "model_from_json")
    inner = config.get("config") if isinstance(config, dict) else None
    if isinstance(inner, dict) and "nodes" in inner:   # fastconv's earlier functional configuration
        try:
            return deserialize(config, custom_objects)
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ValueError(f"model_from_json: not a valid model configuration ({type(exc).__name__}: {exc})") \
                from None
    # The Lambda layer's own from_config applies Keras's global safe mode.
    ctx = config_translation.Context("model_from_json", custom_objects, safe_mode=False)
    try:
        return config_translation.model_from_keras(ctx, config)
    except RecursionError:
        raise ctx.error("the configuration is nested too deeply") from None
