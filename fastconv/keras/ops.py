"""Tensor operations, as ``keras.ops``, for the ``call()`` of custom layers and models.

Every function works on NumPy arrays (it computes at once, with NumPy) and on symbolic tensors
(KerasTensor): then it adds to the graph a node of an :class:`Operation`, a small layer with
its own forward and backward, so that a ``call()`` written with these functions (and the
operators ``+ - * / @ **``, slicing, and NumPy functions such as ``np.maximum`` or ``np.exp``
applied to a KerasTensor, which dispatch here) is traced into the same graph of layers as the
functional API and trains.

Operands may be symbolic tensors, arrays, Python numbers and Variables (a layer's weights from
``add_weight``): a node hands the gradient of each trainable Variable it reads to the
optimizer, summed back over the axes that broadcasting stretched; constants get none.
"""
import builtins
import math

import numpy as np

from fastconv.keras import activations, backend
from fastconv.keras.layers.base import KerasTensor, Layer, Node, Variable, operation_name, tracing_under_way
from fastconv.keras.layers.merging import _unbroadcast

__all__ = ["abs", "absolute", "add", "arange", "cast", "clip", "concatenate", "convert_to_tensor", "divide", "elu",
           "equal", "erf", "exp", "expand_dims", "expm1", "full", "gelu", "greater", "greater_equal",
           "hard_sigmoid", "hard_silu", "hard_swish", "leaky_relu", "less", "less_equal", "log", "log1p",
           "log_softmax", "logical_and", "logical_not", "logical_or", "matmul", "max", "maximum", "mean",
           "min", "minimum", "multiply", "negative", "not_equal", "ones", "ones_like", "power", "relu",
           "relu6", "reshape", "selu", "shape", "sigmoid", "silu", "softmax", "softplus", "softsign",
           "sqrt", "square", "squeeze", "stack", "subtract", "sum", "swish", "tanh", "transpose",
           "true_divide", "where", "zeros", "zeros_like"]


# ------------------------------------------------------------------------------------ machinery
class Operation(Layer):
    """A node of a traced computation: one op applied to its operands.

    ``operands`` are the op's arguments in order; the KerasTensors among them are the node's
    inputs (filled in from the graph at run time), the others (Variables, constants) are kept
    here.  Subclasses define ``compute(*values)``, ``output_spec(specs)`` -> (shape, dtype) and
    ``gradients(grad, y, values, wanted)`` -> one gradient (or None) per operand.
    """

    _multiple_inputs = True
    _is_operation = True

    def __init__(self, operands, **params):
        super().__init__(name=operation_name(type(self).__name__))
        self._operands = [None if isinstance(v, KerasTensor) else v for v in operands]
        self.params = params
        self.built = True

    def _differentiable_variables(self):
        return [v for v in self._operands if isinstance(v, Variable) and v.trainable]

    def _values(self, inputs):
        tensors = iter(inputs)
        return [next(tensors) if v is None else _value(v) for v in self._operands]

    def call(self, inputs, training=False):
        return self.compute(*self._values(inputs))

    def forward(self, inputs, training=False):
        values = self._values(inputs)
        y = self.compute(*values)
        return y, (values, y)

    def backward(self, cache, grad, need_input_grad=True):
        values, y = cache
        wanted = [(v is None and need_input_grad) or (isinstance(v, Variable) and v.trainable) for v in self._operands]
        grads = self.gradients(grad, y, values, wanted)
        input_grads, variable_grads = [], {}
        for operand, value, w, g in zip(self._operands, values, wanted, grads):
            if w and g is not None:
                g = np.asarray(_unbroadcast(np.asarray(g), np.shape(value)), dtype=np.result_type(value))
            if operand is None:
                input_grads.append(g if w else None)
            elif w and g is not None:
                variable_grads[operand] = g
        return (input_grads if need_input_grad else None), variable_grads

    def gradients(self, grad, y, values, wanted):
        return [None] * len(values)

    def get_config(self):
        raise ValueError(f'Operation "{self.name}" ({type(self).__name__}): models built with keras.ops '
                         "operations on symbolic tensors outside a layer's call() cannot be serialized by "
                         "fastconv.keras; wrap the computation in a custom Layer or a Lambda")


def _value(v):
    return v.value if isinstance(v, Variable) else v


