"""fastconv's configurations <-> Keras's, both ways, for every layer by its class name and keys.

fastconv's layers already use Keras's class names and ``get_config`` keys, so the translation
is generic; what differs is the packaging:

- Keras 3 wraps each object as ``{"module", "class_name", "config", "registered_name"}``
  (layers add ``build_config``), a dtype as a ``DTypePolicy`` dict, and writes a functional
  model's graph as ``inbound_nodes`` of ``{"args": [tensor...], "kwargs": {}}`` with tensors
  ``{"class_name": "__keras_tensor__", "config": {"shape", "dtype", "keras_history"}}``;
- tf.keras 2 writes ``inbound_nodes: [[["name", 0, 0, {}], ...]]``, ``batch_input_shape`` and
  ``axis: [3]``, and has no ``module`` keys;
- Keras's configs carry keys that fastconv's classes do not take (``renorm``, ``sparse``,
  ``quantization_config``...): they are dropped when they hold Keras's default (None, False,
  or the value in ``_KERAS_ONLY_DEFAULTS``), refused otherwise, so nothing is silently ignored.

Reading is data only: JSON in, fastconv objects out through the classes' ``from_config``; a
``Lambda`` layer (which would run code from the file) is refused unless ``safe_mode=False``.
Every error is a ValueError that starts with ``where`` (the file and its entry).
"""
import inspect
import math

import numpy as np

from fastconv.keras import initializers, losses, metrics, optimizers
from fastconv.keras.saving.layer_order import keras_layers
from fastconv.keras.saving.object_registration import custom_objects_in_effect, get_registered_name

# Keys of Keras configs that fastconv's classes do not take, whose Keras default is neither
# None nor False: accepted (and dropped) only with that value.
_KERAS_ONLY_DEFAULTS = {"renorm_momentum": 0.99, "decay": 0.0}
# Keys that change nothing in fastconv, whatever their value (how Keras compiles, not what).
_KERAS_ONLY_ANY = {"jit_compile", "is_legacy_optimizer", "shared_object_id"}
# Keyword arguments that fastconv's base Layer takes through **kwargs.
_LAYER_KWARGS = {"name", "trainable", "dtype", "input_shape", "batch_input_shape", "input_dim"}
_NESTED_MODULES = (("_initializer", "keras.initializers"), ("_regularizer", "keras.regularizers"),
                   ("_constraint", "keras.constraints"))
_MODEL_CLASS_NAMES = ("Functional", "Model", "Sequential")
_MAX_DEPTH = 32          # models nested in models
_MAX_LAYERS = 100_000
_MAX_DIM = 2 ** 31 - 1   # one axis of an input
_MAX_SAMPLE = 2 ** 31    # elements of one sample of an input
# What a class's from_config or a layer call may raise on a configuration of the wrong types
# (a string where a number belongs...): reported as a ValueError naming the file and the layer.
CONFIG_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, ZeroDivisionError)


class Context:
    """What a translation needs to know: where the configuration comes from (for the errors),
    the custom classes, and whether code-running layers are allowed."""

    def __init__(self, where, custom_objects=None, safe_mode=True):
        self.where = where
        self.custom_objects = custom_objects_in_effect(custom_objects)
        self.safe_mode = safe_mode
        self.layer_count = 0

    def error(self, message):
        return ValueError(f"{self.where}: {message}")


# ------------------------------------------------------------------------------------ helpers
def _expect(ctx, value, types, what):
    if not isinstance(value, types):
        names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise ctx.error(f"{what} must be a {names}; found {type(value).__name__} {_short(value)}")
    return value


def _short(value):
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


