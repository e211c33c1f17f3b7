"""model.layers in Keras's order (by depth, then the first reach of a depth-first walk from the
outputs), which summaries, get_weights and weight files by order follow."""
import pytest

import fastconv.keras as fk


def _branchy(K):
    i = K.Input((8, 8, 3), name="img")
    shortcut = K.layers.Conv2D(4, 1, name="shortcut")(i)
    b = K.layers.Conv2D(4, 3, padding="same", name="c1")(i)
    b = K.layers.Conv2D(4, 3, padding="same", name="c2")(b)
    b = K.layers.Conv2D(4, 3, padding="same", name="c3")(b)
    x = K.layers.Add(name="add")([b, shortcut])
    aux = K.Input((4,), name="aux")
    y = K.layers.GlobalAveragePooling2D(name="gap")(x)
    y = K.layers.Concatenate(name="cat")([y, K.layers.Dense(4, name="d_aux")(aux)])
    return K.Model([i, aux], K.layers.Dense(2, name="out")(y))


def _shared(K):
    a, b = K.Input((3,), name="a"), K.Input((3,), name="b")
    dense = K.layers.Dense(2, name="shared")
    return K.Model([a, b], K.layers.Add(name="sum")([dense(a), dense(b)]))


ORDERS = {  # as Keras 3.15 gives them (checked below when TensorFlow is installed)
    _branchy: ["img", "c1", "c2", "c3", "shortcut", "add", "aux", "gap", "d_aux", "cat", "out"],
    _shared: ["a", "b", "shared", "sum"],
}


@pytest.mark.parametrize("build", list(ORDERS), ids=lambda f: f.__name__)
def test_layer_order_is_keras_order(build):
    fk.backend.clear_session()
    model = build(fk)
    assert [layer.name for layer in model.layers] == ORDERS[build]
    # get_weights follows the layers.
    assert [w.path.split("/")[0] for w in model.weights] == [
        layer.name for layer in model.layers for _ in layer.weights]


@pytest.mark.parametrize("build", list(ORDERS), ids=lambda f: f.__name__)
def test_layer_order_matches_keras(build, tf):
    import keras
    assert [layer.name for layer in build(keras).layers] == ORDERS[build]