def operand_spec(v):
    """(shape, dtype) of an operand; Python numbers have no shape of their own (weak dtype)."""
    if isinstance(v, (KerasTensor, Variable)) or isinstance(v, np.ndarray):
        return tuple(v.shape), np.dtype(v.dtype)
    if isinstance(v, (bool, int, float)):
        return (), v
    arr = np.asarray(v)
    return arr.shape, arr.dtype


def _operand(v, fn):
    if isinstance(v, (KerasTensor, Variable, np.ndarray, bool, int, float, np.generic)):
        return v
    try:
        return np.asarray(v)
    except Exception:  # noqa: BLE001 -- anything NumPy cannot take
        raise TypeError(f"ops.{fn}: cannot use an operand of type {type(v).__name__}") from None


def _apply(cls, fn, operands, **params):
    """Run op ``cls`` on ``operands``: at once on arrays, as a graph node on symbolic tensors,
    and on a layer's weights in a call() being traced (``ops.exp(self.log_scale)``): computed
    at once there, it would be a constant of the trace, blind to every later update and without
    a gradient."""
    operands = [_operand(v, fn) for v in operands]
    symbolic = any(isinstance(v, KerasTensor) for v in operands) or (
        tracing_under_way() and any(isinstance(v, Variable) for v in operands))
    if not symbolic:
        op = cls.__new__(cls)
        op.params = params
        return op.compute(*[np.asarray(_value(v)) if isinstance(v, Variable) else v for v in operands])
    op = cls(operands, **params)
    shape, dtype = op.output_spec([operand_spec(v) for v in operands])
    out = KerasTensor(shape, dtype)
    Node(op, [v for v in operands if isinstance(v, KerasTensor)], [out])
    return out


def _broadcast_shapes(shapes, fn):
    ndim = builtins.max(len(s) for s in shapes)
    out = []
    for dims in zip(*[(1,) * (ndim - len(s)) + tuple(s) for s in shapes]):
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise ValueError(f"ops.{fn}: operands could not be broadcast together with shapes "
                             f"{' '.join(str(tuple(s)) for s in shapes)}")
        if known:
            out.append(known.pop())
        else:
            out.append(None if any(d is None for d in dims) else 1)
    return tuple(out)


def _axes(axis, ndim, fn):
    axes = range(ndim) if axis is None else (axis if isinstance(axis, (tuple, list)) else (axis,))
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"ops.{fn}: axis {a} is out of bounds for a tensor of rank {ndim}")
        out.append(a % ndim)
    return tuple(sorted(out))


# ------------------------------------------------------------------------------- element-wise
class _Elementwise(Operation):
    """An element-wise op with broadcasting: ``_fn(*values)`` and ``_grad(grad, y, *values)``
    (one gradient per operand, before the broadcast axes are summed away)."""

    def compute(self, *values):
        return type(self)._fn(*values)

    def output_spec(self, specs):
        shape = _broadcast_shapes([s for s, _ in specs], type(self).__name__.lower())
        ones = [np.ones((1,), d) if isinstance(d, np.dtype) else d for _, d in specs]
        return shape, type(self)._fn(*ones).dtype

    def gradients(self, grad, y, values, wanted):
        grad_fn = type(self)._grad
        return [None] * len(values) if grad_fn is None else grad_fn(grad, y, *values)


def _elementwise(name, fn, grad=None):
    return type(name, (_Elementwise,), {"_fn": staticmethod(fn), "_grad": None if grad is None else staticmethod(grad),
                                        "__doc__": f"The element-wise op behind ops.{name.lower()}."})


def _relu6(x):
    return np.minimum(np.maximum(x, 0), 6).astype(np.result_type(x), copy=False)


Add = _elementwise("Add", np.add, lambda g, y, a, b: (g, g))
Subtract = _elementwise("Subtract", np.subtract, lambda g, y, a, b: (g, -g))
Multiply = _elementwise("Multiply", np.multiply, lambda g, y, a, b: (g * b, g * a))
Divide = _elementwise("Divide", np.true_divide, lambda g, y, a, b: (g / b, -g * y / b))
# Ties send the gradient to the first operand, as TensorFlow's Maximum/Minimum gradients do.
Maximum = _elementwise("Maximum", np.maximum, lambda g, y, a, b: (g * (a >= b), g * (a < b)))
Minimum = _elementwise("Minimum", np.minimum, lambda g, y, a, b: (g * (a <= b), g * (a > b)))
Power = _elementwise("Power", np.power, lambda g, y, a, b: (
    g * b * np.power(a, b - 1), g * y * np.log(np.where(a > 0, a, 1))))
