"""fastconv.keras.ops: eager results against NumPy, symbolic (graph) results against eager ones,
gradients against finite differences in float64 (tensor and Variable operands, broadcasting),
and the operators and NumPy functions a KerasTensor dispatches to them."""
import numpy as np
import pytest

import fastconv.keras as fk
from fastconv.keras import layers as L
from fastconv.keras import ops
from fastconv.keras.graph import Graph

RNG = np.random.default_rng(7)


def _x(*shape, positive=False):
    a = RNG.standard_normal(shape)
    return np.abs(a) + 0.5 if positive else a


# (name, function of the tensor operands, operands, NumPy's result)
CASES = [
    ("add", lambda a, b: ops.add(a, b), [_x(3, 4), _x(1, 4)], lambda a, b: a + b),
    ("subtract", lambda a, b: a - b, [_x(3, 4), _x(3, 1)], lambda a, b: a - b),
    ("multiply", lambda a, b: ops.multiply(a, b), [_x(3, 4), _x(3, 4)], lambda a, b: a * b),
    ("divide", lambda a, b: a / b, [_x(3, 4), _x(3, 4, positive=True)], lambda a, b: a / b),
    ("power", lambda a: a ** 3, [_x(3, 4)], lambda a: a ** 3),
    ("negative", lambda a: -a, [_x(3, 4)], lambda a: -a),
    ("maximum", lambda a, b: ops.maximum(a, b), [_x(3, 4), _x(3, 4)], np.maximum),
    ("minimum", lambda a, b: ops.minimum(a, b), [_x(3, 4), _x(3, 4)], np.minimum),
    ("matmul", lambda a, b: a @ b, [_x(3, 2, 4), _x(3, 4, 5)], np.matmul),
    ("matmul by a constant", lambda a: ops.matmul(a, np.arange(8.0).reshape(4, 2)), [_x(3, 4)],
     lambda a: a @ np.arange(8.0).reshape(4, 2)),
    ("concatenate", lambda a, b: ops.concatenate([a, b], axis=-1), [_x(3, 2), _x(3, 3)],
     lambda a, b: np.concatenate([a, b], axis=-1)),
    ("stack", lambda a, b: ops.stack([a, b], axis=1), [_x(3, 2), _x(3, 2)], lambda a, b: np.stack([a, b], 1)),
    ("mean", lambda a: ops.mean(a, axis=1), [_x(3, 4, 2)], lambda a: a.mean(axis=1)),
    ("sum", lambda a: ops.sum(a, axis=(1, 2), keepdims=True), [_x(3, 4, 2)],
     lambda a: a.sum(axis=(1, 2), keepdims=True)),
    ("max", lambda a: ops.max(a, axis=-1), [_x(3, 4)], lambda a: a.max(axis=-1)),
    ("min", lambda a: ops.min(a, axis=1, keepdims=True), [_x(3, 4)], lambda a: a.min(axis=1, keepdims=True)),
    ("relu", ops.relu, [_x(3, 4)], lambda a: np.maximum(a, 0)),
    ("relu6", ops.relu6, [_x(3, 4) * 5], lambda a: np.clip(a, 0, 6)),
    ("sigmoid", ops.sigmoid, [_x(3, 4)], lambda a: 1 / (1 + np.exp(-a))),
    ("tanh", ops.tanh, [_x(3, 4)], np.tanh),
    ("softmax", lambda a: ops.softmax(a, axis=1), [_x(3, 4)],
     lambda a: np.exp(a) / np.exp(a).sum(axis=1, keepdims=True)),
    ("exp", ops.exp, [_x(3, 4)], np.exp),
    ("log", ops.log, [_x(3, 4, positive=True)], np.log),
    ("sqrt", ops.sqrt, [_x(3, 4, positive=True)], np.sqrt),
    ("square", ops.square, [_x(3, 4)], np.square),
    ("abs", ops.abs, [_x(3, 4)], np.abs),
    ("clip", lambda a: ops.clip(a, -0.5, 0.5), [_x(3, 4)], lambda a: np.clip(a, -0.5, 0.5)),
    ("where", lambda a, b: ops.where(a > 0, a, b), [_x(3, 4), _x(3, 4)], lambda a, b: np.where(a > 0, a, b)),
    ("reshape", lambda a: ops.reshape(a, (-1, 8)), [_x(3, 4, 2)], lambda a: a.reshape(-1, 8)),
    ("transpose", lambda a: ops.transpose(a, (0, 2, 1)), [_x(3, 4, 2)], lambda a: a.transpose(0, 2, 1)),
    ("expand_dims", lambda a: ops.expand_dims(a, 1), [_x(3, 4)], lambda a: a[:, None]),
    ("squeeze", lambda a: ops.squeeze(a, 1), [_x(3, 1, 4)], lambda a: a[:, 0]),
    ("getitem", lambda a: a[:, 1:3, None, ..., 0], [_x(3, 4, 2)], lambda a: a[:, 1:3, None, ..., 0]),
    ("cast", lambda a: ops.cast(a > 0, "float64") * ops.cast(a, "float64"), [_x(3, 4)], lambda a: (a > 0) * a),
    ("log1p", ops.log1p, [_x(3, 4, positive=True)], np.log1p),
    ("expm1", ops.expm1, [_x(3, 4)], np.expm1),
    ("elu", lambda a: ops.elu(a, alpha=0.7), [_x(3, 4)], lambda a: np.where(a > 0, a, 0.7 * np.expm1(a))),
    ("selu", ops.selu, [_x(3, 4)], fk.activations.selu),
    ("leaky_relu", ops.leaky_relu, [_x(3, 4)], fk.activations.leaky_relu),
    ("softplus", ops.softplus, [_x(3, 4) * 10], fk.activations.softplus),
    ("softsign", ops.softsign, [_x(3, 4)], fk.activations.softsign),
    ("silu", ops.silu, [_x(3, 4)], fk.activations.silu),
    ("hard_silu", ops.hard_silu, [_x(3, 4) * 3], fk.activations.hard_silu),
    ("gelu", ops.gelu, [_x(3, 4)], lambda a: fk.activations.gelu(a, approximate=True)),
    ("gelu exact", lambda a: ops.gelu(a, approximate=False), [_x(3, 4)], fk.activations.gelu),
    ("log_softmax", lambda a: ops.log_softmax(a, axis=0), [_x(3, 4)],
     lambda a: a - np.log(np.exp(a).sum(axis=0, keepdims=True))),
    ("numpy functions", lambda a: np.sum(np.exp(-np.abs(a)) * np.maximum(a, 0.1), axis=-1),
     [_x(3, 4)], lambda a: np.sum(np.exp(-np.abs(a)) * np.maximum(a, 0.1), axis=-1)),
    ("activations", lambda a: fk.activations.softmax(fk.activations.sigmoid(a) + fk.activations.relu(a)),
     [_x(3, 4)], lambda a: fk.activations.softmax(1 / (1 + np.exp(-a)) + np.maximum(a, 0))),
]
IDS = [c[0] for c in CASES]


