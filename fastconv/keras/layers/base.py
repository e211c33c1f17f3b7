"""The base Layer, its weights (Variable), symbolic tensors (KerasTensor) and graph nodes.

A layer computes in two ways:

- ``call(inputs, training)``: the forward pass alone (``predict``, ``evaluate``, ``layer(x)``);
- ``forward(inputs, training) -> (outputs, cache)`` and ``backward(cache, grad, need_input_grad)
  -> (input_grad, {variable: weight_grad})``: the pair that training uses.  ``forward`` keeps in
  ``cache`` exactly what ``backward`` needs (the input, the output, an argmax...), and
  ``backward`` computes only the gradients asked for: a model's first layer skips the gradient
  of its input, which nothing needs.

Called on a KerasTensor (``Input(...)`` or another layer's symbolic output), a layer builds its
weights from the shape and returns a new KerasTensor: that is how Sequential and functional
models record their graph of layers.
"""
import numpy as np

from fastconv.keras import backend


class Variable:
    """A weight of a layer: a NumPy array with a name, updated in place by the optimizers."""

    def __init__(self, value, name, trainable=True, path=None):
        self.value = value
        self.name = name
        self.trainable = trainable
        self.path = path or name

    @property
    def shape(self):
        return self.value.shape

    @property
    def dtype(self):
        return self.value.dtype

    @property
    def ndim(self):
        return self.value.ndim

    def numpy(self):
        return self.value.copy()

    def assign(self, value):
        value = np.asarray(value)
        if value.shape != self.value.shape:
            raise ValueError(f"Variable {self.path} has shape {self.value.shape}; cannot assign a value of "
                             f"shape {value.shape}")
        self.value[...] = value

    def __array__(self, dtype=None, copy=None):
        return np.array(self.value, dtype=dtype, copy=True) if copy else np.asarray(self.value, dtype=dtype)

    def __repr__(self):
        return f"<Variable path={self.path}, shape={self.shape}, dtype={self.dtype}>"


class InputSpec:
    """What a layer accepts: a rank (``ndim``), a minimum rank (``min_ndim``), and fixed sizes of
    some axes (``axes={-1: 3}``: three channels)."""

    def __init__(self, ndim=None, min_ndim=None, axes=None):
        self.ndim, self.min_ndim, self.axes = ndim, min_ndim, dict(axes or {})

    def check(self, layer, shape, index=0):
        where = f'Input {index} of layer "{layer.name}" is incompatible with the layer'
        shape = tuple(shape)
        if self.ndim is not None and len(shape) != self.ndim:
            raise ValueError(f"{where}: expected ndim={self.ndim}, found ndim={len(shape)}. "
                             f"Full shape received: {shape}{_rank_hint(layer, shape, self.ndim)}")
        if self.min_ndim is not None and len(shape) < self.min_ndim:
            raise ValueError(f"{where}: expected min_ndim={self.min_ndim}, found ndim={len(shape)}. "
                             f"Full shape received: {shape}{_rank_hint(layer, shape, self.min_ndim)}")
        for axis, size in self.axes.items():
            if -len(shape) <= axis < len(shape) and shape[axis] is not None and shape[axis] != size:
                raise ValueError(f"{where}: expected axis {axis} of input shape to have value {size}, "
                                 f"but received input with shape {shape}")


def _rank_hint(layer, shape, expected):
    if expected == 4 and len(shape) == 3:
        return (f". {type(layer).__name__} takes a batch of images (batch, height, width, channels): "
                "grayscale images need a channel axis, e.g. x[..., None]")
    if expected == 4 and len(shape) == 2:
        return f". {type(layer).__name__} takes images; a Flatten or Dense output cannot be convolved"
    return ""


class KerasTensor:
    """A symbolic tensor: a shape (``None`` for the batch) and the layer call that produces it."""

    def __init__(self, shape, dtype="float32", name=None):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = str(np.dtype(dtype))
        self.name = name
        self._keras_history = None  # (layer, node_index, tensor_index)

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"


class Node:
    """One call of a layer on symbolic tensors: its input tensors and output tensors."""

    def __init__(self, layer, inputs, outputs):
        self.layer = layer
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        index = len(layer._inbound_nodes)
        layer._inbound_nodes.append(self)
        for i, t in enumerate(self.outputs):
            t._keras_history = (layer, index, i)

    @property
    def parent_nodes(self):
        return [t._keras_history[0]._inbound_nodes[t._keras_history[1]] for t in self.inputs]


def is_symbolic(inputs):
    items = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    return any(isinstance(t, KerasTensor) for t in items)


_BUILTIN_CLASSES = {}