Negative = _elementwise("Negative", np.negative, lambda g, y, x: (-g,))
Absolute = _elementwise("Absolute", np.absolute, lambda g, y, x: (g * np.sign(x),))
Exp = _elementwise("Exp", np.exp, lambda g, y, x: (g * y,))
Log = _elementwise("Log", np.log, lambda g, y, x: (g / x,))
Sqrt = _elementwise("Sqrt", np.sqrt, lambda g, y, x: (g / (2 * y),))
Square = _elementwise("Square", np.square, lambda g, y, x: (2 * g * x,))
Relu = _elementwise("Relu", activations.relu, lambda g, y, x: (activations.gradient(activations.relu)(y, g),))
Relu6 = _elementwise("Relu6", _relu6, lambda g, y, x: (g * ((x > 0) & (x < 6)),))
Sigmoid = _elementwise("Sigmoid", activations.sigmoid,
                        lambda g, y, x: (activations.gradient(activations.sigmoid)(y, g),))
Tanh = _elementwise("Tanh", activations.tanh, lambda g, y, x: (activations.gradient(activations.tanh)(y, g),))
Log1p = _elementwise("Log1p", np.log1p, lambda g, y, x: (g / (1 + x),))
Expm1 = _elementwise("Expm1", np.expm1, lambda g, y, x: (g * (y + 1),))
# erf(x) has the derivative 2 / sqrt(pi) exp(-x^2); NumPy has no erf (activations computes it).
Erf = _elementwise("Erf", activations._erf, lambda g, y, x: (g * (2 / math.sqrt(math.pi)) * np.exp(-x * x),))
Where = _elementwise("Where", np.where, lambda g, y, c, a, b: (None, g * c, g * np.logical_not(c)))
# Comparisons and logical ops: boolean outputs, no gradient.
Greater = _elementwise("Greater", np.greater)
GreaterEqual = _elementwise("GreaterEqual", np.greater_equal)
Less = _elementwise("Less", np.less)
LessEqual = _elementwise("LessEqual", np.less_equal)
Equal = _elementwise("Equal", np.equal)
NotEqual = _elementwise("NotEqual", np.not_equal)
LogicalAnd = _elementwise("LogicalAnd", np.logical_and)
LogicalOr = _elementwise("LogicalOr", np.logical_or)
LogicalNot = _elementwise("LogicalNot", np.logical_not)


class Clip(_Elementwise):
    """clip(x, x_min, x_max); the gradient passes where x_min <= x <= x_max, as tf.clip_by_value's."""

    @staticmethod
    def _fn(x, lo, hi):
        return np.clip(x, lo, hi)

    @staticmethod
    def _grad(g, y, x, lo, hi):
        inside = (x >= lo) & (x <= hi)
        return g * inside, g * (x < lo), g * (x > hi)


def add(x1, x2):
    return _apply(Add, "add", [x1, x2])


def subtract(x1, x2):
    return _apply(Subtract, "subtract", [x1, x2])


def multiply(x1, x2):
    return _apply(Multiply, "multiply", [x1, x2])


def divide(x1, x2):
    return _apply(Divide, "divide", [x1, x2])


true_divide = divide


def power(x1, x2):
    return _apply(Power, "power", [x1, x2])


def maximum(x1, x2):
    return _apply(Maximum, "maximum", [x1, x2])


def minimum(x1, x2):
    return _apply(Minimum, "minimum", [x1, x2])


def negative(x):
    return _apply(Negative, "negative", [x])


def absolute(x):
    return _apply(Absolute, "absolute", [x])


abs = absolute  # noqa: A001 -- keras.ops.abs


def exp(x):
    return _apply(Exp, "exp", [x])


def log(x):
    return _apply(Log, "log", [x])


def sqrt(x):
    return _apply(Sqrt, "sqrt", [x])


def square(x):
    return _apply(Square, "square", [x])


def relu(x):
    return _apply(Relu, "relu", [x])


def relu6(x):
    return _apply(Relu6, "relu6", [x])


def sigmoid(x):
    return _apply(Sigmoid, "sigmoid", [x])


