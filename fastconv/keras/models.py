"""Models, as ``keras.models``: the functional ``Model(inputs, outputs)``, ``Sequential`` and
``load_model``.

Both are a graph of layer calls (fastconv.keras.graph.Graph) plus the training loop
(fastconv.keras.trainer.Trainer).  A Sequential records its graph as layers are added, once it
knows its input shape (from ``input_shape=`` on the first layer, an ``Input``, or the first data
it sees).  A model is itself a layer: it can be called inside another model.
"""

import numpy as np

from fastconv.keras import backend, saving
from fastconv.keras.graph import Graph
from fastconv.keras.layers import deserialize as deserialize_layer
from fastconv.keras.layers import serialize as serialize_layer
from fastconv.keras.layers.base import InputSpec, KerasTensor, Layer, is_symbolic, register_builtin_alias
from fastconv.keras.layers.core import InputLayer
from fastconv.keras.summary import print_summary
from fastconv.keras.trainer import Trainer


class _CallGraphs:
    """The traces of a subclassed model's call(), one per input signature and training flag,
    behind the interface of a Graph that the training loop uses (run, backprop)."""

    def __init__(self, model):
        self.model = model

    def run(self, arrays, training=False, **kwargs):
        self.model._note_first_batch(arrays)
        graph = self.model._trace_graph([a.shape for a in arrays], [a.dtype for a in arrays], training)
        return graph.run(arrays, training=training, **kwargs)

    def backprop(self, tape, output_grads, wrt_logits=None, inputs_need_grad=False):
        return tape.graph.backprop(tape, output_grads, wrt_logits, inputs_need_grad)


def _operation_free(layers):
    return [layer for layer in layers if not layer._is_operation]


def _input_shapes(input_shape):
    """A list of shapes from one shape or a list of them."""
    if isinstance(input_shape, (list, tuple)) and input_shape and all(
            isinstance(s, (list, tuple)) for s in input_shape):
        return [tuple(s) for s in input_shape]
    return [tuple(input_shape)]