def _graph(fn, operands):
    inputs = [fk.Input(a.shape[1:], dtype="float64") for a in operands]
    return Graph(inputs, [fn(*inputs)], "ops_test")


@pytest.mark.parametrize("name,fn,operands,expected", CASES, ids=IDS)
def test_eager_and_symbolic_results_equal_numpy(name, fn, operands, expected):
    want = expected(*operands)
    eager = fn(*operands)
    np.testing.assert_allclose(eager, want, rtol=1e-12)
    graph = _graph(fn, operands)
    symbolic = graph.outputs[0]
    assert symbolic.shape == (None,) + np.shape(want)[1:]
    np.testing.assert_allclose(graph.run(operands)[0][0], want, rtol=1e-12)


def _numeric_grad(loss, arrays, eps=1e-6):
    grads = []
    for a in arrays:
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + eps
            up = loss()
            a[idx] = old - eps
            down = loss()
            a[idx] = old
            g[idx] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


@pytest.mark.parametrize("name,fn,operands,expected", [c for c in CASES if c[0] != "where"],
                         ids=[i for i in IDS if i != "where"])
def test_gradients_match_finite_differences(name, fn, operands, expected):
    operands = [a.copy() for a in operands]
    graph = _graph(fn, operands)
    outputs, tape, _ = graph.run(operands, record=True)
    weights = RNG.standard_normal(outputs[0].shape)
    analytic, _ = graph.backprop(tape, [weights], inputs_need_grad=True)
    numeric = _numeric_grad(lambda: float(np.sum(graph.run(operands)[0][0] * weights)), operands)
    for a, n in zip(analytic, numeric):
        np.testing.assert_allclose(a, n, rtol=1e-6, atol=1e-7)