def tanh(x):
    return _apply(Tanh, "tanh", [x])


def clip(x, x_min, x_max):
    return _apply(Clip, "clip", [x, x_min, x_max])


def log1p(x):
    return _apply(Log1p, "log1p", [x])


def expm1(x):
    return _apply(Expm1, "expm1", [x])


def erf(x):
    return _apply(Erf, "erf", [x])


# The other activations of keras.ops, as Keras defines them, written with the ops above: their
# gradients follow from the ops' (NumPy arrays compute at once, symbolic tensors record nodes).
_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def leaky_relu(x, negative_slope=0.2):
    return where(greater(x, 0), x, multiply(x, negative_slope))


def elu(x, alpha=1.0):
    return where(greater(x, 0), x, multiply(expm1(minimum(x, 0)), alpha))


def selu(x):
    return multiply(elu(x, _SELU_ALPHA), _SELU_SCALE)


def softplus(x):
    # log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)): no overflow.
    return add(relu(x), log1p(exp(negative(absolute(x)))))


def softsign(x):
    return divide(x, add(absolute(x), 1))


def silu(x):
    return multiply(x, sigmoid(x))


swish = silu


def hard_sigmoid(x):
    return divide(relu6(add(x, 3)), 6)


def hard_silu(x):
    return multiply(x, hard_sigmoid(x))


hard_swish = hard_silu


def gelu(x, approximate=True):
    """Keras's ops.gelu: the tanh approximation by default, erf with ``approximate=False``."""
    if approximate:
        inner = multiply(add(x, multiply(power(x, 3), 0.044715)), math.sqrt(2 / math.pi))
        return multiply(multiply(x, 0.5), add(tanh(inner), 1))
    return multiply(multiply(x, 0.5), add(erf(divide(x, math.sqrt(2))), 1))


def log_softmax(x, axis=-1):
    shifted = subtract(x, max(x, axis=axis, keepdims=True))
    return subtract(shifted, log(sum(exp(shifted), axis=axis, keepdims=True)))


def where(condition, x1=None, x2=None):
    if x1 is None or x2 is None:
        raise ValueError("ops.where: fastconv.keras needs both x1 and x2 (the one-argument form returns indices, "
                         "whose number depends on the data)")
    return _apply(Where, "where", [condition, x1, x2])


def greater(x1, x2):
    return _apply(Greater, "greater", [x1, x2])


def greater_equal(x1, x2):
    return _apply(GreaterEqual, "greater_equal", [x1, x2])


def less(x1, x2):
    return _apply(Less, "less", [x1, x2])


def less_equal(x1, x2):
    return _apply(LessEqual, "less_equal", [x1, x2])


def equal(x1, x2):
    return _apply(Equal, "equal", [x1, x2])


def not_equal(x1, x2):
    return _apply(NotEqual, "not_equal", [x1, x2])


def logical_and(x1, x2):
    return _apply(LogicalAnd, "logical_and", [x1, x2])


def logical_or(x1, x2):
    return _apply(LogicalOr, "logical_or", [x1, x2])


def logical_not(x):
    return _apply(LogicalNot, "logical_not", [x])


# --------------------------------------------------------------------------------- reductions
class _Reduction(Operation):
    """sum / mean / max / min over ``axis`` (None: all), with ``keepdims``."""

    def compute(self, x):
        return type(self)._fn(x, axis=self.params["axis"], keepdims=self.params["keepdims"])

    def output_spec(self, specs):
        (shape, dtype), = specs
        axes = _axes(self.params["axis"], len(shape), type(self).__name__.lower())
        if self.params["keepdims"]:
            return tuple(1 if i in axes else d for i, d in enumerate(shape)), dtype
        return tuple(d for i, d in enumerate(shape) if i not in axes), dtype

    def _kept(self, a, ndim):
        """``a`` (a reduced result) with the reduced axes put back as size 1."""
        axes = _axes(self.params["axis"], ndim, "reduce")
        return a if self.params["keepdims"] else np.expand_dims(a, axes)

    def gradients(self, grad, y, values, wanted):
        x, = values
        g = np.broadcast_to(self._kept(grad, x.ndim), x.shape)
        return [self._local_grad(g, self._kept(y, x.ndim), x)]