def _jsonable(value):
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _accepted_arguments(cls):
    """The keyword arguments ``cls(...)`` takes, or None when it takes any (``**kwargs`` that do
    not end in fastconv's base Layer, which refuses unknown ones)."""
    from fastconv.keras.layers.base import Layer

    names = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is Layer:
            return names | _LAYER_KWARGS
        try:
            parameters = list(inspect.signature(init).parameters.values())[1:]
        except (TypeError, ValueError):
            return None
        names.update(p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            return names
    return None


def _keep_known(ctx, cls, config, what):
    """``config`` without the Keras keys that ``cls`` does not take; such a key is refused
    unless it holds Keras's default."""
    accepted = _accepted_arguments(cls)
    if accepted is None:
        return dict(config)
    out = {}
    for key, value in config.items():
        if key in accepted:
            out[key] = value
        elif key in _KERAS_ONLY_ANY or value is None or value is False or \
                (key in _KERAS_ONLY_DEFAULTS and value == _KERAS_ONLY_DEFAULTS[key]):
            continue
        else:
            raise ctx.error(f"{what}: fastconv.keras's {cls.__name__} does not implement {key}={_short(value)}")
    return out


def _dtype_name(ctx, value, what):
    if isinstance(value, dict):   # a DTypePolicy (Keras 3) or Policy (tf.keras 2)
        value = _expect(ctx, value.get("config"), dict, f"{what}: dtype's config").get("name")
    return _expect(ctx, value, (str, type(None)), f"{what}: dtype")


def dtype_policy(name):
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name}, "registered_name": None}


def _wrap(module, class_name, config, registered_name=None):
    return {"module": module, "class_name": class_name, "config": config, "registered_name": registered_name}


def _nested_module(key):
    for suffix, module in _NESTED_MODULES:
        if key.endswith(suffix):
            return module
    return None


def _is_serialized_object(value):
    return isinstance(value, dict) and "class_name" in value and "config" in value


# --------------------------------------------------------------------------- layers, to Keras
def layer_config_to_keras(layer):
    """A layer's ``get_config`` with Keras's packaging of dtypes and nested objects."""
    from fastconv.keras.layers.core import InputLayer

    out = {}
    for key, value in layer.get_config().items():
        if key == "input_shape":
            continue   # the legacy argument of a first layer: the model writes its InputLayer instead
        if key == "dtype" and isinstance(value, str) and not isinstance(layer, InputLayer):
            value = dtype_policy(value)
        elif _is_serialized_object(value):
            value = _wrap(_nested_module(key) or "keras", value["class_name"], _jsonable(value["config"]))
        out[key] = _jsonable(value)
    return out


def _class_identity(layer):
    """(module, class_name, registered_name) as Keras writes them."""
    from fastconv.keras import models
    from fastconv.keras.layers.base import builtin_classes

    cls = type(layer)
    if cls is models.Model:
        return "keras.src.models.functional", "Functional", "Functional"
    if cls is models.Sequential:
        return "keras", "Sequential", None
    if builtin_classes().get(cls.__name__) is cls:
        return "keras.layers", cls.__name__, None
    # A custom class: found again by its registered name, or through custom_objects.
    return cls.__module__, cls.__name__, get_registered_name(cls)


def _build_shape(layer, model_nodes):
    for node in layer._inbound_nodes:
        if id(node) in model_nodes:
            shapes = [list(t.shape) for t in node.inputs]
            return shapes if layer._multiple_inputs else shapes[0]
    return None


def layer_to_keras(layer, legacy=False, model_nodes=None):
    """The Keras 3 serialization of a layer or a model (``legacy``: the form of an .h5 file's
    model_config, without module, registered_name and build_config, as Keras writes it)."""
    from fastconv.keras import models
    from fastconv.keras.layers.base import Layer
    from fastconv.keras.layers.core import InputLayer

    module, class_name, registered_name = _class_identity(layer)
    subclassed = getattr(layer, "_subclassed", False)
    if isinstance(layer, models.Model) and not subclassed:
        config = _model_config_to_keras(layer, legacy)
    else:
        config = layer_config_to_keras(layer)   # a subclassed model: its constructor's arguments
    entry = {"class_name": class_name, "config": config} if legacy else _wrap(module, class_name, config,
                                                                             registered_name)
    if not legacy and not isinstance(layer, InputLayer):
        if subclassed:
            entry["build_config"] = _jsonable(layer.get_build_config())
        elif isinstance(layer, models.Sequential):
            entry["build_config"] = {"input_shape": list(layer.inputs[0].shape) if layer.inputs else None}
        elif not isinstance(layer, models.Model) and type(layer).build is not Layer.build:
            shape = _build_shape(layer, model_nodes or {id(n) for n in layer._inbound_nodes})
            if shape is not None:
                entry["build_config"] = {"input_shape": shape}
    return entry


