"""Core layers: InputLayer/Input, Identity, Dense and Lambda."""
import base64
import builtins
import contextlib
import contextvars
import inspect
import marshal
import types
from typing import NamedTuple, Optional

import numpy as np

from fastconv.keras import activations, constraints, initializers, regularizers
from fastconv.keras.layers._with_activation import WithActivation
from fastconv.keras.layers.base import InputSpec, KerasTensor, Layer, Node, _shape_tuple

__all__ = ["Dense", "Identity", "Input", "InputLayer", "Lambda"]


class InputLayer(Layer):
    """The entry of a model: holds the input's shape and produces its symbolic tensor."""

    def __init__(self, shape=None, batch_size=None, dtype=None, batch_shape=None, name=None, **kwargs):
        legacy = kwargs.pop("input_shape", None)
        if legacy is not None and shape is None:
            shape = legacy
        legacy_batch = kwargs.pop("batch_input_shape", None)
        if legacy_batch is not None and batch_shape is None:
            batch_shape = legacy_batch
        super().__init__(name=name, dtype=dtype, **kwargs)
        if batch_shape is None:
            if shape is None:
                raise ValueError("InputLayer: pass shape=(...) (without the batch size) or batch_shape=(...)")
            batch_shape = (batch_size,) + _shape_tuple(shape, "shape", "InputLayer")
        elif shape is not None:
            raise ValueError("InputLayer: pass either shape or batch_shape, not both")
        self.batch_shape = (None if batch_shape[0] is None else int(batch_shape[0]),) + \
            _shape_tuple(tuple(batch_shape)[1:], "shape", "InputLayer")
        self.built = True
        Node(self, [], [KerasTensor(self.batch_shape, self.dtype, name=self.name)])

    def call(self, inputs, training=False):
        return inputs

    def forward(self, inputs, training=False):
        return inputs, None

    def backward(self, cache, grad, need_input_grad=True):
        return grad, {}

    def compute_output_shape(self, input_shape):
        return self.batch_shape

    def get_config(self):
        return {"batch_shape": self.batch_shape, "dtype": self.dtype, "name": self.name}


