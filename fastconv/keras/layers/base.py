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

A layer whose class defines ``call()`` but neither ``forward`` nor ``backward`` (a custom layer
written with other layers and ``fastconv.keras.ops``, as Keras programs write them) gets its
``forward``/``backward`` from a trace: its ``call()`` run once per input signature on symbolic
tensors, which records a graph of layer and op calls (fastconv.keras.graph.trace_call).  The
layers it holds as attributes (alone, or in lists, tuples and dicts) are tracked: their weights
are the layer's weights, after its own, as in Keras.
"""
import contextlib
import contextvars
import functools
import inspect
import itertools
import math
import sys

import numpy as np

from fastconv.keras import backend

# While fastconv.keras.saving builds a model from a file: [bytes the weights may still take].  A
# configuration that asks for absurd sizes is refused here, before the allocation.
weight_bytes_left = contextvars.ContextVar("weight_bytes_left", default=None)


def _op(name):
    from fastconv.keras import ops  # ops builds on this module
    return getattr(ops, name)


def _binary(name, reflected=False):
    def method(self, other):
        return _op(name)(other, self) if reflected else _op(name)(self, other)
    method.__name__ = f"__{'r' if reflected else ''}{name}__"
    return method


class _TensorOperators:
    """``+ - * / ** @``, negation, comparisons and NumPy's functions, through fastconv.keras.ops
    (symbolic tensors and Variables compute like arrays; on a KerasTensor they record graph
    nodes)."""

    __add__, __radd__ = _binary("add"), _binary("add", True)
    __sub__, __rsub__ = _binary("subtract"), _binary("subtract", True)
    __mul__, __rmul__ = _binary("multiply"), _binary("multiply", True)
    __truediv__, __rtruediv__ = _binary("divide"), _binary("divide", True)
    __pow__, __rpow__ = _binary("power"), _binary("power", True)
    __matmul__, __rmatmul__ = _binary("matmul"), _binary("matmul", True)
    __gt__, __ge__ = _binary("greater"), _binary("greater_equal")
    __lt__, __le__ = _binary("less"), _binary("less_equal")

    def __neg__(self):
        return _op("negative")(self)

    def __abs__(self):
        return _op("absolute")(self)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        from fastconv.keras import ops
        if not any(isinstance(v, KerasTensor) for v in inputs):
            return getattr(ufunc, method)(*_arrays_of(inputs), **_arrays_of(kwargs))
        return ops.numpy_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        from fastconv.keras import ops
        if not any(isinstance(v, KerasTensor) for v in _flat(args) + _flat(list(kwargs.values()))):
            return func(*_arrays_of(args), **_arrays_of(kwargs))
        return ops.numpy_function(func, args, kwargs)


def _arrays_of(value):
    """``value`` with every Variable in it (in lists, tuples, dicts) replaced by its array."""
    if isinstance(value, Variable):
        return value.value
    if isinstance(value, list):
        return [_arrays_of(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_arrays_of(v) for v in value)
    if isinstance(value, dict):
        return {k: _arrays_of(v) for k, v in value.items()}
    return value


def _flat(items):
    out = []
    for item in items:
        out.extend(item if isinstance(item, (list, tuple)) else [item])
    return out


# Numbers the writes into variables (Variable.version); the last number given is writes_so_far().
_variable_writes = itertools.count(1)
_last_write = [0]


def writes_so_far():
    """The number of the last write into any variable (or creation of one): while it stays the
    same, no variable has changed."""
    return _last_write[0]


def _next_version():
    _last_write[0] = version = next(_variable_writes)
    return version


class Variable(_TensorOperators):
    """A weight of a layer: a NumPy array with a name, updated in place by the optimizers.

    The array (``value``) is read-only: it changes only through ``assign`` and the library's own
    updates (optimizers, BatchNormalization's moving statistics), which go through
    :meth:`_writable` and give the variable a new ``version``.  That is what lets ``predict`` keep a
    frozen inference copy of a model (BatchNormalization folded into the convolutions, filters
    packed) and know when it is stale; a write into the array itself, which would have gone
    unseen, raises NumPy's "assignment destination is read-only" instead.  (In Keras a variable's
    value cannot be written in place either.)
    """

    # Set by add_weight: the penalty training adds to the loss, the projection after each update.
    regularizer = None
    constraint = None

    def __init__(self, value, name, trainable=True, path=None):
        # A copy: the initializer's array (a custom one may return its caller's) stays the caller's.
        self._value = np.array(value, copy=True)
        self._value.flags.writeable = False
        self.version = _next_version()
        self.name = name
        self.trainable = trainable
        self.path = path or name

    @property
    def value(self):
        """The weight's array (read-only; see the class's docstring)."""
        return self._value

    @contextlib.contextmanager
    def _writable(self):
        """``with variable._writable() as array:`` writes into the weight in place; afterwards the
        variable has a new ``version`` (every variable's is unique: a counter over all writes)."""
        self._value.flags.writeable = True
        try:
            yield self._value
        finally:
            self._value.flags.writeable = False
            self.version = _next_version()

    def __setstate__(self, state):
        # An unpickled or deep-copied array comes back writeable.
        self.__dict__.update(state)
        self._value.flags.writeable = False

    @property
    def shape(self):
        return self._value.shape

    @property
    def dtype(self):
        return self._value.dtype

    @property
    def ndim(self):
        return self._value.ndim

    def numpy(self):
        return self._value.copy()

    def assign(self, value):
        value = np.asarray(value)
        if value.shape != self._value.shape:
            raise ValueError(f"Variable {self.path} has shape {self._value.shape}; cannot assign a value of "
                             f"shape {value.shape}")
        with self._writable() as array:
            array[...] = value

    def assign_add(self, value):
        self.assign(self._value + np.asarray(value))

    def assign_sub(self, value):
        self.assign(self._value - np.asarray(value))

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


class KerasTensor(_TensorOperators):
    """A symbolic tensor: a shape (``None`` for the batch) and the layer call that produces it.

    It has no values: operators, ``fastconv.keras.ops`` functions and the NumPy functions those
    cover record graph nodes; anything that needs numbers (``np.asarray``, ``if x > 0:``) raises
    a TypeError, which makes a custom layer's call() untraceable (see Layer.forward).
    """

    def __init__(self, shape, dtype="float32", name=None):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = str(np.dtype(dtype))
        self.name = name
        self._keras_history = None  # (layer, node_index, tensor_index)

    @property
    def ndim(self):
        return len(self.shape)

    def __getitem__(self, key):
        return _op("getitem")(self, key)

    def _no_value(self, what):
        raise TypeError(f"{what} of a symbolic tensor (shape {self.shape}): it has no values, only a shape. In a "
                        "layer's call(), compute with fastconv.keras.ops (or operators) instead of NumPy on values")

    def __array__(self, dtype=None, copy=None):
        caller = sys._getframe(1)   # the Python function that called np.asarray on this tensor
        if caller.f_globals.get("__name__") == "fastconv.keras.activations":
            from fastconv.keras import ops
            name = caller.f_code.co_name
            instead = f"fastconv.keras.ops.{name}(x)" if name in ops.__all__ else f"layers.Activation({name!r})"
            self._no_value(f"fastconv.keras.activations.{name} computes on arrays only (use {instead} on a "
                           "symbolic tensor); NumPy asked for the values")
        self._no_value("NumPy asked for the values")

    def __bool__(self):
        self._no_value("The truth value")

    def __iter__(self):
        self._no_value("Iteration over the rows")

    def __len__(self):
        self._no_value("The length")

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"


# The traces of call() under way: per trace, the counts of op names given inside it.  A call()
# traced by fastconv.keras is run eagerly by Keras, where its ops create no named objects, so
# they must not take names ("add", "add_1", ...) from the global counters that name the layers.
_traces_under_way = []
# The losses that add_loss() gave in each call() being traced, and the call's inputs (the
# innermost trace last).
_losses_of_traces_under_way = []
_inputs_of_traces_under_way = []


@contextlib.contextmanager
def tracing(losses=None, inputs=()):
    """Trace a call() of symbolic ``inputs``: ops are named by the trace's own counters, and the
    symbolic losses the call() adds (add_loss) are appended to ``losses``."""
    _traces_under_way.append({})
    _losses_of_traces_under_way.append(losses if losses is not None else [])
    _inputs_of_traces_under_way.append(list(inputs))
    try:
        yield
    finally:
        _traces_under_way.pop()
        _losses_of_traces_under_way.pop()
        _inputs_of_traces_under_way.pop()


def traced_call_inputs():
    """The symbolic inputs of the call() being traced (empty outside a trace)."""
    return _inputs_of_traces_under_way[-1] if _inputs_of_traces_under_way else []


def tracing_under_way():
    """Whether a call() is being traced on symbolic tensors."""
    return bool(_traces_under_way)


def operation_name(class_name):
    """The name of a new op node: from the global counters (as Keras names the operations of a
    functional model), or from the trace's own counters inside a traced call()."""
    if not _traces_under_way:
        return backend.auto_name(class_name)
    counts = _traces_under_way[-1]
    base = backend.to_snake_case(class_name)
    n = counts.get(base, 0)
    counts[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


class Node:
    """One call of a layer on symbolic tensors: its input tensors, output tensors, and the
    ``training`` flag the call was given (None: the flag of the pass that runs the graph)."""

    def __init__(self, layer, inputs, outputs, training=None):
        self.layer = layer
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.training = training
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


# Attributes of a layer that hold its own bookkeeping, never sub-layers to track.
_UNTRACKED_ATTRIBUTES = frozenset({"_inbound_nodes", "_weights", "_traces", "_auto_config", "_build_input_shape"})

# The `training` flag of the call()s running eagerly: a layer called inside another's call()
# without `training=` inherits it, as in Keras.
_training_of_running_calls = []


@functools.lru_cache(maxsize=None)
def _accepts_argument(function, argument):
    """Whether ``function`` (a call() method) names ``argument`` among its parameters (Keras
    looks at the names only: a call(inputs, **kwargs) is not given training)."""
    try:
        return argument in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _is_builtin(cls):
    return cls.__module__.startswith("fastconv.keras.")


def _auto_config(cls, args, kwargs):
    """The constructor arguments of a layer (defaults included) when they are all plain values,
    else None: what Keras's get_config returns for a custom class that does not define one."""
    try:
        signature = inspect.signature(cls.__init__)
        bound = signature.bind(None, *args, **kwargs)
    except (TypeError, ValueError):
        return None
    parameters = list(signature.parameters.values())[1:]
    if any(p.kind is inspect.Parameter.POSITIONAL_ONLY for p in parameters):
        return None
    bound.apply_defaults()
    values = dict(bound.arguments)
    values.pop(next(iter(signature.parameters)))
    for p in parameters:
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            values.update(values.pop(p.name, {}))
        elif p.kind is inspect.Parameter.VAR_POSITIONAL:
            if values.pop(p.name, ()):
                return None
    values.pop("name", None)

    def plain(v):
        if isinstance(v, (list, tuple)):
            return all(plain(x) for x in v)
        if isinstance(v, dict):
            return all(isinstance(k, str) and plain(x) for k, x in v.items())
        return v is None or isinstance(v, (str, int, float, bool))

    return values if plain(values) else None


def _unique(items):
    seen, out = set(), []
    for item in items:
        if id(item) not in seen:
            seen.add(id(item))
            out.append(item)
    return out


class Layer:
    """Base class of every layer (see the module docstring for the protocol)."""

    # Layers that consume a list of tensors (Add) set this.
    _multiple_inputs = False
    # The nodes of traced ops (fastconv.keras.ops) set this.
    _is_operation = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Register fastconv.keras's public classes, never a user's: as in Keras, a user's class
        # must be passed in custom_objects to be loaded.
        if _is_builtin(cls) and not cls.__name__.startswith("_") and not cls._is_operation:
            _BUILTIN_CLASSES.setdefault(cls.__name__, cls)

    def __new__(cls, *args, **kwargs):
        instance = super().__new__(cls)
        instance._auto_config = None if _is_builtin(cls) else _auto_config(cls, args, kwargs)
        return instance

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
        self._input_shape_arg = (None if input_shape is None
                                 else _shape_tuple(input_shape, "input_shape", type(self).__name__))
        if name is None:
            name = backend.auto_name(type(self).__name__)
        elif not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"{type(self).__name__}: name must be a non-empty string without '/'. "
                             f"Received: name={name!r}")
        self.name = name
        self._weights = []
        self._inbound_nodes = []
        self.trainable = bool(trainable)
        self.dtype = _standardize_dtype(dtype, type(self).__name__)
        self.built = False
        self.input_spec = None

    # --------------------------------------------------------------------------- tracked layers
    def _sublayers(self):
        """The layers held as attributes (alone or in lists, tuples, dicts), in the order the
        attributes were first set: what Keras's tracker records."""
        found, seen = [], {id(self)}

        def visit(value, depth):
            if isinstance(value, Layer):
                if id(value) not in seen:
                    seen.add(id(value))
                    found.append(value)
            elif depth < 4 and isinstance(value, (list, tuple)):
                for item in value:
                    visit(item, depth + 1)
            elif depth < 4 and isinstance(value, dict):
                for item in value.values():
                    visit(item, depth + 1)

        for key, value in vars(self).items():
            if key not in _UNTRACKED_ATTRIBUTES:
                visit(value, 0)
        return found

    @property
    def trainable(self):
        return self.__dict__.get("_trainable", True)

    @trainable.setter
    def trainable(self, value):
        """Freeze (False) or unfreeze the layer and every layer it tracks, as Keras does."""
        self._trainable = bool(value)
        for layer in self._sublayers():
            layer.trainable = value

    # ----------------------------------------------------------------------------------- weights
    def add_weight(self, *args, shape=None, initializer=None, dtype=None, trainable=True, autocast=True,
                   regularizer=None, constraint=None, aggregation="none", overwrite_with_gradient=False, name=None):
        """A new weight (Variable) of the layer, as Keras's ``add_weight``: ``shape`` (default
        scalar), ``initializer`` (name or object; default glorot_uniform), ``dtype`` (default the
        layer's), ``trainable``.  Positionally: shape, initializer, dtype."""
        from fastconv.keras import initializers  # initializers build on the backend only; no cycle at use
        where = f'Layer "{self.name}" ({type(self).__name__}): add_weight'
        if len(args) > 3:
            raise TypeError(f"{where} takes at most 3 positional arguments (shape, initializer, dtype) but "
                            f"{len(args)} were given")
        if args and isinstance(args[0], str):
            raise ValueError(f"`name` must be passed as a keyword argument. Received: add_weight('{args[0]}', ...). "
                             f"Use: add_weight(shape=..., name='{args[0]}').")
        if len(args) == 3 and name is None and isinstance(args[2], str) and not _names_a_dtype(args[2]):
            # fastconv's built-in layers write add_weight(shape, initializer, "kernel").
            args, name = args[:2], args[2]
        keywords = {"shape": shape, "initializer": initializer, "dtype": dtype}
        for arg, value in zip(list(keywords), args):
            if keywords[arg] is not None:
                raise ValueError(f"`{arg}` was passed both positionally and as a keyword argument.")
            keywords[arg] = value
        shape, initializer, dtype = keywords.values()
        from fastconv.keras import constraints, regularizers
        regularizer, constraint = regularizers.get(regularizer), constraints.get(constraint)
        if overwrite_with_gradient:
            raise ValueError(f"{where}: overwrite_with_gradient=True is not supported by fastconv.keras")
        shape = () if shape is None else _weight_shape(shape, where)
        if dtype is not None:
            try:
                dtype = _standardize_dtype(dtype, where)
            except ValueError:
                hint = " (the weight's name goes in name=...)" if isinstance(dtype, str) else ""
                raise ValueError(f"{where}: dtype must be 'float32' or 'float64'{hint}. "
                                 f"Received: dtype={dtype!r}") from None
        dtype = dtype or self.dtype
        initializer = initializers.get("glorot_uniform" if initializer is None else initializer)
        name = backend.auto_name("Variable") if name is None else name
        left = weight_bytes_left.get()
        if left is not None:
            size = math.prod(shape) * np.dtype(dtype).itemsize
            if size > left[0]:
                raise ValueError(f'Layer "{self.name}": weight {name} of shape {shape} would take {size} bytes, '
                                 f"more than the file being loaded holds ({left[0]} bytes left)")
            left[0] -= size
        value = np.ascontiguousarray(initializer(shape, dtype), dtype=dtype)
        if value.shape != shape:
            raise ValueError(f'Layer "{self.name}": the initializer of weight {name} returned shape '
                             f"{value.shape}, expected {shape}")
        variable = Variable(value, name, bool(trainable), path=f"{self.name}/{name}")
        variable.regularizer, variable.constraint = regularizer, constraint
        # Keras keeps the trainable weights before the non-trainable ones.
        position = len(self._weights) if not variable.trainable else next(
            (i for i, w in enumerate(self._weights) if not w.trainable), len(self._weights))
        self._weights.insert(position, variable)
        return variable

    @property
    def losses(self):
        """The penalties (floats) of the layer and the layers it tracks, as Keras's: those of its
        trainable weights' regularizers (at their current values) and of its
        activity_regularizer on the output of its last call."""
        own = [w.regularizer(w.value) for w in self._weights
               if w.regularizer is not None and w.trainable and self.trainable]
        return own + list(getattr(self, "_activity_losses", ())) + list(vars(self).get("_added_losses", ())) + \
            [loss for layer in self._sublayers() for loss in layer.losses]

    def add_loss(self, loss):
        """Add a term to the training loss from call(), as Keras's ``add_loss`` (a tensor that is
        not a scalar is summed): training adds it to the loss of each step and differentiates it
        through the traced call(); ``layer.losses`` holds the values of the last call.  It takes
        a tensor computed in call(), from the inputs or the weights."""
        if isinstance(loss, KerasTensor):
            if not _losses_of_traces_under_way:
                raise ValueError(f'Layer "{self.name}" ({type(self).__name__}): add_loss() of a symbolic tensor works '
                                 "in the call() of a layer or a subclassed model only (Keras 3 refuses it on a "
                                 "functional model too)")
            if loss.shape != ():
                from fastconv.keras import ops
                loss = ops.sum(loss)
            _losses_of_traces_under_way[-1].append(loss)
            return
        if callable(loss):
            raise TypeError(f'Layer "{self.name}" ({type(self).__name__}): add_loss() takes a tensor, not a callable '
                            "(Keras 2's zero-argument loss functions are not supported, as in Keras 3)")
        if not isinstance(loss, (np.ndarray, np.generic)):
            raise ValueError("`add_loss()` can only be called from inside `build()` or `call()`, on a tensor input. "
                             f"Received invalid value: {loss!r}")
        # A call() running eagerly (layer(x) on arrays, or an inference pass): its value only.
        vars(self).setdefault("_added_losses", []).append(float(np.sum(np.asarray(loss, dtype=np.float64))))

    @property
    def weights(self):
        """The layer's own weights (trainable first), then those of the layers it tracks."""
        return _unique(self._weights + [w for layer in self._sublayers() for w in layer.weights])

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return _unique([w for w in self._weights if w.trainable]
                       + [w for layer in self._sublayers() for w in layer.trainable_weights])

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        return _unique([w for w in self._weights if not w.trainable]
                       + [w for layer in self._sublayers() for w in layer.non_trainable_weights])

    def _differentiable_variables(self):
        """The Variables a node of this layer computes gradients for (graph.Graph asks)."""
        return self.trainable_weights

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
        if not self.built:
            raise ValueError(f"You tried to call `count_params` on layer '{self.name}', but the layer isn't built. "
                             "You can build it manually via: `layer.build(input_shape)`.")
        return int(sum(w.value.size for w in self.weights))

    # ---------------------------------------------------------------------------- build & shapes
    def build(self, input_shape):
        self.built = True

    def compute_output_shape(self, input_shape):
        """The output shape for an input shape (None for the batch).  A traced layer reads it
        from its trace; otherwise the layer is run on zeros with a batch of one."""
        shapes = input_shape if self._multiple_inputs else [input_shape]
        if self._traced_kind():
            trace = self._trace(shapes, [self.dtype] * len(shapes), False)
            if trace.graph is not None:
                # Traces leave the batch open: the outputs have the batch size of the inputs.
                batch = tuple(shapes[0])[:1]
                out = [batch + t.shape[1:] if t.shape[:1] == (None,) else t.shape for t in trace.graph.outputs]
                return out if trace.many else out[0]
        zeros = [np.zeros(tuple(1 if d is None else d for d in s), dtype=self.dtype) for s in shapes]
        out = self._invoke_call(zeros if self._multiple_inputs else zeros[0], False)
        if isinstance(out, (list, tuple)):
            return [(None,) + tuple(np.shape(o)[1:]) for o in out]
        return (None,) + tuple(np.shape(out)[1:])

    def _output_specs(self, shapes, dtypes, training):
        """([(shape, dtype)] of the outputs, whether call() returns a list) of a symbolic call."""
        if self._traced_kind() and type(self).compute_output_shape is Layer.compute_output_shape:
            trace = self._trace(shapes, dtypes, training)
            if trace.graph is not None:
                return [(t.shape, t.dtype) for t in trace.graph.outputs], trace.many
        out = self.compute_output_shape(shapes if self._multiple_inputs else shapes[0])
        many = isinstance(out, list)
        return [(s, self.dtype) for s in (out if many else [out])], many

    def _maybe_build(self, input_shape):
        if not self.built:
            self._build_input_shape = input_shape
            self.build(input_shape)
            self.built = True

    def _check_input(self, shapes):
        if self.input_spec is not None:
            for i, shape in enumerate(shapes):
                self.input_spec.check(self, shape, i)

    # --------------------------------------------------------------------------------- computing
    @classmethod
    def _traced_kind(cls):
        """A class that defines call() but neither forward nor backward: trained through a trace
        of its call()."""
        return cls.forward is Layer.forward and cls.backward is Layer.backward and cls.call is not Layer.call

    def __call__(self, inputs, *args, training=None, mask=None, **kwargs):
        if mask is not None:
            raise ValueError(f'Layer "{self.name}" ({type(self).__name__}): masks are not supported by fastconv.keras; '
                             f"received mask={mask!r}")
        if self._traced_kind() and not self._inbound_nodes and "_multiple_inputs" not in vars(self):
            # A custom layer takes what its first call gives it: one tensor or a list.
            self._multiple_inputs = isinstance(inputs, (list, tuple))
        if self._multiple_inputs and not isinstance(inputs, (list, tuple)):
            raise ValueError(f'Layer "{self.name}" ({type(self).__name__}) takes a list of inputs. '
                             f"Received: {type(inputs).__name__}")
        if not self._multiple_inputs and isinstance(inputs, (list, tuple)) and is_symbolic(inputs):
            raise ValueError(f'Layer "{self.name}" ({type(self).__name__}) takes one input, received a list of '
                             f"{len(inputs)}")
        if is_symbolic(inputs):
            if args or kwargs:
                raise ValueError(f'Layer "{self.name}" ({type(self).__name__}): arguments of call() other than the '
                                 "inputs and training are not supported on symbolic tensors by fastconv.keras. "
                                 f"Received: {len(args)} positional, keyword {sorted(kwargs)}")
            return self._call_symbolic(inputs, training)
        arrays = [self._as_array(x) for x in inputs] if self._multiple_inputs else self._as_array(inputs)
        shapes = [a.shape for a in arrays] if self._multiple_inputs else arrays.shape
        self._maybe_build(shapes)
        self._check_input(shapes if self._multiple_inputs else [shapes])
        # Called on data, a layer returns arrays that also answer .numpy(), as TensorFlow's tensors.
        return backend.as_tensor(self._invoke_call(arrays, training, *args, **kwargs))

    def _invoke_call(self, inputs, training, *args, **kwargs):
        """call(), given ``training`` only when its signature takes it (as Keras does); without
        a flag of its own a call inherits the one of the call() running it."""
        if training is None:
            training = _training_of_running_calls[-1] if _training_of_running_calls else False
        if _accepts_argument(type(self).call, "training"):
            kwargs["training"] = bool(training)
        self._added_losses = []   # layer.losses holds the terms add_loss() gave in the last call
        _training_of_running_calls.append(bool(training))
        try:
            return self.call(inputs, *args, **kwargs)
        finally:
            _training_of_running_calls.pop()

    def _as_array(self, x):
        if isinstance(x, KerasTensor):
            raise TypeError(f'Layer "{self.name}": cannot mix symbolic tensors and arrays in one call')
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f'Layer "{self.name}" ({type(self).__name__}) takes numbers; received dtype '
                            f"{arr.dtype} with shape {arr.shape}")
        return arr.astype(self.dtype, copy=False)

    def _call_symbolic(self, inputs, training=None):
        tensors = list(inputs) if self._multiple_inputs else [inputs]
        for t in tensors:
            if not isinstance(t, KerasTensor):
                raise TypeError(f'Layer "{self.name}": all inputs of a symbolic call must be KerasTensors '
                                f"(from Input() or another layer); received {type(t).__name__}")
        shapes = [t.shape for t in tensors] if self._multiple_inputs else tensors[0].shape
        self._maybe_build(shapes)
        self._check_input(shapes if self._multiple_inputs else [shapes])
        specs, many = self._output_specs([t.shape for t in tensors], [t.dtype for t in tensors],
                                         bool(training) if training is not None else False)
        outputs = [KerasTensor(s, d) for s, d in specs]
        Node(self, tensors, outputs, training=None if training is None else bool(training))
        return outputs if many else outputs[0]

    def call(self, inputs, training=False):
        """The forward pass alone; by default the output of :meth:`forward`."""
        if type(self).forward is Layer.forward:
            raise NotImplementedError(f'Layer "{self.name}" ({type(self).__name__}) defines neither call() nor '
                                      "forward()")
        return self.forward(inputs, training)[0]

    def forward(self, inputs, training=False):
        """(outputs, cache): the forward pass and what :meth:`backward` needs.  A traced layer
        runs its trace for this input signature, keeping the tape."""
        if not self._traced_kind():
            return self._invoke_call(inputs, training), None
        arrays = list(inputs) if self._multiple_inputs else [inputs]
        trace = self._trace([a.shape for a in arrays], [a.dtype for a in arrays], training)
        if trace.graph is None:
            outputs = self._invoke_call(inputs, training)
            if training and self._added_losses:
                raise ValueError(f'Layer "{self.name}" ({type(self).__name__}): its call() adds a loss (add_loss) but '
                                 "fastconv.keras could not trace it on symbolic tensors "
                                 f"({type(trace.error).__name__}: {trace.error}), so the loss would have no "
                                 "gradient. Write call() with fastconv.keras layers and fastconv.keras.ops.")
            return outputs, trace
        added = []
        outputs, tape, _ = trace.graph.run(arrays, training=training, record=True, loss_values=added)
        self._added_losses = [float(v) for v in added]
        return (outputs if trace.many else outputs[0]), tape

    def backward(self, cache, grad, need_input_grad=True):
        """(gradient of the input(s), {variable: gradient}) from the gradient of the output."""
        if not self._traced_kind():
            raise NotImplementedError(
                f'Layer "{self.name}" ({type(self).__name__}) has no backward(): fastconv.keras computes '
                "gradients layer by layer, so a layer used in training must define forward(inputs, training) "
                "-> (outputs, cache) and backward(cache, grad, need_input_grad) -> (input_grad, {variable: grad})")
        if getattr(cache, "graph", None) is None:  # an untraceable call(): it ran eagerly
            if not need_input_grad and not self.trainable_weights:
                return None, {}
            raise ValueError(
                f'Layer "{self.name}" ({type(self).__name__}) cannot be trained: fastconv.keras could not trace its '
                f"call() on symbolic tensors ({type(cache.error).__name__}: {cache.error}), so it has no gradient for "
                "it. Write call() with fastconv.keras layers and fastconv.keras.ops (or operators) on its inputs, or "
                "give the layer forward(inputs, training) -> (outputs, cache) and backward(cache, grad, "
                "need_input_grad) -> (input_grad, {variable: grad}).")
        many = len(cache.graph.outputs) > 1
        input_grads, weight_grads = cache.graph.backprop(cache, grad if many else [grad],
                                                         inputs_need_grad=need_input_grad)
        return (input_grads if self._multiple_inputs else input_grads[0]), weight_grads

    def _trace(self, shapes, dtypes, training):
        """The trace of call() for these input shapes (the batch size left open), dtypes and
        ``training`` (when call() takes it): a graph.TracedCall, made once."""
        from fastconv.keras.graph import trace_call
        key = (tuple((None,) + tuple(s)[1:] for s in shapes), tuple(str(np.dtype(d)) for d in dtypes),
               bool(training) if _accepts_argument(type(self).call, "training") else None)
        traces = self.__dict__.setdefault("_traces", {})
        if key not in traces:
            traces[key] = trace_call(self, key[0], key[1], bool(training))
        return traces[key]

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
        config = {"name": self.name, **self._automatic_config(Layer), "trainable": self.trainable,
                  "dtype": self.dtype}
        if self._input_shape_arg is not None:
            config["input_shape"] = self._input_shape_arg
        return config

    def get_build_config(self):
        """{"input_shape": ...} of the layer's build, as Keras saves it (None before)."""
        shape = vars(self).get("_build_input_shape")
        return None if shape is None else {"input_shape": shape}

    def build_from_config(self, config):
        """Build from get_build_config(): create the weights (a traced layer's sub-layers too)."""
        if not config:
            return
        shape = config["input_shape"]
        shapes = [tuple(s) for s in shape] if self._multiple_inputs else [tuple(shape)]
        self._maybe_build(shapes if self._multiple_inputs else shapes[0])
        if self._traced_kind():
            self._trace(shapes, [self.dtype] * len(shapes), False)

    def _automatic_config(self, base):
        """For a user's class that does not define get_config (``base`` is the class whose
        get_config it inherits): its constructor arguments, as Keras's automatic config."""
        if _is_builtin(type(self)) or type(self).get_config is not base.get_config:
            return {}
        if self._auto_config is None:
            raise NotImplementedError(
                f"Object {type(self).__name__} was created by passing non-serializable argument values in "
                "`__init__()`, and therefore the object must override `get_config()` in order to be serializable. "
                "Please implement `get_config()`.")
        return dict(self._auto_config)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        parameters = inspect.signature(cls.__init__).parameters
        takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        if not takes_kwargs:
            # A custom __init__ without **kwargs takes only its own arguments (Keras drops name).
            config = {k: v for k, v in config.items() if k in parameters}
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


def _names_a_dtype(text):
    try:
        np.dtype(text)
    except TypeError:
        return False
    return True


def _weight_shape(shape, where):
    try:
        shape = tuple(shape)
    except TypeError:
        shape = (shape,)
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ValueError(f"{where}: shape must be a tuple of non-negative ints (fully defined). "
                         f"Received: shape={shape!r}")
    return tuple(int(d) for d in shape)


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
        raise ValueError(f"{owner}: {argument} must be a tuple of positive ints (or None). "
                         f"Received: {argument}={shape!r}")
    return tuple(None if d is None else int(d) for d in shape)