def test_where_sends_the_gradient_to_the_chosen_branch():
    a, b = _x(3, 4), _x(3, 4)
    graph = _graph(lambda s, t: ops.where(s > 0, s, t), [a, b])
    _, tape, _ = graph.run([a, b], record=True)
    (ga, gb), _ = graph.backprop(tape, [np.ones((3, 4))], inputs_need_grad=True)
    np.testing.assert_array_equal(ga, (a > 0) * 1.0)
    np.testing.assert_array_equal(gb, (a <= 0) * 1.0)


def test_variables_as_operands_get_their_gradients_summed_over_broadcasting():
    class Affine(L.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], 2), dtype="float64")
            self.b = self.add_weight(shape=(2,), initializer="random_normal", dtype="float64")
            self.frozen = self.add_weight(shape=(1,), initializer="ones", trainable=False, dtype="float64")

        def call(self, inputs):
            return ops.tanh(ops.matmul(inputs, self.w) + self.b) * self.frozen

    layer = Affine(dtype="float64")
    i = fk.Input((3,), dtype="float64")
    graph = Graph([i], [layer(i)], "variables")
    x = _x(5, 3)
    outputs, tape, _ = graph.run([x], record=True)
    weights = RNG.standard_normal(outputs[0].shape)
    _, grads = graph.backprop(tape, [weights])
    assert set(grads) == {layer.w, layer.b}          # a non-trainable Variable gets none
    with layer.w._writable() as w, layer.b._writable() as b:
        numeric = _numeric_grad(lambda: float(np.sum(graph.run([x])[0][0] * weights)), [w, b])
    np.testing.assert_allclose(grads[layer.w], numeric[0], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(grads[layer.b], numeric[1], rtol=1e-6, atol=1e-8)
    assert grads[layer.b].shape == (2,)


def test_ops_on_arrays_and_variables_compute_at_once():
    v = fk.layers.Variable(np.arange(3.0), "v")
    np.testing.assert_array_equal(ops.add(v, 1.0), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(v * 2 + v, [0.0, 3.0, 6.0])
    np.testing.assert_array_equal(np.ones(3) - v, [1.0, 0.0, -1.0])
    np.testing.assert_array_equal(np.concatenate([v, v]), [0.0, 1.0, 2.0, 0.0, 1.0, 2.0])
    assert np.sum(v) == 3.0 and np.where(v > 0, v, -1.0).tolist() == [-1.0, 1.0, 2.0]
    assert ops.shape(fk.Input((None, 4))) == (None, None, 4)


def test_symbolic_errors_say_what_is_wrong():
    x = fk.Input((3, 4))
    with pytest.raises(ValueError, match="could not be broadcast"):
        ops.add(x, np.ones((5,)))
    with pytest.raises(ValueError, match="does not match"):
        ops.matmul(x, np.ones((3, 2)))
    with pytest.raises(TypeError, match="it has no values"):
        np.asarray(x)
    with pytest.raises(TypeError, match="truth value"):
        bool(x > 0)
    with pytest.raises(TypeError, match="basic indexing"):
        x[[0, 1]]
    with pytest.raises(ValueError, match="axis 3 is out of bounds"):
        ops.sum(x, axis=3)


def _summary_rows(model):
    """(type, output shape, params) of each row of ``model.summary()`` (cells wrapped over
    several lines joined; the names left out, Keras's counters differ), and the text."""
    text = []
    model.summary(line_length=80, print_fn=text.append)
    rows, cells = [], None
    for line in text[0].splitlines():
        if line.startswith("│"):
            parts = [c.strip() for c in line.split("│")[1:-1]]
            cells = parts if cells is None else [f"{a} {b}".strip() for a, b in zip(cells, parts)]
        elif cells is not None:
            rows.append((cells[0].split("(")[-1].rstrip(")"), cells[1], cells[2]))
            cells = None
    return rows, text[0]


def test_functional_model_with_ops_summarises_and_trains_as_keras(tf):
    def build(K):
        i = K.Input((4,))
        h = K.layers.Dense(3)(i)
        return K.Model(i, K.layers.Dense(2)(h + K.ops.relu(h) * 2.0))

    ours, theirs = build(fk), build(tf.keras)
    assert [type(layer).__name__ for layer in ours.layers] == ["InputLayer", "Dense", "Dense"]
    (our_rows, our_text), (their_rows, their_text) = _summary_rows(ours), _summary_rows(theirs)
    assert our_rows == their_rows and our_rows[2][0] == "Relu"
    assert our_text.splitlines()[-3:] == their_text.splitlines()[-3:]
    ours.set_weights([w.numpy() for w in theirs.weights])
    x = RNG.standard_normal((16, 4)).astype(np.float32)
    y = RNG.standard_normal((16, 2)).astype(np.float32)
    for model, k in ((ours, fk), (theirs, tf.keras)):
        model.compile(k.optimizers.SGD(0.05), "mse")
    assert abs(ours.train_on_batch(x, y) - theirs.train_on_batch(x, y)) < 1e-6
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="cannot be serialized by fastconv.keras"):
        ours.to_json()


@pytest.mark.parametrize("name", ["relu", "relu6", "sigmoid", "tanh", "softmax", "elu", "selu", "leaky_relu",
                                  "softplus", "softsign", "silu", "hard_sigmoid", "hard_silu", "gelu", "log_softmax",
                                  "sqrt", "log1p", "expm1", "erf"])
def test_activation_ops_equal_keras_ops(tf, name):
    x = (_x(4, 6) * 4).astype(np.float32)
    if name in ("sqrt", "log1p"):
        x = np.abs(x)
    theirs = getattr(tf.keras.ops, name)(x)
    np.testing.assert_allclose(getattr(ops, name)(x), np.asarray(theirs), rtol=2e-6, atol=1e-6)


def test_constant_constructors_as_keras(keras):
    cases = [("zeros", ((2, 3),), {}), ("ones", ((4,),), {"dtype": "int32"}), ("full", ((2,), 7.5), {}),
             ("arange", (5,), {}), ("arange", (1.0, 4.0, 0.5), {}), ("arange", (2, 9, 3), {"dtype": "float32"}),
             ("zeros_like", (np.ones((2, 2), np.int64),), {}), ("ones_like", (np.ones(3, np.float32),), {})]
    for name, args, kwargs in cases:
        ours, theirs = getattr(fk.ops, name)(*args, **kwargs), np.asarray(getattr(keras.ops, name)(*args, **kwargs))
        assert ours.dtype == theirs.dtype, name
        np.testing.assert_array_equal(ours, theirs)


def test_zeros_like_of_a_symbolic_tensor_is_a_node_without_gradient():
    inputs = fk.Input((3,))
    x = fk.layers.Dense(3)(inputs)
    model = fk.Model(inputs, x + fk.ops.ones_like(x) + fk.ops.zeros_like(x))
    data = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_allclose(model.predict(data, verbose=0), model.layers[1](data) + 1, rtol=1e-6)
    model.compile("sgd", "mse")
    before = model.get_weights()[0].copy()
    model.fit(data, data, verbose=0)      # the gradient passes the + and skips the constants
    assert not np.allclose(model.get_weights()[0], before)