class Model(Trainer, Layer):
    """A model, as ``keras.Model``, in its two forms:

    - functional: ``Model(inputs=Input((28, 28, 1)), outputs=last_layer_output)``;
    - subclassed: a subclass whose ``__init__`` creates layers as attributes and whose
      ``call(inputs, training=False)`` uses them.  The model is built at its first call (or
      ``build(input_shape)``, ``fit``, ``predict``) by tracing ``call()`` on symbolic inputs into
      a graph (one per input signature), which then trains as a functional model does.
    """

    _is_sequential = False

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True, **kwargs):
        self._subclassed = inputs is None and type(self).call is not Model.call
        if (inputs is None) != (outputs is None) or (inputs is None and not self._subclassed
                                                      and not self._is_sequential):
            raise ValueError("Model: pass both inputs=... and outputs=... (symbolic tensors from Input() and layer "
                             "calls), or subclass Model and define call() (subclassed models are built by tracing "
                             f"it). Received: inputs={inputs!r}, outputs={outputs!r}")
        if name is None and type(self) is Model:
            name = backend.unique_name("functional")
        Layer.__init__(self, name=name, trainable=trainable, **kwargs)
        self._init_trainer()
        self._graph = None
        self._nested_outputs = False
        self._call_graphs = _CallGraphs(self) if self._subclassed else None
        self._output_dict_keys = None   # the keys, in the given order, of a dict of outputs
        if inputs is not None:
            self._nested_outputs = isinstance(outputs, (list, tuple))
            ins = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
            if isinstance(outputs, dict):
                # As Keras 3: the outputs in the order of their sorted keys (targets and losses
                # given as lists follow it, logs take the keys' names), returned as a dict.
                if not all(isinstance(k, str) for k in outputs):
                    raise ValueError(f"Model: the keys of a dict of outputs must be strings. Received: {list(outputs)}")
                self._output_dict_keys = list(outputs)
                outs = [outputs[k] for k in sorted(outputs)]
            else:
                outs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
            self._set_graph(Graph(ins, outs, self.name))

    def _set_graph(self, graph):
        names = [layer.name for layer in _operation_free(graph.layers)]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f'Model "{self.name}": the layer names {duplicates} are used more than once; all layer '
                             "names in a model must be unique")
        self._graph = graph
        self.built = True

    # ------------------------------------------------------------------------------------ graph
    @property
    def layers(self):
        """The layers: of the graph (functional; keras.ops nodes are not layers), or the ones the
        model holds as attributes (subclassed), as in Keras."""
        if self._subclassed:
            return self._sublayers()
        return _operation_free(self._graph.layers) if self._graph is not None else []

    def _sublayers(self):
        if vars(self).get("_subclassed"):
            return Layer._sublayers(self)
        graph = vars(self).get("_graph")
        return _operation_free(graph.layers) if graph is not None else []

    def _summary_layers(self):
        """The rows of summary(): a functional model's keras.ops nodes are rows too, as in Keras."""
        if self._subclassed or self._is_sequential or self._graph is None:
            return self.layers
        return self._graph.layers

    @property
    def inputs(self):
        return list(self._graph.inputs) if self._graph is not None else []

    @property
    def outputs(self):
        return list(self._graph.outputs) if self._graph is not None else []

    # Keras: a functional (or built Sequential) model's `input` and `output` are the tensors it
    # was made of, so that a model is extended from them (Model(base.input, head(base.output))).
    @property
    def input(self):
        if self._subclassed or not self.inputs:
            return Layer.input.fget(self)
        return self.inputs[0] if len(self.inputs) == 1 else self.inputs

    @property
    def output(self):
        if self._subclassed or not self.outputs:
            return Layer.output.fget(self)
        return self._structured(self.outputs)

    @property
    def input_shape(self):
        shapes = [t.shape for t in self.inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self):
        shapes = [t.shape for t in self.outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def _multiple_inputs(self):
        if self._subclassed and self._graph is None:
            return vars(self).get("_list_inputs", False)
        return len(self.inputs) > 1

    def _graph_for(self, input_shape):
        self._ensure_built(input_shape)
        return self._call_graphs if self._subclassed else self._graph

    def _ensure_built(self, input_shape):
        if self._subclassed and self._graph is None:
            self.build(input_shape)

    def _plot_nodes(self):
        return self._graph.all_nodes if self._graph is not None else []

    def _data_context(self, x):
        expected = self.input_shape
        return f'model "{self.name}" expects inputs of shape {expected}; it received x of shape {tuple(x.shape)}'

    def get_layer(self, name=None, index=None):
        """A layer by its name (``get_layer('conv2d')``) or its position (``get_layer(index=0)``)."""
        if index is not None and name is not None:
            raise ValueError("get_layer: provide only a layer name or a layer index")
        if index is not None:
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only has "
                                 f"{len(self.layers)} layers.")
            return self.layers[index]
        if isinstance(name, int):
            return self.get_layer(index=name)
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: {[layer.name for layer in self.layers]}.")

    # ---------------------------------------------------------------------------------- weights
    def set_weights(self, weights):
        """Set all weights from a list in the order of ``get_weights()`` (layer by layer, in each
        layer kernel then bias...)."""
        weights = list(weights)
        own = self.weights
        if len(weights) != len(own):
            raise ValueError(f'Model "{self.name}" has {len(own)} weights, received {len(weights)}')
        for variable, value in zip(own, weights):
            if tuple(getattr(value, "shape", ())) != variable.shape:
                raise ValueError(f'Model "{self.name}": weight {variable.path} has shape {variable.shape}, received a '
                                 f"value of shape {tuple(getattr(value, 'shape', ()))}")
        for variable, value in zip(own, weights):
            variable.assign(value)

    def _check_built(self):
        if self._subclassed and self._graph is None:
            raise ValueError("This model has not yet been built. Build the model first by calling `build()` or by "
                             "calling the model on a batch of data.")

    def summary(self, line_length=None, positions=None, print_fn=None):
        """Print Keras's table of layers, output shapes and parameter counts."""
        self._check_built()
        print_summary(self, line_length=line_length, positions=positions, print_fn=print_fn)

    # ------------------------------------------------------------------ the model as a layer
    def build(self, input_shape):
        """A subclassed model: trace call() on symbolic inputs of ``input_shape`` (with the
        batch axis, e.g. (None, 28, 28, 1); a list of shapes for several inputs)."""
        if self._subclassed and self._graph is None:
            shapes = _input_shapes(input_shape)
            if "_list_inputs" not in vars(self):
                self._list_inputs = len(shapes) > 1
            self._build_input_shape = shapes if self._list_inputs else shapes[0]
            self._set_graph(self._trace_graph(shapes, [self.dtype] * len(shapes), False))
        self.built = True

    def _trace_graph(self, shapes, dtypes, training):
        """The graph of call() for these inputs (traced once per signature and training flag)."""
        trace = self._trace(shapes, dtypes, training)
        if trace.graph is None:
            raise ValueError(f'Model "{self.name}" ({type(self).__name__}): fastconv.keras could not trace its call() '
                             f"on symbolic inputs of shape {[(None,) + tuple(s)[1:] for s in shapes]}: "
                             f"{type(trace.error).__name__}: {trace.error}. A subclassed model's call() must be "
                             "written with fastconv.keras layers and fastconv.keras.ops (or operators) on its "
                             "inputs.") from trace.error
        return trace.graph

    def __call__(self, inputs, *args, training=None, mask=None, **kwargs):
        if self._subclassed and self._graph is None and "_list_inputs" not in vars(self):
            self._list_inputs = isinstance(inputs, (list, tuple))
        if self._subclassed and not is_symbolic(inputs):
            self._note_first_batch(list(inputs) if isinstance(inputs, (list, tuple)) else [inputs])
        return super().__call__(inputs, *args, training=training, mask=mask, **kwargs)

    # A subclassed model learns the structure of its inputs (one array or a list) from the first
    # data it is given, as Keras builds it there.
    def _build_from_data(self, x):
        if self._subclassed and self._graph is None and isinstance(x, (list, tuple)) and len(x) > 1 and all(
                hasattr(a, "shape") for a in x):
            self._list_inputs = True
            self.build([(None,) + tuple(a.shape)[1:] for a in x])

    def _refuse_custom_steps(self, fn, steps):
        """Keras runs a subclass's own train_step (written with tf.GradientTape) or compute_loss;
        fastconv.keras has no tape: refuse rather than silently run its own loop instead."""
        overridden = [name for name in steps if hasattr(type(self), name)]
        if overridden:
            raise ValueError(f'{fn}: model "{self.name}" ({type(self).__name__}) defines {", ".join(overridden)}, '
                             "which fastconv.keras cannot run (it has no GradientTape: gradients come from the "
                             "layers' backward passes). Remove it to train with compile()'s loss and metrics.")

    def fit(self, x=None, y=None, *args, **kwargs):
        self._refuse_custom_steps("fit", ("train_step", "compute_loss", "compute_metrics"))
        self._build_from_data(x)
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._refuse_custom_steps("evaluate", ("test_step", "compute_loss", "compute_metrics"))
        self._build_from_data(x)
        return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        self._refuse_custom_steps("predict", ("predict_step",))
        self._build_from_data(x)
        return super().predict(x, *args, **kwargs)

    def train_on_batch(self, x, y=None, *args, **kwargs):
        self._refuse_custom_steps("train_on_batch", ("train_step", "compute_loss", "compute_metrics"))
        self._build_from_data(x)
        return super().train_on_batch(x, y, *args, **kwargs)

    def test_on_batch(self, x, y=None, *args, **kwargs):
        self._refuse_custom_steps("test_on_batch", ("test_step", "compute_loss", "compute_metrics"))
        self._build_from_data(x)
        return super().test_on_batch(x, y, *args, **kwargs)

    def _note_first_batch(self, arrays):
        """Keep the shapes of the first batch a subclassed model computes on: Keras's summary
        shows its layers' output shapes for that batch (they are built on it)."""
        if "_first_batch_shapes" not in vars(self):
            self._first_batch_shapes = [tuple(np.shape(a)) for a in arrays]

    def _summary_shapes(self):
        """{id(tensor): shape} for summary(): a subclassed model's first batch through its graph."""
        if not self._subclassed or "_first_batch_shapes" not in vars(self) or self._graph is None:
            return None
        return self._graph.tensor_shapes(self._first_batch_shapes)

    def _check_input(self, shapes):
        for i, (shape, t) in enumerate(zip(shapes, self.inputs)):
            known = {axis: d for axis, d in enumerate(t.shape) if axis > 0 and d is not None}
            InputSpec(ndim=len(t.shape), axes=known).check(self, shape, i)

    def compute_output_shape(self, input_shape):
        """The output shapes for inputs of ``input_shape``: each layer's computed from its inputs
        (a model built for any image size, given 32x32 images, gives its 32x32 outputs)."""
        shapes = _input_shapes(input_shape) if self._multiple_inputs else [tuple(input_shape)]
        if self._subclassed:
            out = [t.shape for t in self._trace_graph(shapes, [self.dtype] * len(shapes), False).outputs]
        else:
            out = self._graph_for(shapes[0]).output_shapes(shapes)
        return out if len(out) > 1 else out[0]

    def call(self, inputs, training=False):
        arrays = list(inputs) if self._multiple_inputs else [inputs]
        added = []
        outputs = self._graph_for(arrays[0].shape).run(arrays, training=bool(training), loss_values=added,
                                                      context=self._data_context(arrays[0]))[0]
        self._added_losses = [float(v) for v in added]   # a subclassed model's own add_loss()
        return self._structured(outputs, keep_list=self._nested_outputs)

    def forward(self, inputs, training=False):
        arrays = list(inputs) if self._multiple_inputs else [inputs]
        added = []
        outputs, tape, _ = self._graph_for(arrays[0].shape).run(arrays, training=training, record=True,
                                                                loss_values=added)
        self._added_losses = [float(v) for v in added]
        return (outputs if len(outputs) > 1 else outputs[0]), tape

    def backward(self, tape, grad, need_input_grad=True):
        grads = grad if len(tape.graph.outputs) > 1 else [grad]
        input_grads, weight_grads = tape.graph.backprop(tape, grads, inputs_need_grad=need_input_grad)
        return (input_grads if self._multiple_inputs else input_grads[0]), weight_grads

    # ----------------------------------------------------------------------------- save & load
    def save(self, filepath, overwrite=True, zipped=None, **kwargs):
        """Save architecture, weights, compile arguments and optimizer state in one file, as
        Keras does: ``.keras`` is Keras 3's format, ``.h5`` the legacy HDF5 one (both load in
        Keras; ``.h5`` also takes ``include_optimizer``).  The file is replaced atomically (see
        fastconv.keras.saving)."""
        saving.save_model(self, filepath, overwrite=overwrite, zipped=zipped, **kwargs)

    def save_weights(self, filepath, overwrite=True):
        """``.weights.h5``: Keras 3's weights file; ``.h5``: tf.keras 2's legacy weights file."""
        saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath, skip_mismatch=False, by_name=False):
        """Weights from a .weights.h5, .keras or legacy .h5 file (by order, or ``by_name`` for
        legacy files); the whole file is checked before any weight changes."""
        saving.load_weights(self, filepath, skip_mismatch=skip_mismatch, by_name=by_name)

    def get_config(self):
        """A functional model's graph of layers; a subclassed model's constructor arguments
        (its own get_config, or Keras's automatic one when they are plain values)."""
        if self._subclassed:
            return {"name": self.name, **self._automatic_config(Model), "trainable": self.trainable,
                    "dtype": self.dtype}
        nodes = [n for n in self._graph.all_nodes]
        operations = [n.layer.name for n in nodes if n.layer._is_operation]
        if operations:
            raise ValueError(f'Model "{self.name}": its keras.ops operations {operations} (operators and ops on '
                             "symbolic tensors between layers) cannot be serialized by fastconv.keras; wrap that "
                             "computation in a custom Layer or a Lambda to save the model")
        index = {id(n): i for i, n in enumerate(nodes)}

        def ref(t):
            layer, node_index, tensor_index = t._keras_history
            return [index[id(layer._inbound_nodes[node_index])], tensor_index]

        return {"name": self.name, "trainable": self.trainable,
                "layers": [serialize_layer(layer) for layer in self.layers],
                "nodes": [{"layer": n.layer.name, "inputs": [ref(t) for t in n.inputs]} for n in nodes],
                "inputs": [ref(t) for t in self.inputs], "outputs": [ref(t) for t in self.outputs],
                "nested_outputs": self._nested_outputs,
                **({"output_keys": self._output_dict_keys} if self._output_dict_keys else {})}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """A model from its get_config(): a functional one from its graph; a subclassed one
        from its constructor arguments (``cls(**config)``), as Keras does."""
        return cls._from_config_with_objects(config, custom_objects)

    @classmethod
    def _from_config_with_objects(cls, config, custom_objects=None):
        if "layers" not in config or cls.call is not Model.call:
            return Layer.from_config.__func__(cls, config)
        layers = {c["config"]["name"]: deserialize_layer(c, custom_objects) for c in config["layers"]}
        tensors = []  # per node of the saved graph, its output tensors in the new one
        for spec in config["nodes"]:
            layer = layers[spec["layer"]]
            if isinstance(layer, InputLayer):
                outs = layer._inbound_nodes[0].outputs
            else:
                args = [tensors[i][j] for i, j in spec["inputs"]]
                out = layer(args if layer._multiple_inputs else args[0])
                outs = out if isinstance(out, list) else [out]
            tensors.append(outs)
        inputs = [tensors[i][j] for i, j in config["inputs"]]
        outputs = [tensors[i][j] for i, j in config["outputs"]]
        if config.get("output_keys"):     # the saved outputs are in the sorted keys' order
            by_key = dict(zip(sorted(config["output_keys"]), outputs))
            outputs = {k: by_key[k] for k in config["output_keys"]}
        elif not config.get("nested_outputs") and len(outputs) == 1:
            outputs = outputs[0]
        return Model(inputs if len(inputs) > 1 else inputs[0], outputs,
                     name=config["name"], trainable=config.get("trainable", True))

    def to_json(self, **kwargs):
        """The model's Keras 3 JSON (what ``model_from_json`` here and in Keras reads back)."""
        return saving.model_to_json(self, **kwargs)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