def builtin_classes():
    """fastconv.keras's own layer and model classes by name (what a saved configuration may
    name without ``custom_objects``)."""
    return dict(_BUILTIN_CLASSES)


def register_builtin_alias(name, cls):
    """Another name a configuration may use for a built-in class (Keras 3 calls a functional
    model's class "Functional")."""
    _BUILTIN_CLASSES[name] = cls


class Layer:
    """Base class of every layer (see the module docstring for the protocol)."""

    # Layers that consume a list of tensors (Add) set this.
    _multiple_inputs = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Register fastconv.keras's public classes, never a user's: as in Keras, a user's class
        # must be passed in custom_objects to be loaded.
        if cls.__module__.startswith("fastconv.keras.") and not cls.__name__.startswith("_"):
            _BUILTIN_CLASSES.setdefault(cls.__name__, cls)

    def __init__(self, name=None, trainable=True, dtype=None, **kwargs):
        input_dim = kwargs.pop("input_dim", None)
        input_shape = kwargs.pop("input_shape", None)
        batch_input_shape = kwargs.pop("batch_input_shape", None)
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}")
        if input_dim is not None:
            input_shape = (input_dim,)
        if batch_input_shape is not None:
            input_shape = tuple(batch_input_shape)[1:]
        # The legacy `input_shape=` of a model's first layer: Sequential turns it into an InputLayer.
        self._input_shape_arg = None if input_shape is None else _shape_tuple(input_shape, "input_shape", type(self).__name__)
        if name is None:
            name = backend.auto_name(type(self).__name__)
        elif not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"{type(self).__name__}: name must be a non-empty string without '/'. Received: name={name!r}")
        self.name = name
        self.trainable = bool(trainable)
        self.dtype = _standardize_dtype(dtype, type(self).__name__)
        self.built = False
        self.input_spec = None
        self._weights = []
        self._inbound_nodes = []

    # ----------------------------------------------------------------------------------- weights
    def add_weight(self, shape, initializer, name, trainable=True):
        value = np.ascontiguousarray(initializer(tuple(shape), self.dtype), dtype=self.dtype)
        if value.shape != tuple(shape):
            raise ValueError(f'Layer "{self.name}": the initializer of weight {name} returned shape '
                             f"{value.shape}, expected {tuple(shape)}")
        variable = Variable(value, name, trainable, path=f"{self.name}/{name}")
        self._weights.append(variable)
        return variable

    @property
    def weights(self):
        return list(self._weights)

    @property
    def trainable_weights(self):
        return [w for w in self._weights if w.trainable] if self.trainable else []

    @property
    def non_trainable_weights(self):
        return [w for w in self._weights if not (w.trainable and self.trainable)]

    @property
    def variables(self):
        return self.weights

    @property
    def trainable_variables(self):
        return self.trainable_weights

    @property
    def non_trainable_variables(self):
        return self.non_trainable_weights

    def get_weights(self):
        """Copies of the weights, in Keras's layout (Conv2D kernel (kh, kw, in, out), Dense (in, out))."""
        return [w.numpy() for w in self.weights]

    def set_weights(self, weights):
        own = self.weights
        weights = list(weights)
        if len(weights) != len(own):
            raise ValueError(f'Layer "{self.name}" ({type(self).__name__}) expects {len(own)} weights '
                             f"({', '.join(f'{w.name} {w.shape}' for w in own)}), but received {len(weights)}")
        for variable, value in zip(own, weights):
            value = np.asarray(value)
            if value.shape != variable.shape:
                raise ValueError(f'Layer "{self.name}" ({type(self).__name__}): weight {variable.name} has shape '
                                 f"{variable.shape}, received a value of shape {value.shape}")
        for variable, value in zip(own, weights):
            variable.assign(value)

    def count_params(self):
        return int(sum(w.value.size for w in self.weights))

    # ---------------------------------------------------------------------------- build & shapes
    def build(self, input_shape):
        self.built = True

    def compute_output_shape(self, input_shape):
        """The output shape for an input shape (None for the batch).  By default the layer is
        run on zeros with a batch of one."""
        shapes = input_shape if self._multiple_inputs else [input_shape]
        zeros = [np.zeros(tuple(1 if d is None else d for d in s), dtype=self.dtype) for s in shapes]
        out = self.call(zeros if self._multiple_inputs else zeros[0], training=False)
        return (None,) + tuple(np.shape(out)[1:])

    def _maybe_build(self, input_shape):
        if not self.built:
            self.build(input_shape)
            self.built = True

    def _check_input(self, shapes):
        if self.input_spec is not None:
            for i, shape in enumerate(shapes):
                self.input_spec.check(self, shape, i)

    # --------------------------------------------------------------------------------- computing
    def __call__(self, inputs, training=None):
        if self._multiple_inputs and not isinstance(inputs, (list, tuple)):
            raise ValueError(f'Layer "{self.name}" ({type(self).__name__}) takes a list of inputs. '
                             f"Received: {type(inputs).__name__}")
        if not self._multiple_inputs and isinstance(inputs, (list, tuple)) and is_symbolic(inputs):
            raise ValueError(f'Layer "{self.name}" ({type(self).__name__}) takes one input, received a list of {len(inputs)}')
        if is_symbolic(inputs):
            return self._call_symbolic(inputs)
        arrays = [self._as_array(x) for x in inputs] if self._multiple_inputs else self._as_array(inputs)
        shapes = [a.shape for a in arrays] if self._multiple_inputs else arrays.shape
        self._maybe_build(shapes)
        self._check_input(shapes if self._multiple_inputs else [shapes])
        return self.call(arrays, training=bool(training))

    def _as_array(self, x):
        if isinstance(x, KerasTensor):
            raise TypeError(f'Layer "{self.name}": cannot mix symbolic tensors and arrays in one call')
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f'Layer "{self.name}" ({type(self).__name__}) takes numbers; received dtype '
                            f"{arr.dtype} with shape {arr.shape}")
        return arr.astype(self.dtype, copy=False)

    def _call_symbolic(self, inputs):
        tensors = list(inputs) if self._multiple_inputs else [inputs]
        for t in tensors:
            if not isinstance(t, KerasTensor):
                raise TypeError(f'Layer "{self.name}": all inputs of a symbolic call must be KerasTensors '
                                f"(from Input() or another layer); received {type(t).__name__}")
        shapes = [t.shape for t in tensors] if self._multiple_inputs else tensors[0].shape
        self._maybe_build(shapes)
        self._check_input(shapes if self._multiple_inputs else [shapes])
        out_shape = self.compute_output_shape(shapes)
        many = isinstance(out_shape, list)
        outputs = [KerasTensor(s, self.dtype) for s in (out_shape if many else [out_shape])]
        Node(self, tensors, outputs)
        return outputs if many else outputs[0]

    def call(self, inputs, training=False):
        """The forward pass alone; by default the output of :meth:`forward`."""
        if type(self).forward is Layer.forward:
            raise NotImplementedError(f'Layer "{self.name}" ({type(self).__name__}) defines neither call() nor forward()')
        return self.forward(inputs, training)[0]

    def forward(self, inputs, training=False):
        """(outputs, cache): the forward pass and what :meth:`backward` needs."""
        return self.call(inputs, training), None

    def backward(self, cache, grad, need_input_grad=True):
        """(gradient of the input(s), {variable: gradient}) from the gradient of the output."""
        raise NotImplementedError(
            f'Layer "{self.name}" ({type(self).__name__}) has no backward(): fastconv.keras computes '
            "gradients layer by layer, so a layer used in training must define forward(inputs, training) "
            "-> (outputs, cache) and backward(cache, grad, need_input_grad) -> (input_grad, {variable: grad})")

    # ------------------------------------------------------------------------------- graph access
    def _node_attribute(self, attr):
        if not self._inbound_nodes:
            raise AttributeError(f'Layer "{self.name}" has never been called on a symbolic input and thus has no '
                                 f"{attr}; build the model with an input shape first")
        values = getattr(self._inbound_nodes[0], "outputs" if attr == "output" else "inputs")
        return values[0] if len(values) == 1 else values

    @property
    def output(self):
        """The symbolic output of the layer's first call (what Model(inputs, outputs=...) takes)."""
        return self._node_attribute("output")

    @property
    def input(self):
        return self._node_attribute("input")

    # ------------------------------------------------------------------------------ serialization
    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}
        if self._input_shape_arg is not None:
            config["input_shape"] = self._input_shape_arg
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


def _standardize_dtype(dtype, owner):
    if dtype is None:
        return backend.floatx()
    if isinstance(dtype, dict):  # a Keras DTypePolicy config
        dtype = dtype.get("config", {}).get("name", dtype)
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in ("float32", "float64"):
        raise ValueError(f"{owner}: dtype must be 'float32' or 'float64'. Received: dtype={dtype!r}")
    return name


def _shape_tuple(shape, argument, owner):
    try:
        shape = tuple(shape)
    except TypeError:
        shape = (shape,)
    if not all(d is None or (isinstance(d, (int, np.integer)) and d > 0) for d in shape):
        raise ValueError(f"{owner}: {argument} must be a tuple of positive ints (or None). Received: {argument}={shape!r}")
    return tuple(None if d is None else int(d) for d in shape)
