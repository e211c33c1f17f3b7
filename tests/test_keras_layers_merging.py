"""Merging layers: gradients by finite differences (float64), ties as TensorFlow's, Keras parity
of outputs, gradients, shapes, names and configurations, the functional forms and the errors."""
import json

import numpy as np
import pytest

import fastconv.keras as fk
from fastconv.keras import backend
from fastconv.keras import layers as L

from _layer_parity import assert_matches_keras, assert_same_config
from _layer_parity import check_gradients

ELEMENTWISE = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"]


@pytest.fixture
def keras(tf):
    import keras as keras_module
    keras_module.backend.clear_session(free_memory=False)
    backend.clear_session()
    return keras_module


def _shapes(name):
    if name == "Subtract":
        return [[(2, 3, 4)] * 2, [(2, 3, 4), (2, 1, 4)], [(2, 3, 4), (2, 4)]]
    return [[(2, 3, 4)] * 2, [(2, 3, 4)] * 3, [(2, 3, 4), (2, 1, 4)], [(2, 1, 4), (2, 3, 1), (2, 4)]]


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_gradients(name):
    rng = np.random.default_rng(1)
    for shapes in _shapes(name):
        xs = [rng.standard_normal(s) for s in shapes]
        layer = getattr(L, name)(dtype="float64")
        y = layer(xs)
        assert y.shape == (2, 3, 4) and layer.compute_output_shape(shapes) == (2, 3, 4)
        check_gradients(layer, xs)


def test_concatenate_gradients():
    rng = np.random.default_rng(2)
    for axis, shapes in ((-1, [(2, 3, 4), (2, 3, 1), (2, 3, 2)]), (1, [(2, 3, 4), (2, 5, 4)])):
        xs = [rng.standard_normal(s) for s in shapes]
        layer = L.Concatenate(axis=axis, dtype="float64")
        np.testing.assert_array_equal(layer(xs), np.concatenate(xs, axis=axis))
        check_gradients(layer, xs)


@pytest.mark.parametrize("name", ["Maximum", "Minimum"])
def test_ties_send_the_gradient_where_tensorflow_does(tf, keras, name):
    # Every element tied between some inputs: the gradient goes to the first of them.
    a = np.array([[1.0, 2.0, 3.0, 0.5]], dtype=np.float32)
    b = np.array([[1.0, 5.0, 3.0, 0.5]], dtype=np.float32)
    c = np.array([[1.0, 2.0, -3.0, 0.5]], dtype=np.float32)
    assert_matches_keras(tf, getattr(L, name)(), getattr(keras.layers, name)(), [a, b, c])
    assert_matches_keras(tf, getattr(L, name)(), getattr(keras.layers, name)(), [b, a])


@pytest.mark.parametrize("name", ELEMENTWISE + ["Concatenate"])
def test_parity_with_keras(tf, keras, name):
    rng = np.random.default_rng(3)
    shapes = [[(2, 3, 4), (2, 3, 5)], [(2, 2, 4), (2, 1, 4)]] if name == "Concatenate" else _shapes(name)
    for shapes_i in shapes:
        xs = [rng.standard_normal(s).astype(np.float32) for s in shapes_i]
        kwargs = dict(axis=-1 if shapes_i[0][1:2] == shapes_i[1][1:2] else 1) if name == "Concatenate" else {}
        f_layer, k_layer = getattr(L, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
        assert_matches_keras(tf, f_layer, k_layer, xs)
        assert f_layer.name == k_layer.name
        symbolic = [(None,) + s[1:] for s in shapes_i]
        assert tuple(f_layer.compute_output_shape(symbolic)) == tuple(k_layer.compute_output_shape(symbolic))
        assert_same_config(f_layer, k_layer)
        keras.backend.clear_session(free_memory=False)
        backend.clear_session()


@pytest.mark.parametrize("function, cls", [("add", "Add"), ("subtract", "Subtract"), ("multiply", "Multiply"),
                                           ("average", "Average"), ("maximum", "Maximum"),
                                           ("minimum", "Minimum"), ("concatenate", "Concatenate")])
def test_functional_forms(function, cls):
    backend.clear_session()
    a, b = fk.Input((3,)), fk.Input((3,))
    out = getattr(L, function)([a, b], name=f"my_{function}")
    layer = out._keras_history[0]
    assert type(layer).__name__ == cls and layer.name == f"my_{function}"
    assert out.shape == ((None, 6) if cls == "Concatenate" else (None, 3))
    x, y = np.ones((2, 3), np.float32), np.full((2, 3), 2, np.float32)
    model = fk.Model([a, b], out)
    expected = {"add": x + y, "subtract": x - y, "multiply": x * y, "average": (x + y) / 2,
                "maximum": np.maximum(x, y), "minimum": np.minimum(x, y),
                "concatenate": np.concatenate([x, y], -1)}[function]
    np.testing.assert_array_equal(model.predict([x, y], verbose=0), expected)
    np.testing.assert_array_equal(getattr(L, function)([x, y]), expected)


def test_auto_names():
    backend.clear_session()
    names = [L.Concatenate().name, L.Subtract().name, L.Multiply().name, L.Average().name, L.Maximum().name,
             L.Minimum().name, L.Concatenate().name]
    assert names == ["concatenate", "subtract", "multiply", "average", "maximum", "minimum", "concatenate_1"]


def test_config_round_trip():
    layer = L.Concatenate(axis=1, name="c")
    config = json.loads(json.dumps(layer.get_config()))
    assert config == {"name": "c", "trainable": True, "dtype": "float32", "axis": 1}
    assert L.deserialize(L.serialize(layer)).get_config() == config


def test_symbolic_shapes_keep_unknown_sizes():
    assert L.Add().compute_output_shape([(None, None, 4), (None, 3, 1)]) == (None, None, 4)
    assert L.Concatenate(axis=1).compute_output_shape([(None, None, 4), (None, 3, 4)]) == (None, None, 4)
    assert L.Concatenate().compute_output_shape([(None, None, 4), (None, 3, 2)]) == (None, 3, 6)


@pytest.mark.parametrize("make, inputs, message", [
    (L.Add, [(2, 3), (2, 4)], 'Add "add.*": inputs have incompatible shapes'),
    (L.Maximum, [(2, 3), (3, 3)], "cannot merge tensors with different batch sizes"),
    (L.Subtract, [(2, 3)] * 3, "should be called on exactly 2 inputs"),
    (L.Concatenate, [(2, 3, 4), (2, 4, 4)], "requires inputs with matching shapes except for the concatenation axis"),
    (L.Concatenate, [(2, 3, 4), (2, 3)], "requires inputs with matching shapes"),
    (lambda: L.Concatenate(axis=3), [(2, 3), (2, 3)], "axis 3 is out of range for inputs of rank 2"),
])
def test_input_errors(make, inputs, message):
    backend.clear_session()
    with pytest.raises(ValueError, match=message):
        make()([np.zeros(s, np.float32) for s in inputs])


def test_argument_and_call_errors():
    with pytest.raises(ValueError, match=r'Concatenate "concatenate.*": axis must be an int. Received: axis=1.5'):
        L.Concatenate(axis=1.5)
    with pytest.raises(ValueError, match="takes a list of inputs"):
        L.Multiply()(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="a merge layer should be called on a list of at least 1 input"):
        L.Average().compute_output_shape([])


def test_concatenate_takes_a_list_of_shapes():
    with pytest.raises(ValueError, match="a `Concatenate` layer should be called on a list of at least 1 input"):
        L.Concatenate().compute_output_shape([])
