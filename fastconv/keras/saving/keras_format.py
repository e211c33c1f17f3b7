"""Keras 3's native files: ``.keras`` models and ``.weights.h5`` weights, read and written.

A ``.keras`` file is a zip of
- ``metadata.json``: ``{"keras_version", "date_saved"}``;
- ``config.json``: the model's Keras 3 serialization plus its ``compile_config``;
- ``model.weights.h5``: the variables, laid out as Keras's H5IOStore does: one group per
  object, ``layers/<name>/vars/0, 1...`` with ``<name>`` the snake-case class name made unique
  within its container (``conv2d``, ``conv2d_1``: not the layer's own name), nested models as
  ``layers/sequential/layers/dense/vars``, each layer's variables trainable ones first, and the
  optimizer's under ``optimizer/vars``: iteration, learning rate, then its slots in Keras's order.
A ``.weights.h5`` file is that HDF5 file alone.

Loading validates everything (entry names and sizes, JSON, classes and sizes in the
configuration, every array's dtype and shape, the optimizer's state) before it assigns
anything; no code from the file runs.  fastconv's earlier zip format (metadata format
"fastconv.keras": JSON plus .npz arrays) still loads.
"""
import datetime
import io
import json
import warnings
import zipfile

import numpy as np

from fastconv.keras.saving import config_translation as translation
from fastconv.keras.saving.atomic import atomic_write
from fastconv.keras.saving.layer_order import keras_layers
from fastconv.keras.saving.optimizer_state import MAX_ITERATIONS, OptimizerState
from fastconv.keras.saving.safe_h5 import SafeH5, ShapeMismatchError, h5py, kinds_for
from fastconv.keras.saving.safe_zip import SafeZip

# The Keras release whose file format these files follow, and are tested against.
KERAS_VERSION = "3.15.1"
METADATA, CONFIG, WEIGHTS = "metadata.json", "config.json", "model.weights.h5"
OLD_FORMAT, OLD_WEIGHTS, OLD_OPTIMIZER = "fastconv.keras", "model.weights.npz", "optimizer.npz"
MAX_JSON_BYTES = 64 << 20
MAX_METADATA_BYTES = 1 << 20
# A model built from a file may allocate this many times the bytes its weights take in the file,
# plus this allowance (weights are stored uncompressed by Keras; see load_model).
BUDGET_FACTOR, BUDGET_ALLOWANCE = 4, 64 << 20


# ------------------------------------------------------------------------- the weight layout
def keras_variable_order(layer):
    """A layer's own variables (not those of the layers it holds) as Keras stores them:
    trainable ones (as created) first."""
    own = vars(layer).get("_weights", layer.weights)
    return [w for w in own if w.trainable] + [w for w in own if not w.trainable]


def _holds_layers(value, depth=0):
    from fastconv.keras.layers.base import Layer

    if isinstance(value, Layer):
        return True
    if depth < 8 and isinstance(value, (list, tuple, dict)):
        items = value.values() if isinstance(value, dict) else value
        return any(_holds_layers(v, depth + 1) for v in items)
    return False


def _attribute_key(name):
    return f"~{name}" if name.startswith("_") else name   # Keras visits private attributes last


def _children(obj):
    """(attribute, value) of the layers (or containers of layers) that Keras's saving walks in
    ``obj``: a functional or Sequential model's ``layers`` first, then the attributes in sorted
    order, private ones last (a subclassed model's ``layers`` sorts among them)."""
    from fastconv.keras import models

    attributes = {name: value for name, value in vars(obj).items()
                  if value is not obj and name != "layers" and _holds_layers(value)}
    subclassed = getattr(obj, "_subclassed", False)
    if isinstance(obj, models.Model) and subclassed:
        attributes["layers"] = obj.layers
    children = [(name, attributes[name]) for name in sorted(attributes, key=_attribute_key)]
    if isinstance(obj, models.Model) and not subclassed:
        children.insert(0, ("layers", keras_layers(obj)))
    return children


def _container_name(obj):
    from fastconv.keras import backend
    from fastconv.keras import models

    return "functional" if type(obj) is models.Model else backend.to_snake_case(type(obj).__name__)