def _model_config_to_keras(model, legacy):
    from fastconv.keras import backend, models
    from fastconv.keras.layers.core import InputLayer

    if isinstance(model, models.Sequential) and not model.inputs:
        # Not built yet (no input shape): its layers alone, as Keras writes such a Sequential.
        return {"name": model.name, "trainable": model.trainable, "dtype": dtype_policy(backend.floatx()),
                "layers": [layer_to_keras(layer, legacy) for layer in model.layers]}
    if not model.built or not model.inputs:
        raise ValueError(f'Model "{model.name}" is not built yet (it has no input shape): call it on data or give '
                         "its first layer an input_shape before saving")
    if isinstance(model, models.Sequential):
        input_layer = model.inputs[0]._keras_history[0]
        layers = [input_layer] + model.layers
        nodes = {id(n) for n in model._graph_for(model.input_shape).all_nodes}
        return {"name": model.name, "trainable": model.trainable, "dtype": dtype_policy(backend.floatx()),
                "layers": [layer_to_keras(layer, legacy, nodes) for layer in layers],
                "build_input_shape": list(model.inputs[0].shape)}
    graph = model._graph
    nodes = graph.all_nodes
    node_ids = {id(n) for n in nodes}
    # Keras numbers a layer's nodes within the model only (a layer shared with other models
    # may have nodes outside it).
    index = {}
    for layer in graph.layers:
        own = [n for n in layer._inbound_nodes if id(n) in node_ids]
        index.update({id(n): i for i, n in enumerate(own)})

    def history(t):
        layer, node_index, tensor_index = t._keras_history
        return [layer.name, index[id(layer._inbound_nodes[node_index])], tensor_index]

    def tensor(t):
        return {"class_name": "__keras_tensor__", "config": {"shape": list(t.shape), "dtype": t.dtype,
                                                              "keras_history": history(t)}}

    entries = []
    for layer in keras_layers(model, operations=True):
        entry = layer_to_keras(layer, legacy, node_ids)
        entry["name"] = layer.name
        inbound = []
        if not isinstance(layer, InputLayer):
            for node in layer._inbound_nodes:
                if id(node) in node_ids:
                    args = [tensor(t) for t in node.inputs]
                    inbound.append({"args": [args if layer._multiple_inputs else args[0]], "kwargs": {}})
        entry["inbound_nodes"] = inbound
        entries.append(entry)

    def refs(tensors, nested):
        out = [history(t) for t in tensors]
        return out if (nested or len(out) > 1) else out[0]

    nested = getattr(model, "_nested_outputs", False)
    if getattr(model, "_output_dict_keys", None):    # a dict of outputs, as Keras writes it
        output_layers = {k: history(t) for k, t in model._structured(model.outputs).items()}
    else:
        output_layers = refs(model.outputs, nested)
    return {"name": model.name, "trainable": model.trainable, "layers": entries,
            "input_layers": refs(model.inputs, False), "output_layers": output_layers}


# ------------------------------------------------------------------------- layers, from Keras
def _layer_class(ctx, entry, layer_name):
    from fastconv.keras.layers.base import builtin_classes

    class_name = _expect(ctx, entry.get("class_name"), str, f"layer {layer_name!r}: class_name")
    registered = entry.get("registered_name")
    if class_name in ("Lambda", "__lambda__") and ctx.safe_mode:
        raise ctx.error(f"layer {layer_name!r} is a Lambda layer, whose function is Python code stored in the file; "
                        "fastconv.keras does not run code from files unless load_model(..., safe_mode=False) says "
                        "that you trust this one")
    for key in (registered, class_name):
        if isinstance(key, str) and key in ctx.custom_objects:
            return ctx.custom_objects[key]
    module = entry.get("module")
    if isinstance(module, str) and module.startswith(("keras.src.ops", "keras.ops")):
        raise ctx.error(f"layer {layer_name!r} is the keras.ops operation {class_name!r} ({module}) applied to "
                        "symbolic tensors; fastconv.keras does not load such operations (they are not its layers "
                        "of the same names): wrap them in a layer")
    cls = builtin_classes().get(class_name)
    if cls is None or class_name in _MODEL_CLASS_NAMES:
        raise ctx.error(f"layer {layer_name!r} has class {class_name!r}, which fastconv.keras does not know; pass "
                        f"custom_objects={{{class_name!r}: YourLayerClass}} or decorate the class with "
                        "@register_keras_serializable() if it is your own layer")
    return cls