class Sum(_Reduction):
    _fn = staticmethod(np.sum)

    def _local_grad(self, g, y, x):
        return g


class Mean(_Reduction):
    _fn = staticmethod(np.mean)

    def _local_grad(self, g, y, x):
        count = x.size // builtins.max(y.size, 1) if x.size else 1
        return g / count


class _MaxMin(_Reduction):
    def _local_grad(self, g, y, x):
        # Ties share the gradient equally, as TensorFlow's reduce_max gradient does.
        hits = x == y
        axes = _axes(self.params["axis"], x.ndim, "reduce")
        return g * hits / np.sum(hits, axis=axes, keepdims=True)


class Max(_MaxMin):
    _fn = staticmethod(np.max)


class Min(_MaxMin):
    _fn = staticmethod(np.min)


def sum(x, axis=None, keepdims=False):  # noqa: A001 -- keras.ops.sum
    return _apply(Sum, "sum", [x], axis=axis, keepdims=bool(keepdims))


def mean(x, axis=None, keepdims=False):
    return _apply(Mean, "mean", [x], axis=axis, keepdims=bool(keepdims))


def max(x, axis=None, keepdims=False, initial=None):  # noqa: A001 -- keras.ops.max
    if initial is not None:
        raise ValueError("ops.max: initial is not supported by fastconv.keras")
    return _apply(Max, "max", [x], axis=axis, keepdims=bool(keepdims))


def min(x, axis=None, keepdims=False, initial=None):  # noqa: A001 -- keras.ops.min
    if initial is not None:
        raise ValueError("ops.min: initial is not supported by fastconv.keras")
    return _apply(Min, "min", [x], axis=axis, keepdims=bool(keepdims))


class Softmax(Operation):
    def compute(self, x):
        return activations.softmax(x, axis=self.params["axis"])

    def output_spec(self, specs):
        (shape, dtype), = specs
        _axes(self.params["axis"], len(shape), "softmax")
        return shape, dtype

    def gradients(self, grad, y, values, wanted):
        # The Jacobian diag(y) - y y^T along the softmax axis, applied to grad.
        return [y * (grad - np.sum(grad * y, axis=self.params["axis"], keepdims=True))]


def softmax(x, axis=-1):
    return _apply(Softmax, "softmax", [x], axis=axis)


# ---------------------------------------------------------------------------- linear algebra
class Matmul(Operation):
    """NumPy's matmul: batched over the leading axes (broadcast), a 1-D operand taken as a
    row (first) or a column (second) vector."""

    def compute(self, a, b):
        return np.matmul(a, b)

    def output_spec(self, specs):
        (sa, da), (sb, db) = specs
        if len(sa) == 0 or len(sb) == 0:
            raise ValueError("ops.matmul: operands must have at least one axis (use ops.multiply for scalars)")
        a = (1,) + tuple(sa) if len(sa) == 1 else tuple(sa)
        b = tuple(sb) + (1,) if len(sb) == 1 else tuple(sb)
        if a[-1] is not None and b[-2] is not None and a[-1] != b[-2]:
            raise ValueError(f"ops.matmul: the last axis of x1 (shape {tuple(sa)}) does not match the second to "
                             f"last of x2 (shape {tuple(sb)})")
        out = _broadcast_shapes([a[:-2], b[:-2]], "matmul") + (a[-2], b[-1])
        if len(sa) == 1:
            out = out[:-2] + out[-1:]
        if len(sb) == 1:
            out = out[:-1]
        return out, np.result_type(da, db)

    def gradients(self, grad, y, values, wanted):
        a, b = values
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g = grad
        if a.ndim == 1:
            g = np.expand_dims(g, -2)
        if b.ndim == 1:
            g = np.expand_dims(g, -1)
        da = np.matmul(g, np.swapaxes(b2, -1, -2)) if wanted[0] else None
        db = np.matmul(np.swapaxes(a2, -1, -2), g) if wanted[1] else None
        if da is not None and a.ndim == 1:
            da = _unbroadcast(da, a2.shape).reshape(a.shape)
        if db is not None and b.ndim == 1:
            db = _unbroadcast(db, b2.shape).reshape(b.shape)
        return [da, db]


def matmul(x1, x2):
    return _apply(Matmul, "matmul", [x1, x2])