def weight_tree(model):
    """[(H5 path, name, variables)] of the model and of every layer it holds, in Keras's layout:
    each object's own variables at ``<path>/vars``, its layers under the attribute that holds
    them, a container's items named by their snake-case class made unique (``dense``,
    ``dense_1``), each object stored once, where it is first reached."""
    from fastconv.keras.layers.base import Layer

    out, visited = [], set()

    def visit(obj, path):
        if id(obj) in visited:
            return
        visited.add(id(obj))
        out.append((path, obj.name, keras_variable_order(obj)))
        for attribute, value in _children(obj):
            inner = f"{path}/{attribute}" if path else attribute
            if isinstance(value, Layer):
                visit(value, inner)
            else:
                container(value, inner)

    def container(items, path, depth=0):
        used = {}
        for item in (items.values() if isinstance(items, dict) else items):
            if isinstance(item, Layer):
                visit(item, f"{path}/{_unique(_container_name(item), used)}")
            elif isinstance(item, (list, tuple, dict)) and depth < 8:
                container(item, f"{path}/{_unique('container', used)}", depth + 1)

    visit(model, "")
    return out


def _unique(name, used):
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


def optimizer_state(model):
    """The optimizer's variables as Keras would save them now, or None when not compiled."""
    if not getattr(model, "compiled", False) or model.optimizer is None:
        return None
    return OptimizerState(model, build=False)


def write_weights(model, fileobj, include_optimizer=True):
    """The H5IOStore layout of ``model`` (and its optimizer) into an open binary file."""
    with h5py().File(fileobj, "w") as f:
        for path, name, variables in weight_tree(model):
            group = f.create_group(f"{path}/vars" if path else "vars")
            group.attrs["name"] = name
            for i, v in enumerate(variables):
                group[str(i)] = v.value
        state = optimizer_state(model) if include_optimizer else None
        if state is not None:
            group = f.create_group("optimizer/vars")
            group.attrs["name"] = model.optimizer.name
            for i, value in enumerate(state.arrays):
                group[str(i)] = value


def _vars_group(h5, path):
    group = h5.group(path, required=False)
    if group is None and path.startswith("layers"):
        # tf.keras 2.13-2.15 wrote "_layer_checkpoint_dependencies" where Keras 3 writes "layers".
        group = h5.group(path.replace("layers", "_layer_checkpoint_dependencies"), required=False)
    if group is None:
        return None, path
    vars_path = f"{path}/vars" if path else "vars"
    return h5.group(vars_path, required=False), vars_path


def read_weights(h5, model, skip_mismatch=False):
    """[(variable, array)] from an H5IOStore file, every array checked; nothing assigned."""
    plan = []
    for path, name, variables in weight_tree(model):
        group, vars_path = _vars_group(h5, path)
        keys = h5.keys(group, vars_path) if group is not None else []
        problem = None
        if len(keys) != len(variables):
            problem = (f"layer {name!r} has {len(variables)} weights "
                       f"({', '.join(f'{v.name} {v.shape}' for v in variables) or 'none'}); the file holds "
                       f"{len(keys)} at {vars_path}")
        else:
            values = []
            for i, v in enumerate(variables):
                try:
                    values.append(h5.dataset(group, str(i), f"{vars_path}/{i}", v.shape, kinds_for(v)))
                except ShapeMismatchError as exc:
                    if not skip_mismatch:
                        raise
                    problem = str(exc)
                    break
        if problem is not None:
            if not skip_mismatch:
                raise h5.error(vars_path, problem)
            warnings.warn(f"Skipping loading weights of layer {name!r}: {problem}", stacklevel=3)
            continue
        plan.extend(zip(variables, values))
    return plan


def read_optimizer(h5, model):
    """A function that loads the optimizer's state read (and checked) from the file, or None
    when there is none to load; as Keras, a state of another size is skipped with a warning."""
    if not getattr(model, "compiled", False) or model.optimizer is None:
        return None
    group, vars_path = _vars_group(h5, "optimizer")
    if group is None:
        return None
    state = OptimizerState(model)
    keys = h5.keys(group, vars_path)
    if len(keys) != len(state.names):
        warnings.warn(f"Skipping variable loading for optimizer '{model.optimizer.name}', because it has "
                      f"{len(state.names)} variables whereas the saved optimizer has {len(keys)} variables.",
                      stacklevel=3)
        return None
    values = [h5.dataset(group, str(k), f"{vars_path}/{k}", a.shape, kinds="iu" if k == 0 else "f")
              for k, a in enumerate(state.arrays)]
    state.check(values, lambda k, message: h5.error(f"{vars_path}/{k}", message))
    return lambda: state.load(values)


def assign(plan):
    for variable, value in plan:
        variable.assign(value)