def Input(shape=None, batch_size=None, dtype=None, batch_shape=None, name=None):
    """The symbolic input of a functional model: ``Input((100, 100, 3))`` stands for a batch of
    100x100 RGB images, shape (None, 100, 100, 3)."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape, name=name).output


class Identity(Layer):
    """Returns its input unchanged (a placeholder where a model has nothing to do)."""

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training=False):
        return x, None

    def backward(self, cache, grad, need_input_grad=True):
        return grad, {}


class DenseCache(NamedTuple):
    x: np.ndarray
    y: np.ndarray
    logits: Optional[np.ndarray]


class Dense(WithActivation, Layer):
    """``y = activation(x @ kernel + bias)`` on the last axis of ``x``, kernel of shape (in, units)."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units < 1:
            raise ValueError(f'Dense "{self.name}": units must be a positive integer. Received: units={units!r}')
        self.units = int(units)
        self._set_activation(activation)
        self._set_activity_regularizer(activity_regularizer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.input_spec = InputSpec(min_ndim=2)

    def build(self, input_shape):
        in_features = input_shape[-1]
        if in_features is None:
            raise ValueError(f'Dense "{self.name}": the last axis of the input must be known; '
                             f"received shape {input_shape}")
        self.kernel = self.add_weight((in_features, self.units), self.kernel_initializer, "kernel",
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.bias = self.add_weight((self.units,), self.bias_initializer, "bias", regularizer=self.bias_regularizer,
                                    constraint=self.bias_constraint) if self.use_bias else None
        self.input_spec = InputSpec(min_ndim=2, axes={-1: in_features})
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def forward(self, x, training=False):
        z = x @ self.kernel.value
        if self.use_bias:
            z += self.bias.value
        y, logits = self._activate(z)
        return y, DenseCache(x, y, logits)

    def backward_from_logits(self, cache, dz, need_input_grad=True):
        x = cache.x
        # A Dense on a (batch, ..., in) tensor is one matrix product over all leading axes.
        x2 = x.reshape(-1, x.shape[-1])
        dz2 = dz.reshape(-1, self.units)
        grads = {}
        if self.trainable:
            grads[self.kernel] = x2.T @ dz2
            if self.use_bias:
                grads[self.bias] = dz2.sum(axis=0)
        dx = dz @ self.kernel.value.T if need_input_grad else None
        return dx, grads

    def get_config(self):
        config = super().get_config()
        if self.activity_regularizer is not None:  # Keras's base Layer lists it only when set
            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return {**config, "units": self.units, "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint)}


# Whether deserializing a Lambda may turn the Python code stored in a configuration back into a
# function (False only inside safe_mode_scope(False), e.g. load_model(..., safe_mode=False)).
_safe_mode = contextvars.ContextVar("lambda_safe_mode", default=True)


@contextlib.contextmanager
def safe_mode_scope(safe_mode=True):
    """Within it, ``Lambda.from_config`` without ``safe_mode=`` uses this one (Keras's SafeModeScope)."""
    token = _safe_mode.set(bool(safe_mode))
    try:
        yield
    finally:
        _safe_mode.reset(token)


def _function_config(fn):
    """A Python lambda as its bytecode (Keras's "__lambda__" form); a named function by name."""
    if isinstance(fn, types.LambdaType) and fn.__name__ == "<lambda>":
        closure = None if fn.__closure__ is None else [c.cell_contents for c in fn.__closure__]
        return {"class_name": "__lambda__",
                "config": {"code": base64.b64encode(marshal.dumps(fn.__code__)).decode("ascii") + "\n",
                           "defaults": None if fn.__defaults__ is None else list(fn.__defaults__),
                           "closure": closure}}
    name = getattr(fn, "__name__", None)
    if name is None:
        raise ValueError(f"Lambda: cannot serialize {fn!r} (of type {type(fn).__name__}): pass a function")
    # As Keras writes a function: by name, found again among custom_objects or the built-ins.
    return {"module": "builtins", "class_name": "function", "config": name, "registered_name": "function"}


def _function_from_config(config, custom_objects, safe_mode, what):
    if isinstance(config, dict) and config.get("class_name") == "__lambda__":
        if safe_mode:
            raise ValueError(
                f"Requested the deserialization of a `Lambda` layer whose `{what}` is a Python lambda. This carries "
                "a potential risk of arbitrary code execution and thus it is disallowed by default. If you trust "
                "the source of the artifact, you can override this error by passing `safe_mode=False` to the "
                "loading function.")
        inner = config["config"]
        code = marshal.loads(base64.b64decode(inner["code"]))
        closure = None if inner.get("closure") is None else tuple(types.CellType(v) for v in inner["closure"])
        defaults = None if inner.get("defaults") is None else tuple(inner["defaults"])
        return types.FunctionType(code, {"__builtins__": builtins}, code.co_name, defaults, closure)
    if callable(config):
        return config
    name = config.get("config") if isinstance(config, dict) else config
    if name in (custom_objects or {}):
        return custom_objects[name]
    from fastconv.keras import ops
    try:
        return activations.get(name)
    except ValueError:
        pass
    if name in ops.__all__:
        return getattr(ops, name)
    raise ValueError(f"Lambda: the {what} {name!r} of the configuration is not known; pass "
                     f"custom_objects={{{name!r}: the_function}}")


class Lambda(Layer):
    """A function as a layer: ``Lambda(lambda x: x[:, :, :, :1] * 2)``.

    Its function is traced as a custom layer's call() is: written with fastconv.keras.ops,
    operators and layers, it has a gradient and trains; with other NumPy code it runs (predict)
    but cannot be trained.  ``output_shape`` (without the batch axis, or a function of the input
    shape) overrides the traced shape.  A saved Lambda holds Python code: loading it is refused
    unless ``safe_mode=False``, as in Keras.
    """

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f'Lambda "{self.name}": function must be callable. Received: function={function!r}')
        if mask is not None:
            raise ValueError(f'Lambda "{self.name}": masks are not supported by fastconv.keras. '
                             f"Received: mask={mask!r}")
        self.function = function
        self.arguments = dict(arguments or {})
        self.mask = None
        self._output_shape = output_shape
        try:
            parameters = inspect.signature(function).parameters
        except (TypeError, ValueError):
            parameters = {}
        self._fn_expects_training_arg = "training" in parameters

    def compute_output_shape(self, input_shape):
        if self._output_shape is None:
            return super().compute_output_shape(input_shape)
        if callable(self._output_shape):
            return self._output_shape(input_shape)
        batch = (input_shape[0] if self._multiple_inputs else input_shape)[0]
        return (batch,) + tuple(self._output_shape)

    def call(self, inputs, training=None):
        kwargs = dict(self.arguments)
        if self._fn_expects_training_arg:
            kwargs["training"] = training
        return self.function(inputs, **kwargs)

    def get_config(self):
        config = {**super().get_config(), "function": _function_config(self.function)}
        if self._output_shape is not None:
            config["output_shape"] = (_function_config(self._output_shape) if callable(self._output_shape)
                                      else list(self._output_shape))
        config["arguments"] = dict(self.arguments)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None, safe_mode=None):
        """``safe_mode`` None: the one of the enclosing safe_mode_scope (True outside any)."""
        safe_mode = _safe_mode.get() if safe_mode is None else bool(safe_mode)
        config = dict(config)
        config["function"] = _function_from_config(config["function"], custom_objects, safe_mode, "function")
        shape = config.get("output_shape")
        if isinstance(shape, dict):
            config["output_shape"] = _function_from_config(shape, custom_objects, safe_mode, "output_shape")
        elif shape is not None:
            config["output_shape"] = tuple(shape)
        return cls(**config)