class Sequential(Model):
    """A stack of layers, each reading the previous one's output.

    ``Sequential([Conv2D(32, 3, input_shape=(100, 100, 3)), ...])`` or ``model.add(layer)``.
    """

    _is_sequential = True

    def __init__(self, layers=None, trainable=True, name=None):
        super().__init__(name=name, trainable=trainable)
        self._layers = []       # including the InputLayer, once known
        self._chain = []        # the symbolic output of each of _layers, once the input shape is known
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self):
        return [layer for layer in self._layers if not isinstance(layer, InputLayer)]

    def _sublayers(self):
        return [layer for layer in vars(self).get("_layers", []) if not isinstance(layer, InputLayer)]

    def add(self, layer):
        """Append a layer.  With a known input shape it is called at once, so that a layer that does
        not fit (e.g. a Conv2D after a Flatten) fails here, with its name."""
        if isinstance(layer, KerasTensor):
            origin = layer._keras_history[0]
            if not isinstance(origin, InputLayer):
                raise ValueError("Sequential.add takes layers (or an Input() tensor); received a layer's output tensor")
            layer = origin
        if not isinstance(layer, Layer):
            raise TypeError(f"Only instances of Layer can be added to a Sequential model. Received: {layer!r} "
                            f"(of type {type(layer).__name__})")
        if not self._layers and not isinstance(layer, InputLayer) and layer._input_shape_arg is not None:
            self.add(InputLayer(shape=layer._input_shape_arg))
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(f"All layers added to a Sequential model should have unique names. Name '{layer.name}' "
                             "is already the name of a layer in this model.")
        if isinstance(layer, InputLayer):
            if self._layers:
                raise ValueError(f'Sequential model "{self.name}" already has layers; an InputLayer must come first')
            self._chain.append(layer.output)
            self.built = True
        elif self._chain:
            self._chain.append(layer(self._chain[-1]))
        self._layers.append(layer)
        self._graph = None

    def pop(self):
        """Remove the last layer and return it."""
        if not self.layers:
            raise TypeError("There are no layers in the model.")
        layer = self._layers.pop()
        if self._chain:
            self._chain.pop()
        self._graph = None
        return layer

    def build(self, input_shape=None):
        """Give the model its input shape and build every layer.  As in Keras the first axis of
        ``input_shape`` is the batch, whatever its size: a Sequential first called on one image
        (height, width, channels) takes its height for the batch axis, as Keras does."""
        if self._chain:
            return
        if input_shape is None:
            raise ValueError(f'Sequential "{self.name}": build() needs an input shape')
        shape = tuple(input_shape)[1:]
        layers = list(self._layers)
        self._layers = []
        self.add(InputLayer(shape=shape))
        for layer in layers:
            self.add(layer)
        self._built_from_data = True

    def _ensure_built(self, input_shape):
        if not self._chain:
            if not self._layers:
                raise ValueError(f'Sequential model "{self.name}" has no layers')
            self.build((None,) + tuple(input_shape[1:]))

    def _check_input(self, shapes):
        # Built by build() or its first call (no Input, no input_shape), a Sequential runs on inputs of
        # other sizes, as Keras's does (an augmentation Sequential tried on one image, then mapped
        # over resized batches): only the rank is held.
        if vars(self).get("_built_from_data"):
            for i, (shape, t) in enumerate(zip(shapes, self.inputs)):
                InputSpec(ndim=len(t.shape)).check(self, shape, i)
        else:
            super()._check_input(shapes)

    def _graph_for(self, input_shape):
        self._ensure_built(input_shape)
        if self._graph is None:
            self._set_graph(Graph([self._chain[0]], [self._chain[-1]], self.name))
        return self._graph

    @property
    def inputs(self):
        return self._chain[:1]

    @property
    def outputs(self):
        return self._chain[-1:]

    def _plot_nodes(self):
        return self._graph_for(self.input_shape).all_nodes if self._chain else []

    def _data_context(self, x):
        return (f'Sequential model "{self.name}" was built for inputs of shape {self.input_shape}; it received '
                f"x of shape {tuple(x.shape)}")

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "layers": [serialize_layer(layer) for layer in self._layers]}

    @classmethod
    def _from_config_with_objects(cls, config, custom_objects=None):
        model = cls(name=config["name"], trainable=config.get("trainable", True))
        for layer_config in config["layers"]:
            model.add(deserialize_layer(layer_config, custom_objects))
        return model




register_builtin_alias("Functional", Model)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """A model from a Keras file (``.keras`` of Keras 3, ``.h5`` of Keras 3 or tf.keras 2):
    architecture, weights and (with ``compile``) its compile arguments and optimizer state.  The
    file is read as data only: no code from it runs (a ``Lambda`` layer is refused unless
    ``safe_mode=False``)."""
    return saving.load_model(filepath, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)


def model_from_json(json_string, custom_objects=None):
    """A model (freshly initialized weights) from Keras's JSON (``to_json`` of Keras 3,
    tf.keras 2 or fastconv)."""
    return saving.model_from_json(json_string, custom_objects)


def save_model(model, filepath, overwrite=True, zipped=None, **kwargs):
    """``model.save(filepath)``, as ``keras.models.save_model``."""
    saving.save_model(model, filepath, overwrite=overwrite, zipped=zipped, **kwargs)


def clone_model(model):
    """A new model with the same architecture (new layers, freshly initialized weights)."""
    return deserialize_layer(serialize_layer(model))