# ------------------------------------------------------------------------------------ models
def save_model(model, filepath):
    config = translation.model_to_keras(model)
    compile_config = translation.compile_to_keras(model)
    config["compile_config"] = compile_config if compile_config is not None else {}
    weights = io.BytesIO()
    write_weights(model, weights)
    metadata = {"keras_version": KERAS_VERSION,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    with atomic_write(filepath) as f:
        with zipfile.ZipFile(f, "w") as zf:
            zf.writestr(METADATA, json.dumps(metadata))
            zf.writestr(CONFIG, json.dumps(config))
            zf.writestr(WEIGHTS, weights.getvalue())


def parse_json(data, where):
    """JSON from bytes (UTF-8) or a str."""
    try:
        return json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{where}: not valid JSON ({type(exc).__name__}: {exc})") from None


def weight_budget(stored_bytes):
    return [BUDGET_FACTOR * stored_bytes + BUDGET_ALLOWANCE]


def build_model(ctx, config, budget):
    """The model of a Keras configuration, its weights' allocation bounded by ``budget``."""
    from fastconv.keras.layers import base
    from fastconv.keras.layers.core import safe_mode_scope

    token = base.weight_bytes_left.set(budget)
    try:
        # A Lambda's from_config turns stored Python code into a function only outside safe mode.
        with safe_mode_scope(ctx.safe_mode):
            return translation.model_from_keras(ctx, config)
    except RecursionError:
        raise ctx.error("the configuration is nested too deeply") from None
    finally:
        base.weight_bytes_left.reset(token)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    with SafeZip(filepath, filepath) as zf:
        names = zf.names()
        if METADATA not in names:
            raise ValueError(f"{filepath}: not a Keras model file (the zip file has no {METADATA})")
        metadata = parse_json(zf.read(METADATA, MAX_METADATA_BYTES), f"{filepath}: {METADATA}")
        if not isinstance(metadata, dict):
            raise ValueError(f"{filepath}: {METADATA} must hold a JSON object")
        if metadata.get("format") == OLD_FORMAT:
            return _load_old_model(zf, filepath, metadata, custom_objects, compile)
        version = metadata.get("keras_version")
        if not isinstance(version, str) or version.split(".")[0] not in ("2", "3"):
            raise ValueError(f"{filepath}: {METADATA}: keras_version {version!r} is not a format fastconv.keras "
                             "reads (Keras 3 and tf.keras 2.13+ .keras files)")
        unknown = sorted(set(names) - {METADATA, CONFIG, WEIGHTS})
        if unknown:
            raise ValueError(f"{filepath}: entries {unknown} are not part of a Keras model file that fastconv.keras "
                             "reads (assets are not implemented)")
        for required in (CONFIG, WEIGHTS):
            if required not in names:
                raise ValueError(f"{filepath}: the Keras model file has no {required}")
        config = parse_json(zf.read(CONFIG, MAX_JSON_BYTES), f"{filepath}: {CONFIG}")
        ctx = translation.Context(f"{filepath}: {CONFIG}", custom_objects, safe_mode)
        stored = zf.declared_size(WEIGHTS)
        model = build_model(ctx, config, weight_budget(stored))
        compile_config = config.get("compile_config")
        if compile and compile_config:
            translation.compile_from_keras(ctx, model, compile_config)
        with SafeH5(zf.read(WEIGHTS, stored), f"{filepath}: {WEIGHTS}") as h5:
            plan = read_weights(h5, model)
            load_optimizer = read_optimizer(h5, model) if compile else None
    assign(plan)
    if load_optimizer is not None:
        load_optimizer()
    return model


def save_weights(model, filepath):
    with atomic_write(filepath) as f:
        write_weights(model, f)


def load_weights(model, source, where, skip_mismatch=False):
    """Weights from H5IOStore bytes or path: layers, then the optimizer's state when the model
    is compiled and the file holds one of the same size."""
    with SafeH5(source, where) as h5:
        plan = read_weights(h5, model, skip_mismatch)
        load_optimizer = read_optimizer(h5, model)
    assign(plan)
    if load_optimizer is not None:
        load_optimizer()


def load_weights_from_zip(model, filepath, skip_mismatch=False):
    """``load_weights`` of a .keras file (its model.weights.h5), or of fastconv's earlier .npz
    weights files."""
    with SafeZip(filepath, filepath) as zf:
        names = zf.names()
        if WEIGHTS in names:
            budget = weight_budget(sum(w.value.nbytes for w in model.weights))[0]
            data = zf.read(WEIGHTS, budget)
        elif names and all(n.startswith("a") and n.endswith(".npy") for n in names):
            assign(_old_plan(model, _read_npz(zf, filepath), filepath))
            return
        else:
            raise ValueError(f"{filepath}: not a Keras weights file (a zip without {WEIGHTS})")
    load_weights(model, data, f"{filepath}: {WEIGHTS}", skip_mismatch)


# ------------------------------------------------------------ fastconv's earlier zip format
def _read_npz(zf, where, first_kinds="f"):
    """The arrays ``a00000.npy``, ``a00001.npy``... of an .npz (a zip), read without pickle:
    float arrays (the first one of kind ``first_kinds``)."""
    out = []
    for i in range(len(zf.names())):
        name = f"a{i:05d}.npy"
        if name not in zf.names():
            raise ValueError(f"{where}: the weights have no entry {name!r}")
        data = zf.read(name, zf.declared_size(name))
        try:
            array = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"{where}: entry {name!r} is not a plain array ({exc})") from None
        if array.dtype.kind not in (first_kinds if i == 0 else "f"):
            raise ValueError(f"{where}: entry {name!r} holds dtype {array.dtype}; a float array is expected")
        out.append(array)
    return out