def _initializer_from_keras(ctx, value, what):
    if isinstance(value, str):
        return value
    _expect(ctx, value, dict, what)
    class_name = _expect(ctx, value.get("class_name"), str, f"{what}: class_name")
    config = _expect(ctx, value.get("config", {}), dict, f"{what}: config")
    try:
        cls = type(initializers.get(class_name))
    except ValueError as exc:
        raise ctx.error(f"{what}: {exc}") from None
    return {"class_name": class_name, "config": _keep_known(ctx, cls, config, what)}


def _layer_config_from_keras(ctx, cls, config, what):
    out = {}
    for key, value in config.items():
        _expect(ctx, key, str, f"{what}: a config key")
        if key == "dtype":
            value = _dtype_name(ctx, value, what)
        elif key.endswith("_initializer") and value is not None:
            value = _initializer_from_keras(ctx, value, f"{what}: {key}")
        elif key == "activation" and isinstance(value, dict):
            # Keras 3 may write a built-in function as {"class_name": "function", "config": "relu"}.
            value = _expect(ctx, value.get("config"), str, f"{what}: activation")
        elif _is_serialized_object(value) and _nested_module(key):
            value = {"class_name": value["class_name"], "config": value["config"]}
        elif key == "axis" and isinstance(value, list) and len(value) == 1:
            value = value[0]   # tf.keras 2 writes BatchNormalization's axis as a list
        out[key] = value
    _check_sizes(ctx, out, what)
    return _keep_known(ctx, cls, out, what)


def _check_sizes(ctx, config, what):
    """Input shapes bounded before anything is built (the weights are bounded as they are
    allocated, see keras_format.weight_budget)."""
    for key in ("batch_shape", "batch_input_shape", "input_shape"):
        shape = config.get(key)
        if shape is None:
            continue
        _expect(ctx, shape, list, f"{what}: {key}")
        if shape and isinstance(shape[0], list):   # several inputs
            for one in shape:
                _check_sizes(ctx, {key: one}, what)
            continue
        dims = shape[1:] if key != "input_shape" else shape
        for d in shape:
            if d is not None and (not isinstance(d, int) or isinstance(d, bool) or not 0 < d <= _MAX_DIM):
                raise ctx.error(f"{what}: {key}={_short(shape)} holds {d!r}; sizes must be positive integers "
                                f"up to {_MAX_DIM}")
        if math.prod(d for d in dims if d is not None) > _MAX_SAMPLE:
            raise ctx.error(f"{what}: {key}={_short(shape)} asks for more than {_MAX_SAMPLE} values per sample")


def layer_from_keras(ctx, entry, depth=0):
    """A fastconv layer (or model) from its Keras serialization."""
    _expect(ctx, entry, dict, "a layer entry")
    config = entry.get("config")
    if entry.get("class_name") in _MODEL_CLASS_NAMES:
        return model_from_keras(ctx, entry, depth + 1)
    _expect(ctx, config, dict, f"layer {entry.get('name')!r}: config")
    layer_name = config.get("name", entry.get("name"))
    ctx.layer_count += 1
    if ctx.layer_count > _MAX_LAYERS:
        raise ctx.error(f"the configuration holds more than {_MAX_LAYERS} layers")
    cls = _layer_class(ctx, entry, layer_name)
    what = f"layer {layer_name!r} ({entry['class_name']})"
    translated = _layer_config_from_keras(ctx, cls, config, what)
    try:
        layer = cls.from_config(translated)
        if getattr(layer, "_subclassed", False) and entry.get("build_config"):
            # A subclassed model is built from the input shape it was saved with, as in Keras.
            build_config = _expect(ctx, entry["build_config"], dict, f"{what}: build_config")
            _check_sizes(ctx, {"batch_shape": build_config.get("input_shape")}, f"{what}: build_config")
            layer.build_from_config(build_config)
        return layer
    except CONFIG_ERRORS as exc:
        raise ctx.error(f"{what}: {exc}") from None


