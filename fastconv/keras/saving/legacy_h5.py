"""Keras's legacy HDF5 files (``.h5``): whole models and weights, of Keras 3 and of tf.keras 2.

A model file holds the attributes ``model_config`` (JSON), ``training_config`` (JSON, when
compiled), ``keras_version`` and ``backend``, its weights in the group ``model_weights`` and its
optimizer's in ``optimizer_weights``.  A weights file (``save_weights("w.h5")`` of tf.keras 2,
Keras's Applications weights such as ``resnet50_weights_tf_dim_ordering_tf_kernels.h5``) is the
``model_weights`` part alone, at the root.  Weights are grouped by layer: the attribute
``layer_names`` lists the layer groups, each group's ``weight_names`` its datasets, in the order
trainable weights then non-trainable ones.  Keras's rules for loading them:

- by order (default): the layers that have weights, in ``layer_names`` order, are matched with
  the model's layers that have weights, in order; names do not matter;
- ``by_name=True``: each group goes to the model's layer of the same name, others are skipped;
- ``skip_mismatch=True``: layers (by name) or weights whose count or shape differ are skipped
  with a warning instead of refused.
"""
import json
import os
import warnings

from fastconv.keras.saving import config_translation as translation
from fastconv.keras.saving import keras_format
from fastconv.keras.saving.atomic import atomic_write
from fastconv.keras.saving.layer_order import keras_layers, keras_weights
from fastconv.keras.saving.optimizer_state import OptimizerState
from fastconv.keras.saving.safe_h5 import SafeH5, ShapeMismatchError, h5py, kinds_for


def legacy_weights(layer):
    """A layer's (or nested model's) weights in the legacy order: trainable then the others."""
    return keras_weights(layer, True) + keras_weights(layer, False)


# ------------------------------------------------------------------------------------ writing
def _write_strings(node, name, values):
    node.attrs[name] = [v.encode("utf8") for v in values]


def _write_weights_group(group, model):
    _write_strings(group, "layer_names", [layer.name for layer in keras_layers(model)])
    group.attrs["backend"] = b"tensorflow"   # the layout of the arrays: channels-last, HWIO kernels
    group.attrs["keras_version"] = keras_format.KERAS_VERSION.encode("utf8")
    for layer in sorted(model.layers, key=lambda layer: layer.name):
        layer_group = group.create_group(layer.name)
        weights = legacy_weights(layer)
        _write_strings(layer_group, "weight_names", [w.path for w in weights])
        for w in weights:
            layer_group.create_dataset(w.path, data=w.value)
    _write_strings(group.create_group("top_level_model_weights"), "weight_names", [])


def save_model(model, filepath, include_optimizer=True):
    config = translation.layer_to_keras(model, legacy=True)
    training = translation.compile_to_keras(model, legacy=True) if include_optimizer else None
    state = keras_format.optimizer_state(model) if include_optimizer else None
    with atomic_write(filepath) as f:
        with h5py().File(f, "w") as h5:
            h5.attrs["backend"] = b"tensorflow"
            h5.attrs["keras_version"] = keras_format.KERAS_VERSION.encode("utf8")
            h5.attrs["model_config"] = json.dumps(config).encode("utf8")
            if training is not None:
                h5.attrs["training_config"] = json.dumps(training).encode("utf8")
            _write_weights_group(h5.create_group("model_weights"), model)
            if state is not None:
                group = h5.create_group("optimizer_weights")
                names = [f"{model.optimizer.name}/{n}" for n in state.names]
                _write_strings(group, "weight_names", names)
                for name, value in zip(names, state.arrays):
                    group.create_dataset(name, data=value)


def save_weights(model, filepath):
    with atomic_write(filepath) as f:
        with h5py().File(f, "w") as h5:
            _write_weights_group(h5, model)


# ------------------------------------------------------------------------------------ reading
def _dataset_at(h5, group, group_path, name, shape, kinds="f"):
    """``group[name]`` where the weight name may hold '/' (``conv1/kernel:0``)."""
    folder, _, leaf = name.rpartition("/")
    parent = h5.group(f"{group_path}/{folder}") if folder else group
    return h5.dataset(parent, leaf, f"{group_path}/{name}", shape, kinds)


def _layer_arrays(h5, group_path, layer, skip_mismatch, label):
    """[(variable, array)] for one layer from its group; count and shapes checked."""
    group = h5.group(group_path)
    names = h5.string_list(group, "weight_names", group_path)
    variables = legacy_weights(layer)
    if len(names) != len(variables):
        message = (f"{label} expects {len(variables)} weight(s) "
                   f"({', '.join(f'{v.name} {v.shape}' for v in variables) or 'none'}); the file holds "
                   f"{len(names)} ({', '.join(names) or 'none'})")
        return None, message
    plan = []
    for variable, name in zip(variables, names):
        try:
            plan.append((variable, _dataset_at(h5, group, group_path, name, variable.shape, kinds_for(variable))))
        except ShapeMismatchError as exc:
            if not skip_mismatch:
                raise
            warnings.warn(f"Skipping loading weight {variable.path} of {label}: {exc}", stacklevel=4)
    return plan, None


