"""fastconv.keras.random against keras.random: names, arguments, dtypes, shapes, seeding rules,
the distributions' moments, and random ops in a custom layer's traced call()."""
import numpy as np
import pytest

import fastconv.keras as fk
from fastconv.keras import ops

N = 200_000


def test_the_functions_keras_names(keras):
    for name in fk.random.__all__:
        assert hasattr(keras.random, name), name


@pytest.mark.parametrize("name, args, kwargs", [
    ("normal", ((3, 4),), {}), ("uniform", ((3, 4),), {}), ("truncated_normal", ((3, 4),), {}),
    ("randint", ((3, 4), 0, 5), {}), ("binomial", ((3, 4), 5, 0.5), {}), ("gamma", ((3, 4), 2.0), {}),
    ("beta", ((3, 4), 2.0, 3.0), {}), ("normal", ((2,),), {"dtype": "float64"}),
    ("randint", ((2,), 0, 9), {"dtype": "int64"}),
])
def test_shapes_dtypes_and_integer_seeds_as_keras(keras, name, args, kwargs):
    ours = getattr(fk.random, name)(*args, seed=7, **kwargs)
    theirs = np.asarray(getattr(keras.random, name)(*args, seed=7, **kwargs))
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    # an integer seed gives the same numbers at every call, in both libraries
    np.testing.assert_array_equal(getattr(fk.random, name)(*args, seed=7, **kwargs), ours)
    np.testing.assert_array_equal(np.asarray(getattr(keras.random, name)(*args, seed=7, **kwargs)), theirs)


def test_moments_and_ranges():
    g = fk.random.SeedGenerator(0)
    x = fk.random.normal((N,), mean=2.0, stddev=3.0, seed=g)
    assert abs(x.mean() - 2) < 0.05 and abs(x.std() - 3) < 0.05
    u = fk.random.uniform((N,), minval=-1.0, maxval=3.0, seed=g)
    assert u.min() >= -1 and u.max() < 3 and abs(u.mean() - 1) < 0.02
    t = fk.random.truncated_normal((N,), mean=1.0, stddev=0.5, seed=g)
    assert t.min() >= 0 and t.max() <= 2 and abs(t.std() - 0.5 * 0.8796) < 0.01   # sd of N(0,1) cut at +-2
    r = fk.random.randint((N,), 3, 7, seed=g)
    assert set(np.unique(r)) == {3, 4, 5, 6}
    assert abs(fk.random.binomial((N,), 10, 0.3, seed=g).mean() - 3) < 0.05
    assert abs(fk.random.gamma((N,), 2.5, seed=g).mean() - 2.5) < 0.05
    assert abs(fk.random.beta((N,), 2.0, 6.0, seed=g).mean() - 0.25) < 0.01
    picks = fk.random.categorical(np.log([[0.7, 0.2, 0.1], [0.0001, 0.0001, 0.9998]]), 20_000, seed=g)
    assert picks.shape == (2, 20_000) and picks.dtype == np.int32
    np.testing.assert_allclose(np.bincount(picks[0], minlength=3) / 20_000, [0.7, 0.2, 0.1], atol=0.015)
    assert (picks[1] == 2).mean() > 0.99
    x = np.arange(24).reshape(4, 6)
    shuffled = fk.random.shuffle(x, axis=1, seed=3)
    np.testing.assert_array_equal(np.sort(shuffled, axis=1), x)
    assert not np.array_equal(shuffled, x)
    np.testing.assert_array_equal(x, np.arange(24).reshape(4, 6))      # the input is not modified


def test_seed_generators_advance_and_repeat_and_the_global_seed():
    a, b = fk.random.SeedGenerator(1337), fk.random.SeedGenerator(1337)
    first = fk.random.uniform((5,), seed=a)
    assert not np.array_equal(fk.random.uniform((5,), seed=a), first)        # the stream advances
    np.testing.assert_array_equal(fk.random.uniform((5,), seed=b), first)    # and repeats from its seed
    fk.utils.set_random_seed(4)
    x, s = fk.random.normal((5,)), fk.random.SeedGenerator().seed
    fk.utils.set_random_seed(4)
    np.testing.assert_array_equal(fk.random.normal((5,)), x)
    assert fk.random.SeedGenerator().seed == s