def model_from_keras(ctx, entry, depth=0):
    """A Sequential, functional or subclassed model from a Keras (3 or tf.keras 2)
    serialization."""
    from fastconv.keras import models

    if depth > _MAX_DEPTH:
        raise ctx.error(f"models are nested more than {_MAX_DEPTH} deep")
    _expect(ctx, entry, dict, "the model's configuration")
    class_name = entry.get("class_name")
    if class_name not in _MODEL_CLASS_NAMES:
        model = layer_from_keras(ctx, entry, depth)
        if not isinstance(model, models.Model):
            raise ctx.error(f"the configuration is a {type(model).__name__} layer, not a model")
        return model
    config = entry.get("config")
    if class_name == "Sequential" and isinstance(config, list):
        config = {"layers": config}   # Keras 1's Sequential: a list of layers
    _expect(ctx, config, dict, f"{class_name} model: config")
    name = config.get("name")
    _expect(ctx, name, (str, type(None)), f"{class_name} model: name")
    trainable = _expect(ctx, config.get("trainable", True), bool, f"model {name!r}: trainable")
    layers = _expect(ctx, config.get("layers"), list, f"model {name!r}: layers")
    if class_name == "Sequential":
        try:
            model = models.Sequential(name=name, trainable=trainable)
            for layer_entry in layers:
                model.add(layer_from_keras(ctx, layer_entry, depth))
            shape = config.get("build_input_shape")
            if not model.inputs and isinstance(shape, list):
                _check_sizes(ctx, {"batch_shape": shape}, f"model {name!r}: build_input_shape")
                model.build(shape)
        except CONFIG_ERRORS as exc:
            if str(exc).startswith(ctx.where):
                raise
            raise ctx.error(f"model {name!r}: {exc}") from None
        return model
    return _functional_from_keras(ctx, config, name, trainable, depth)