def read_weights(h5, path, model, by_name=False, skip_mismatch=False):
    """[(variable, array)] from a legacy weights group (``path``: "" or "model_weights")."""
    group = h5.group(path)
    where = path or "/"
    layer_names = h5.string_list(group, "layer_names", where)
    prefix = f"{path}/" if path else ""
    plan = []
    if by_name:
        index = {layer.name: layer for layer in model.layers}
        for k, name in enumerate(layer_names):
            layer = index.get(name)
            if layer is None:
                continue
            arrays, problem = _layer_arrays(h5, prefix + name, layer, skip_mismatch,
                                            f"layer #{k} (named {name})")
            if problem is not None:
                if not skip_mismatch:
                    raise h5.error(prefix + name, problem)
                warnings.warn(f"Skipping loading of weights for {problem}", stacklevel=3)
                continue
            plan.extend(arrays)
    else:
        layers = [layer for layer in keras_layers(model) if legacy_weights(layer)]
        saved = [name for name in layer_names
                 if h5.string_list(h5.group(prefix + name), "weight_names", prefix + name)]
        if len(saved) != len(layers):
            raise h5.error(where, f"Layer count mismatch when loading weights from file. Model expected {len(layers)} "
                                  f"layers with weights ({[layer.name for layer in layers]}), found {len(saved)} "
                                  f"saved layers ({saved})")
        for k, (layer, name) in enumerate(zip(layers, saved)):
            arrays, problem = _layer_arrays(h5, prefix + name, layer, skip_mismatch,
                                            f"layer #{k} (named {layer.name} in the model, {name} in the file)")
            if problem is not None:
                raise h5.error(prefix + name, problem)
            plan.extend(arrays)
    top = h5.group(f"{prefix}top_level_model_weights", required=False)
    if top is not None and h5.string_list(top, "weight_names", f"{prefix}top_level_model_weights"):
        if not skip_mismatch:
            raise h5.error(f"{prefix}top_level_model_weights", "the file holds top-level model weights; fastconv's "
                                                               "models have none")
        warnings.warn("Skipping loading top-level weights: fastconv's models have none", stacklevel=3)
    return plan


def is_legacy_weights(h5):
    """The path of the legacy weights group ("" or "model_weights"), or None for Keras 3's
    H5IOStore layout."""
    if h5.attribute(h5.file, "layer_names", "/") is not None or h5.attribute(h5.file, "layer_names0", "/") is not None:
        return ""
    group = h5.group("model_weights", required=False)
    if group is not None:
        return "model_weights"
    return None


def _read_optimizer(h5, model):
    """A function loading the optimizer state of ``optimizer_weights``, or None; a state that
    does not fit (another optimizer, tf.keras 2's layout) is skipped with a warning, as Keras
    does."""
    group = h5.group("optimizer_weights", required=False)
    if group is None or not getattr(model, "compiled", False):
        return None
    names = h5.string_list(group, "weight_names", "optimizer_weights")
    state = OptimizerState(model)
    if len(names) != len(state.names):
        warnings.warn("Error in loading the saved optimizer state: the file holds "
                      f"{len(names)} optimizer variables, {model.optimizer.name} has {len(state.names)}. As a result, "
                      "your model is starting with a freshly initialized optimizer.", stacklevel=3)
        return None
    values = [_dataset_at(h5, group, "optimizer_weights", name, a.shape, kinds="fiu" if k == 0 else "f")
              for k, (name, a) in enumerate(zip(names, state.arrays))]
    state.check(values, lambda k, message: h5.error(f"optimizer_weights/{names[k]}", message))
    return lambda: state.load(values)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    with SafeH5(filepath, filepath) as h5:
        text = h5.attribute(h5.file, "model_config", "/")
        if text is None:
            raise ValueError(f"No model config found in the file at {filepath}.")
        if not isinstance(text, str):
            raise ValueError(f"{filepath}: model_config must be a JSON string")
        config = keras_format.parse_json(text, f"{filepath}: model_config")
        ctx = translation.Context(f"{filepath}: model_config", custom_objects, safe_mode)
        model = keras_format.build_model(ctx, config, keras_format.weight_budget(os.path.getsize(filepath)))
        plan = read_weights(h5, "model_weights", model)
        load_optimizer = None
        if compile:
            text = h5.attribute(h5.file, "training_config", "/")
            if text is not None:
                if not isinstance(text, str):
                    raise ValueError(f"{filepath}: training_config must be a JSON string")
                training = keras_format.parse_json(text, f"{filepath}: training_config")
                translation.compile_from_keras(translation.Context(f"{filepath}: training_config", custom_objects,
                                                                   safe_mode), model, training)
                load_optimizer = _read_optimizer(h5, model)
    keras_format.assign(plan)
    if load_optimizer is not None:
        load_optimizer()
    return model