# ------------------------------------------------------------------------------ shape changes
class Reshape(Operation):
    def compute(self, x):
        return np.reshape(x, self.params["newshape"])

    def output_spec(self, specs):
        (shape, dtype), = specs
        new = self.params["newshape"]
        if list(new).count(-1) > 1:
            raise ValueError(f"ops.reshape: only one axis of newshape may be -1. Received: newshape={new}")
        if -1 not in new:
            return new, dtype
        if any(d is None for d in shape):
            return tuple(None if d == -1 else d for d in new), dtype
        known = math.prod(d for d in new if d != -1)
        total = math.prod(shape)
        if known == 0 or total % known:
            raise ValueError(f"ops.reshape: cannot reshape a tensor of shape {shape} into {new}")
        return tuple(total // known if d == -1 else d for d in new), dtype

    def gradients(self, grad, y, values, wanted):
        return [grad.reshape(values[0].shape)]


def reshape(x, newshape):
    newshape = tuple(int(d) for d in (newshape if isinstance(newshape, (tuple, list)) else (newshape,)))
    return _apply(Reshape, "reshape", [x], newshape=newshape)


class Transpose(Operation):
    def compute(self, x):
        return np.transpose(x, self.params["axes"])

    def _perm(self, ndim):
        axes = self.params["axes"]
        return tuple(reversed(range(ndim))) if axes is None else tuple(a % ndim for a in axes)

    def output_spec(self, specs):
        (shape, dtype), = specs
        perm = self._perm(len(shape))
        if sorted(perm) != list(range(len(shape))):
            raise ValueError(f"ops.transpose: axes {self.params['axes']} are not a permutation of the {len(shape)} "
                             f"axes of a tensor of shape {shape}")
        return tuple(shape[a] for a in perm), dtype

    def gradients(self, grad, y, values, wanted):
        return [np.transpose(grad, np.argsort(self._perm(values[0].ndim)))]


def transpose(x, axes=None):
    return _apply(Transpose, "transpose", [x], axes=None if axes is None else tuple(axes))


class ExpandDims(Operation):
    def compute(self, x):
        return np.expand_dims(x, self.params["axis"])

    def output_spec(self, specs):
        (shape, dtype), = specs
        axes = _axes(self.params["axis"], len(shape) + 1, "expand_dims")
        it = iter(shape)
        return tuple(1 if i in axes else next(it) for i in range(len(shape) + 1)), dtype

    def gradients(self, grad, y, values, wanted):
        return [grad.reshape(values[0].shape)]


def expand_dims(x, axis):
    return _apply(ExpandDims, "expand_dims", [x], axis=axis)


class Squeeze(Operation):
    def compute(self, x):
        return np.squeeze(x, self.params["axis"])

    def output_spec(self, specs):
        (shape, dtype), = specs
        axis = self.params["axis"]
        if axis is None:
            if None in shape:
                raise ValueError(f"ops.squeeze: cannot squeeze the unknown axes of a tensor of shape {shape}; "
                                 "pass axis=...")
            return tuple(d for d in shape if d != 1), dtype
        axes = _axes(axis, len(shape), "squeeze")
        if any(shape[a] not in (1, None) for a in axes):
            raise ValueError(f"ops.squeeze: cannot squeeze axis {axis} of a tensor of shape {shape}")
        return tuple(d for i, d in enumerate(shape) if i not in axes), dtype

    def gradients(self, grad, y, values, wanted):
        return [grad.reshape(values[0].shape)]


def squeeze(x, axis=None):
    return _apply(Squeeze, "squeeze", [x], axis=axis)


class Concatenate(Operation):
    def compute(self, *xs):
        return np.concatenate(xs, axis=self.params["axis"])

    def output_spec(self, specs):
        shapes = [s for s, _ in specs]
        ndim = len(shapes[0])
        if any(len(s) != ndim for s in shapes) or ndim == 0:
            raise ValueError("ops.concatenate: all tensors must have the same rank (at least 1). "
                             f"Received shapes {shapes}")
        axis, = _axes(self.params["axis"], ndim, "concatenate")
        out = []
        for i, dims in enumerate(zip(*shapes)):
            if i == axis:
                out.append(None if None in dims else builtins.sum(dims))
            else:
                known = {d for d in dims if d is not None}
                if len(known) > 1:
                    raise ValueError(f"ops.concatenate: shapes {shapes} differ on axis {i} "
                                     f"(only axis {axis} may differ)")
                out.append(known.pop() if known else None)
        return tuple(out), np.result_type(*[d for _, d in specs])

    def gradients(self, grad, y, values, wanted):
        cuts = np.cumsum([v.shape[self.params["axis"]] for v in values])[:-1]
        return np.split(grad, cuts, axis=self.params["axis"])


def concatenate(xs, axis=0):
    return _apply(Concatenate, "concatenate", list(xs), axis=axis)


class Stack(Operation):
    def compute(self, *xs):
        return np.stack(xs, axis=self.params["axis"])

    def output_spec(self, specs):
        shapes = [s for s, _ in specs]
        shape = _broadcast_shapes(shapes, "stack") if len({len(s) for s in shapes}) == 1 else None
        if shape is None or any(len(s) != len(shape) for s in shapes):
            raise ValueError(f"ops.stack: all tensors must have the same shape. Received shapes {shapes}")
        axis, = _axes(self.params["axis"], len(shape) + 1, "stack")
        return shape[:axis] + (len(shapes),) + shape[axis:], np.result_type(*[d for _, d in specs])

    def gradients(self, grad, y, values, wanted):
        return [np.take(grad, i, axis=self.params["axis"]) for i in range(len(values))]


def stack(x, axis=0):
    return _apply(Stack, "stack", list(x), axis=axis)


class GetItem(Operation):
    """Basic indexing (ints, slices, None, Ellipsis): ``x[:, 0]``, ``x[..., :3]``."""

    def compute(self, x):
        return x[self.params["key"]]

    def output_spec(self, specs):
        (shape, dtype), = specs
        key = self.params["key"]
        n_real = builtins.sum(1 for k in key if k is not None and k is not Ellipsis)
        if n_real > len(shape):
            raise ValueError(f"ops: too many indices ({n_real}) for a tensor of shape {shape}")
        expanded = []
        for k in key:
            if k is Ellipsis:
                expanded += [slice(None)] * (len(shape) - n_real)
            else:
                expanded.append(k)
        expanded += [slice(None)] * (len(shape) - builtins.sum(1 for k in expanded if k is not None))
        out, dims = [], iter(shape)
        for k in expanded:
            if k is None:
                out.append(1)
                continue
            d = next(dims)
            if isinstance(k, slice):
                out.append(None if d is None else len(range(*k.indices(d))))
            elif d is not None and not -d <= k < d:
                raise ValueError(f"ops: index {k} is out of bounds for an axis of size {d} (shape {shape})")
        return tuple(out), dtype

    def gradients(self, grad, y, values, wanted):
        x, = values
        dx = np.zeros_like(x, dtype=grad.dtype)
        dx[self.params["key"]] = grad
        return [dx]


def getitem(x, key):
    """``x[key]`` with basic indexing; what ``KerasTensor.__getitem__`` runs."""
    key = key if isinstance(key, tuple) else (key,)
    for k in key:
        if not (k is None or k is Ellipsis or isinstance(k, slice) or
                (isinstance(k, (int, np.integer)) and not isinstance(k, bool))):
            raise TypeError(f"fastconv.keras: a symbolic tensor takes basic indexing only (ints, slices, None, "
                            f"...); received index {k!r}")
    key = tuple(int(k) if isinstance(k, np.integer) else k for k in key)
    if builtins.sum(k is Ellipsis for k in key) > 1:
        raise ValueError("fastconv.keras: an index can only have a single ellipsis ('...')")
    return _apply(GetItem, "getitem", [x], key=key)


# -------------------------------------------------------------------------------------- misc
class Cast(Operation):
    def compute(self, x):
        return np.asarray(x).astype(self.params["dtype"])

    def output_spec(self, specs):
        (shape, _), = specs
        return shape, self.params["dtype"]

    def gradients(self, grad, y, values, wanted):
        x, = values
        # Only a floating input has a gradient (a cast from ints or booleans is a constant).
        return [grad.astype(x.dtype) if np.issubdtype(x.dtype, np.floating) else None]


def cast(x, dtype):
    return _apply(Cast, "cast", [x], dtype=np.dtype(dtype))


# Constants: arrays at once (in floatx by default, as Keras); zeros_like / ones_like of a symbolic
# tensor are graph nodes (without gradient: their values do not depend on their input's).
ZerosLike = _elementwise("ZerosLike", np.zeros_like)
OnesLike = _elementwise("OnesLike", np.ones_like)


def zeros(shape, dtype=None):
    return np.zeros(shape, dtype=np.dtype(dtype or backend.floatx()))


def ones(shape, dtype=None):
    return np.ones(shape, dtype=np.dtype(dtype or backend.floatx()))


def full(shape, fill_value, dtype=None):
    return np.full(shape, fill_value, dtype=np.dtype(dtype or backend.floatx()))


def zeros_like(x, dtype=None):
    out = _apply(ZerosLike, "zeros_like", [x])
    return out if dtype is None else cast(out, dtype)


def ones_like(x, dtype=None):
    out = _apply(OnesLike, "ones_like", [x])
    return out if dtype is None else cast(out, dtype)


def arange(start, stop=None, step=1, dtype=None):
    """As keras.ops.arange: int32 for integer arguments, floatx for floats (unless ``dtype``)."""
    values = np.arange(start, stop, step) if stop is not None else np.arange(start)
    if dtype is None:
        dtype = "int32" if values.dtype.kind in "iu" else backend.floatx()
    return values.astype(dtype)


class SymbolicShape(tuple):
    """The shape of a symbolic tensor (None for its unknown sizes), which remembers the tensor:
    ``keras.random.normal(ops.shape(x))`` in a call() then draws x's shape at every run."""

    def __new__(cls, tensor):
        shape = super().__new__(cls, tensor.shape)
        shape.tensor = tensor
        return shape


def shape(x):
    """The shape as a tuple (None for the unknown sizes of a symbolic tensor)."""
    if isinstance(x, KerasTensor):
        return SymbolicShape(x)
    return tuple(x.shape) if isinstance(x, Variable) else np.shape(x)


def convert_to_tensor(x, dtype=None):
    """A symbolic tensor stays itself; anything else becomes a NumPy array."""
    if isinstance(x, KerasTensor):
        if dtype is not None and np.dtype(dtype) != np.dtype(x.dtype):
            raise ValueError("ops.convert_to_tensor: cannot change the dtype of a symbolic tensor "
                             f"({x.dtype} to {dtype})")
        return x
    return np.asarray(_value(x), dtype=dtype)


# ------------------------------------------------------------- NumPy functions on KerasTensors
# np.maximum(x, 0) (activations.relu) is the relu op, whose gradient at 0 is TensorFlow's (0).
def _np_maximum(x1, x2):
    if isinstance(x2, (int, float)) and x2 == 0 and isinstance(x1, KerasTensor):
        return relu(x1)
    return maximum(x1, x2)


_UFUNCS = {np.add: add, np.subtract: subtract, np.multiply: multiply, np.true_divide: divide,
           np.power: power, np.maximum: _np_maximum, np.minimum: minimum, np.negative: negative,
           np.absolute: absolute, np.exp: exp, np.log: log, np.sqrt: sqrt, np.square: square, np.tanh: tanh,
           np.matmul: matmul, np.log1p: log1p, np.expm1: expm1, np.greater: greater,
           np.greater_equal: greater_equal, np.less: less, np.less_equal: less_equal, np.equal: equal,
           np.not_equal: not_equal, np.logical_and: logical_and,
           np.logical_or: logical_or, np.logical_not: logical_not}

_FUNCTIONS = {np.sum: sum, np.mean: mean, np.max: max, np.amax: max, np.min: min, np.amin: min,
              np.where: where, np.clip: clip, np.concatenate: concatenate, np.stack: stack, np.reshape: reshape,
              np.transpose: transpose, np.expand_dims: expand_dims, np.squeeze: squeeze, np.shape: shape}


def numpy_ufunc(ufunc, method, inputs, kwargs):
    """The op for a NumPy ufunc called on a KerasTensor, or NotImplemented (NumPy then raises
    a TypeError, which makes the layer untraceable)."""
    fn = _UFUNCS.get(ufunc)
    if fn is None or method != "__call__" or kwargs:
        return NotImplemented
    return fn(*inputs)


def numpy_function(func, args, kwargs):
    fn = _FUNCTIONS.get(func)
    if fn is None:
        return NotImplemented
    try:
        return fn(*args, **kwargs)
    except TypeError:  # an argument the op does not take (out=, dtype=...)
        return NotImplemented