def _functional_from_keras(ctx, config, name, trainable, depth):
    from fastconv.keras import models

    created = {}     # layer name -> layer
    outputs = {}     # layer name -> the output tensors of each of its calls, in order
    is_model = {}
    pending = []     # [layer name, [node data...]] in the order of the configuration
    for entry in config["layers"]:
        _expect(ctx, entry, dict, f"model {name!r}: a layer entry")
        layer = layer_from_keras(ctx, entry, depth)
        layer_name = entry.get("name", layer.name)
        _expect(ctx, layer_name, str, f"model {name!r}: a layer name")
        if layer_name in created:
            raise ctx.error(f"model {name!r}: two layers are named {layer_name!r}")
        created[layer_name] = layer
        is_model[layer_name] = entry.get("class_name") in ("Functional", "Model")
        from fastconv.keras.layers.core import InputLayer
        if isinstance(layer, InputLayer):
            outputs[layer_name] = [layer._inbound_nodes[0].outputs]
            continue
        outputs[layer_name] = []
        nodes = _expect(ctx, entry.get("inbound_nodes", []), list, f"layer {layer_name!r}: inbound_nodes")
        if nodes:
            pending.append([layer_name, list(nodes)])

    def tensor_at(history, where):
        _expect(ctx, history, list, f"{where}: keras_history")
        if len(history) < 3 or not isinstance(history[0], str) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in history[1:3]):
            raise ctx.error(f"{where}: keras_history must be [layer name, node index, tensor index]; "
                            f"found {_short(history)}")
        producer, node_index, tensor_index = history[:3]
        if producer not in created:
            raise ctx.error(f"{where}: reads layer {producer!r}, which the model does not have")
        if is_model[producer]:
            node_index -= 1   # Keras's rule: a functional model's first node is its own construction
        calls = outputs[producer]
        if not -len(calls) <= node_index < len(calls):
            return None   # not called yet: retried once the producer has been called
        tensors = calls[node_index]
        if not 0 <= tensor_index < len(tensors):
            raise ctx.error(f"{where}: layer {producer!r} has no output {tensor_index}")
        return tensors[tensor_index]

    def node_inputs(layer_name, node):
        """The input tensors of one call, or None when one of them does not exist yet."""
        layer = created[layer_name]
        where = f"layer {layer_name!r}: inbound node"
        if isinstance(node, dict):   # Keras 3
            args = _expect(ctx, node.get("args"), list, f"{where}: args")
            _check_call_kwargs(ctx, node.get("kwargs", {}), where)
            if len(args) != 1:
                raise ctx.error(f"{where}: fastconv.keras calls layers with one input (or one list of inputs); "
                                f"this call has {len(args)} positional arguments")
            arg = args[0]
            items = arg if isinstance(arg, list) else [arg]
            histories = []
            for item in items:
                _expect(ctx, item, dict, f"{where}: an input")
                if item.get("class_name") != "__keras_tensor__":
                    raise ctx.error(f"{where}: an input is not a tensor: {_short(item)}")
                histories.append(_expect(ctx, item.get("config"), dict, f"{where}: an input").get("keras_history"))
            as_list = isinstance(arg, list)
        else:                        # tf.keras 2: [[name, node, tensor, kwargs], ...]
            _expect(ctx, node, list, where)
            histories = []
            for ref in node:
                _expect(ctx, ref, list, f"{where}: an input")
                if len(ref) > 3:
                    _check_call_kwargs(ctx, ref[3], where)
                histories.append(ref[:3])
            as_list = layer._multiple_inputs
        tensors = [tensor_at(h, where) for h in histories]
        if any(t is None for t in tensors):
            return None
        if not as_list and len(tensors) != 1:
            raise ctx.error(f"{where}: layer {layer_name!r} takes one input; this call has {len(tensors)}")
        return tensors if as_list else tensors[0]

    while pending:
        progress = False
        for item in pending:
            layer_name, nodes = item
            while nodes:
                inputs = node_inputs(layer_name, nodes[0])
                if inputs is None:
                    break
                try:
                    out = created[layer_name](inputs)
                except CONFIG_ERRORS as exc:
                    raise ctx.error(f"model {name!r}: layer {layer_name!r}: {exc}") from None
                outputs[layer_name].append(out if isinstance(out, list) else [out])
                nodes.pop(0)
                progress = True
        pending = [item for item in pending if item[1]]
        if pending and not progress:
            raise ctx.error(f"model {name!r}: the graph has loops or reads layers that are never called: "
                            f"{[item[0] for item in pending]}")

    def tensors(refs, what):
        _expect(ctx, refs, list, f"model {name!r}: {what}")
        if len(refs) == 3 and isinstance(refs[0], str):
            return tensor_at(refs, f"model {name!r}: {what}"), False
        found = [tensor_at(r, f"model {name!r}: {what}") for r in refs]
        if not found or any(t is None for t in found):
            raise ctx.error(f"model {name!r}: {what} name tensors that the graph does not produce")
        return (found[0], False) if len(found) == 1 else (found, True)

    inputs, _ = tensors(config.get("input_layers"), "input_layers")
    output_layers = config.get("output_layers")
    if isinstance(output_layers, dict):           # Keras 3's dict of outputs
        outs = {_expect(ctx, k, str, f"model {name!r}: output_layers key"):
                tensors([v], f"output_layers[{k!r}]")[0] for k, v in output_layers.items()}
        if any(t is None for t in outs.values()):
            outs = None
    else:
        outs, _ = tensors(output_layers, "output_layers")
    if inputs is None or outs is None:
        raise ctx.error(f"model {name!r}: its inputs or outputs name tensors that the graph does not produce")
    try:
        return models.Model(inputs, outs, name=name, trainable=trainable)
    except CONFIG_ERRORS as exc:
        raise ctx.error(f"model {name!r}: {exc}") from None


def _check_call_kwargs(ctx, kwargs, where):
    """A call's keyword arguments: ``training`` is the model's to decide (as in Keras, the
    model's own training flag wins), ``mask`` must be None; others are not implemented."""
    _expect(ctx, kwargs, dict, f"{where}: kwargs")
    for key, value in kwargs.items():
        if key == "training" or (key == "mask" and value is None):
            continue
        raise ctx.error(f"{where}: fastconv.keras does not implement the call argument {key}={_short(value)}")


def model_to_keras(model):
    """The top-level Keras 3 serialization of a model (the content of config.json without the
    compile_config)."""
    return layer_to_keras(model)