def test_dropout_values_and_noise_shape():
    x = np.ones((1000, 8), dtype=np.float32)
    y = fk.random.dropout(x, 0.25, seed=0)
    assert y.dtype == np.float32 and set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.02
    shared = fk.random.dropout(x, 0.5, noise_shape=(1000, 1), seed=0)
    assert all(len(np.unique(row)) == 1 for row in shared)


def test_bad_arguments_are_refused_clearly():
    with pytest.raises(ValueError, match="random.dropout: `rate` must be a number in \\[0, 1\\). Received: rate=1"):
        fk.random.dropout(np.ones(3), 1)
    with pytest.raises(ValueError, match="random.uniform: `dtype` must be a floating dtype"):
        fk.random.uniform((2,), dtype="int32")
    with pytest.raises(ValueError, match="random.randint: `maxval` must be greater than `minval`"):
        fk.random.randint((2,), 5, 5)
    with pytest.raises(ValueError, match="random.normal: `shape` must be a tuple of non-negative integers"):
        fk.random.normal((2, -1))
    with pytest.raises(ValueError, match="random.normal: `seed` must be None, an integer or a keras.random"):
        fk.random.normal((2,), seed="x")
    with pytest.raises(ValueError, match="SeedGenerator: `seed` must be an integer or None"):
        fk.random.SeedGenerator(1.5)
    with pytest.raises(ValueError, match="random.categorical: `logits` should be a 2-D tensor"):
        fk.random.categorical(np.zeros(3), 2)
    with pytest.raises(ValueError, match="random.normal: the shape \\(None, 3\\) has unknown sizes.*ops.shape\\(x\\)"):
        fk.random.normal((None, 3))


class CustomDropout(fk.layers.Layer):
    """Keras's subclassing guide, word for word (imports aside)."""

    def __init__(self, rate, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.seed_generator = fk.random.SeedGenerator(1337)

    def call(self, inputs, training=None):
        if training:
            return fk.random.dropout(inputs, rate=self.rate, seed=self.seed_generator)
        return inputs


class Noisy(fk.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = fk.random.SeedGenerator(3)

    def call(self, inputs, training=False):
        if training:
            return inputs + fk.random.normal(ops.shape(inputs), stddev=0.1, seed=self.seed_generator)
        return inputs


def test_random_ops_in_a_traced_call_draw_at_every_step_and_pass_gradients():
    fk.utils.set_random_seed(0)
    model = fk.Sequential([fk.Input((16,)), fk.layers.Dense(32, activation="relu"), CustomDropout(0.5),
                           Noisy(), fk.layers.Dense(1)])
    x = np.random.default_rng(0).standard_normal((64, 16)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict(x, verbose=0), model(x), rtol=1e-5)   # inference: no dropout, no noise
    a, b = model(x, training=True), model(x, training=True)
    assert not np.allclose(a, b)                                                 # new masks and noise each run
    model.compile("adam", "mse")
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.75 * history.history["loss"][0]     # gradients pass the random ops
    assert all(not np.array_equal(w, v) for w, v in zip(model.get_weights(), before))

    # dropout's gradient is the scale of the kept inputs: through a fixed mask, a linear model's
    # gradient of sum(outputs) by its input equals the mask's scale times the weights
    layer = CustomDropout(0.5)
    inputs = fk.Input((6,))
    probe = fk.Model(inputs, layer(inputs))
    xs = np.ones((2, 6), np.float32)
    outputs, cache = probe.layers[-1].forward(xs, training=True)
    grad, _ = probe.layers[-1].backward(cache, np.ones_like(xs))
    np.testing.assert_array_equal(grad, outputs)           # y = x * scale with x = 1: dy/dx = scale = y