def _old_plan(model, arrays, where):
    own = model.weights
    if len(arrays) != len(own):
        raise ValueError(f'{where} holds {len(arrays)} weights but model "{model.name}" has {len(own)}')
    for variable, value in zip(own, arrays):
        if value.shape != variable.shape:
            raise ValueError(f"{where}: weight {variable.path} has shape {variable.shape} in the model but "
                             f"{value.shape} in the file")
    return list(zip(own, arrays))


def _load_old_model(zf, filepath, metadata, custom_objects, compile):
    from fastconv.keras import losses, metrics, optimizers
    from fastconv.keras.layers import base, deserialize

    if metadata.get("version") != 1:
        raise ValueError(f"{filepath}: {METADATA}: fastconv.keras format version {metadata.get('version')!r} is not "
                         "one this version reads (1)")
    config = parse_json(zf.read(CONFIG, MAX_JSON_BYTES), f"{filepath}: {CONFIG}")
    if OLD_WEIGHTS not in zf.names():
        raise ValueError(f"{filepath}: the model file has no {OLD_WEIGHTS}")
    stored = zf.declared_size(OLD_WEIGHTS)
    token = base.weight_bytes_left.set(weight_budget(stored))
    try:
        model = deserialize(config["model"], custom_objects)
        compile_config = config.get("compile")
        if compile and compile_config is not None:
            model.compile(optimizer=optimizers.deserialize(compile_config["optimizer"]),
                          loss=None if compile_config["loss"] is None else losses.deserialize(compile_config["loss"]),
                          metrics=[m if isinstance(m, str) else metrics.get(m) for m in compile_config["metrics"]])
    except (KeyError, IndexError, TypeError, AttributeError, RecursionError) as exc:
        raise ValueError(f"{filepath}: {CONFIG}: not a valid model configuration ({type(exc).__name__}: {exc})") \
            from None
    except ValueError as exc:
        raise ValueError(f"{filepath}: {CONFIG}: {exc}") from None
    finally:
        base.weight_bytes_left.reset(token)
    with SafeZip(zf.read(OLD_WEIGHTS, stored), f"{filepath}: {OLD_WEIGHTS}") as npz:
        plan = _old_plan(model, _read_npz(npz, f"{filepath}: {OLD_WEIGHTS}"), f"{filepath}: {OLD_WEIGHTS}")
    state = None
    if compile and model.compiled and OLD_OPTIMIZER in zf.names():
        where = f"{filepath}: {OLD_OPTIMIZER}"
        with SafeZip(zf.read(OLD_OPTIMIZER, zf.declared_size(OLD_OPTIMIZER)), where) as npz:
            state = _read_npz(npz, where, first_kinds="iu")
        if not state or state[0].shape != () or not 0 <= int(state[0]) <= MAX_ITERATIONS:
            raise ValueError(f"{where}: the optimizer's iteration count must be a number in [0, {MAX_ITERATIONS}]")
        # The earlier format saved the slots alone; the learning rate and scalars stay as compiled.
        current = model.optimizer.state_arrays(model.trainable_weights)
        slots = [a.shape for a in current[:len(state) - 1]]
        if [a.shape for a in state[1:]] != slots:
            raise ValueError(f"{where}: the optimizer's state has shapes {[a.shape for a in state[1:]]}; the model "
                             f"needs {slots}")
        state = state + current[len(state) - 1:]
    assign(plan)
    if state is not None:
        model.optimizer.load_state_arrays(model.trainable_weights, int(state[0]), state[1:])
    return model