# ---------------------------------------------------------------------------- compile configs
def _loss_to_keras(loss):
    if loss is None:
        return None
    if loss.get_config() == type(loss)().get_config():
        return loss.name   # a built-in loss with its defaults: Keras writes the name it was given
    return _wrap("keras.losses", type(loss).__name__, _jsonable(loss.get_config()))


def _metric_to_keras(metric):
    if isinstance(metric, str):
        return metric
    if not isinstance(metric, metrics.Metric):
        return metric.__name__   # a metric function: Keras writes a built-in one by its name
    return _wrap("keras.metrics", type(metric).__name__, _jsonable(metric.get_config()))


def optimizer_to_keras(optimizer, legacy=False):
    config = _jsonable(optimizer.get_config())
    if legacy:
        return {"class_name": type(optimizer).__name__, "config": config}
    return _wrap("keras.optimizers", type(optimizer).__name__, config)


def _each(value, leaf):
    """``leaf`` applied to every entry of a per-output structure (a dict by output name, a
    list by output) or to the single entry."""
    if isinstance(value, dict) and not _is_serialized_object(value):
        return {k: _each(v, leaf) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_each(v, leaf) for v in value]
    return None if value is None else leaf(value)


def compile_to_keras(model, legacy=False):
    """Keras 3's compile_config (or, ``legacy``, an .h5 file's training_config)."""
    if not getattr(model, "compiled", False):
        return None
    weighted = getattr(model, "_weighted_metric_identifiers", None) or None
    config = {"loss": _each(model.loss, _loss_to_keras),
              "loss_weights": _jsonable(getattr(model, "loss_weights", None)),
              "metrics": _each(model._metric_identifiers, _metric_to_keras),
              "weighted_metrics": _each(weighted, _metric_to_keras),
              "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}
    if legacy:
        config["optimizer_config"] = optimizer_to_keras(model.optimizer, legacy=True)
        return config
    return {"optimizer": optimizer_to_keras(model.optimizer), **config}


def _object_from_keras(ctx, value, module, what):
    """A loss, metric or optimizer: a name, or ``{"class_name", "config"}`` with Keras's extra
    keys removed."""
    if isinstance(value, str):
        return value
    _expect(ctx, value, dict, what)
    class_name = _expect(ctx, value.get("class_name"), str, f"{what}: class_name")
    config = _expect(ctx, value.get("config", {}), dict, f"{what}: config")
    try:
        cls = type(module.get(class_name))
    except ValueError as exc:
        raise ctx.error(f"{what}: {exc}") from None
    if module is losses and config.get("reduction") == "auto":
        config = {**config, "reduction": "sum_over_batch_size"}   # tf.keras 2's "auto" is that
    config = _keep_known(ctx, cls, {k: v for k, v in config.items() if k not in _KERAS_ONLY_ANY}, what)
    try:
        if "custom_objects" in inspect.signature(cls.from_config).parameters:
            return cls.from_config(config, custom_objects=ctx.custom_objects)   # a schedule may be one's own
        return cls.from_config(config)
    except CONFIG_ERRORS as exc:
        raise ctx.error(f"{what}: {exc}") from None


def compile_from_keras(ctx, model, config):
    """Compile ``model`` as a Keras compile_config (or tf.keras 2 training_config) says."""
    _expect(ctx, config, dict, "compile configuration")
    optimizer = config.get("optimizer", config.get("optimizer_config"))
    if optimizer is None:
        raise ctx.error("the compile configuration has no optimizer")
    optimizer = _object_from_keras(ctx, optimizer, optimizers, "optimizer")
    loss = _each(config.get("loss"), lambda v: _object_from_keras(ctx, v, losses, "loss"))

    def metric_list(key):
        value = config.get(key)
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list) and len(model.outputs) == 1:
            value = value[0]   # tf.keras 2 writes one list per output
        return _each(value, lambda v: v if isinstance(v, str) else _object_from_keras(ctx, v, metrics, "a metric"))

    arguments = {"loss_weights": config.get("loss_weights"), "weighted_metrics": metric_list("weighted_metrics")}
    try:
        model.compile(optimizer=optimizer, loss=loss, metrics=metric_list("metrics"),
                      **{k: v for k, v in arguments.items() if v is not None})
    except CONFIG_ERRORS as exc:
        raise ctx.error(f"compile configuration: {exc}") from None
