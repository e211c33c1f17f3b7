"""add_loss() in the call() of custom layers and subclassed models, against Keras: the losses a
call leaves, the training loss, and the weights after training steps (float64 on both sides)."""
import numpy as np
import pytest

import fastconv.keras as fk
from _helpers import floatx_of_both


def _activity_layer(K):
    class ActivityRegularizationLayer(K.layers.Layer):
        """Keras's subclassing guide."""

        def __init__(self, rate=1e-2):
            super().__init__()
            self.rate = rate

        def call(self, inputs):
            self.add_loss(self.rate * K.ops.mean(inputs))
            return inputs

    class OuterLayer(K.layers.Layer):
        def __init__(self):
            super().__init__()
            self.activity_reg = ActivityRegularizationLayer(1e-2)

        def call(self, inputs):
            return self.activity_reg(inputs)

    return ActivityRegularizationLayer, OuterLayer


def test_the_guides_layer_losses_as_keras(keras):
    for K in (keras, fk):
        _, OuterLayer = _activity_layer(K)
        layer = OuterLayer()
        assert len(layer.losses) == 0            # no losses yet: never called
        _ = layer(np.zeros((1, 1), np.float32))
        assert len(layer.losses) == 1
        _ = layer(np.ones((1, 1), np.float32))
        assert len(layer.losses) == 1            # reset at every call
        assert float(np.asarray(layer.losses[0])) == pytest.approx(1e-2)


def _squares(K):
    class Squares(K.layers.Layer):
        """A non-scalar added loss (Keras sums it) of a weight and of the inputs."""

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")

        def call(self, inputs):
            self.add_loss(1e-3 * K.ops.square(self.w))
            self.add_loss(1e-2 * K.ops.mean(K.ops.square(inputs)))
            return inputs * self.w

    return Squares


def _models(K):
    ActivityRegularizationLayer, _ = _activity_layer(K)
    inputs = K.Input((5,))
    x = K.layers.Dense(4, activation="tanh")(inputs)
    x = ActivityRegularizationLayer(0.5)(x)
    x = _squares(K)()(x)
    return K.Model(inputs, K.layers.Dense(1)(x))


def _train_both_and_compare(keras, k_model, f_model, optimizer, x, y, batch_size):
    """Keras's initial weights in both, two epochs of mse each: the logs and weights agree."""
    f_model.set_weights(k_model.get_weights())
    for m, K in ((k_model, keras), (f_model, fk)):
        m.compile(optimizer=optimizer(K), loss="mse")
    k_hist = k_model.fit(x, y, batch_size=batch_size, epochs=2, shuffle=False, verbose=0)
    f_hist = f_model.fit(x, y, batch_size=batch_size, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(f_hist.history["loss"], k_hist.history["loss"], rtol=1e-6)
    for a, b in zip(f_model.get_weights(), k_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-12)


def test_training_with_added_losses_matches_keras(keras):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 5)), rng.standard_normal((32, 1))
    with floatx_of_both(keras, "float64"):
        k_model, f_model = _models(keras), _models(fk)
        _train_both_and_compare(keras, k_model, f_model, lambda K: K.optimizers.SGD(0.1), x, y, batch_size=8)
        f_loss = f_model.evaluate(x, y, batch_size=32, verbose=0)
        np.testing.assert_allclose(f_loss, k_model.evaluate(x, y, batch_size=32, verbose=0), rtol=1e-6)
        # evaluate's loss is the mse plus the added terms of that (single-batch) call
        mse = float(np.mean((f_model.predict(x, verbose=0) - y) ** 2))
        added = sum(f_model.losses)
        assert abs(added) > 1e-3 and f_loss == pytest.approx(mse + added, rel=1e-9)


def _vae_like(K):
    class Encoder(K.Model):
        """A subclassed model adding a loss in its own call() (the guide's VAE pattern)."""

        def __init__(self):
            super().__init__()
            self.dense = K.layers.Dense(3)
            self.out = K.layers.Dense(2)

        def call(self, inputs):
            z = self.dense(inputs)
            self.add_loss(0.1 * K.ops.mean(K.ops.square(z)))
            return self.out(z)

    return Encoder()


def test_a_subclassed_models_own_added_loss_trains_as_keras(keras):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((16, 4)), rng.standard_normal((16, 2))
    with floatx_of_both(keras, "float64"):
        k_model, f_model = _vae_like(keras), _vae_like(fk)
        k_model(x[:1])
        f_model(x[:1])
        _train_both_and_compare(keras, k_model, f_model, lambda K: K.optimizers.Adam(0.01), x, y, batch_size=4)
        assert len(f_model.losses) == len(k_model.losses) == 1


def test_add_loss_errors():
    layer = fk.layers.Dense(2)
    with pytest.raises(TypeError, match="add_loss\\(\\) takes a tensor, not a callable"):
        layer.add_loss(lambda: 1.0)
    inputs = fk.Input((3,))
    with pytest.raises(ValueError, match="add_loss\\(\\) of a symbolic tensor works in the call\\(\\) of a layer"):
        layer.add_loss(fk.ops.mean(inputs))

    class Untraceable(fk.layers.Layer):
        def call(self, inputs):
            value = np.asarray(inputs)            # NumPy on values: cannot be traced
            self.add_loss(value.mean())
            return inputs + 0

    model = fk.Sequential([fk.Input((3,)), fk.layers.Dense(2), Untraceable()])
    model.compile("sgd", "mse")
    model.predict(np.ones((2, 3)), verbose=0)     # inference runs it eagerly: fine
    with pytest.raises(ValueError, match="adds a loss \\(add_loss\\) but fastconv.keras could not trace it"):
        model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)


def _vae(K, original_dim=20, intermediate_dim=16, latent_dim=4):
    """The variational autoencoder of Keras's subclassing guide, its lines with K for keras."""

    class Sampling(K.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = K.random.SeedGenerator(1337)

        def call(self, inputs):
            z_mean, z_log_var = inputs
            batch = K.ops.shape(z_mean)[0]
            dim = K.ops.shape(z_mean)[1]
            epsilon = K.random.normal(shape=(batch, dim), seed=self.seed_generator)
            return z_mean + K.ops.exp(0.5 * z_log_var) * epsilon

    class Encoder(K.layers.Layer):
        def __init__(self, latent_dim=32, intermediate_dim=64, name="encoder", **kwargs):
            super().__init__(name=name, **kwargs)
            self.dense_proj = K.layers.Dense(intermediate_dim, activation="relu")
            self.dense_mean = K.layers.Dense(latent_dim)
            self.dense_log_var = K.layers.Dense(latent_dim)
            self.sampling = Sampling()

        def call(self, inputs):
            x = self.dense_proj(inputs)
            z_mean = self.dense_mean(x)
            z_log_var = self.dense_log_var(x)
            z = self.sampling((z_mean, z_log_var))
            return z_mean, z_log_var, z

    class Decoder(K.layers.Layer):
        def __init__(self, original_dim, intermediate_dim=64, name="decoder", **kwargs):
            super().__init__(name=name, **kwargs)
            self.dense_proj = K.layers.Dense(intermediate_dim, activation="relu")
            self.dense_output = K.layers.Dense(original_dim, activation="sigmoid")

        def call(self, inputs):
            x = self.dense_proj(inputs)
            return self.dense_output(x)

    class VariationalAutoEncoder(K.Model):
        def __init__(self, original_dim, intermediate_dim=64, latent_dim=32, name="autoencoder", **kwargs):
            super().__init__(name=name, **kwargs)
            self.original_dim = original_dim
            self.encoder = Encoder(latent_dim=latent_dim, intermediate_dim=intermediate_dim)
            self.decoder = Decoder(original_dim, intermediate_dim=intermediate_dim)

        def call(self, inputs):
            z_mean, z_log_var, z = self.encoder(inputs)
            reconstructed = self.decoder(z)
            kl_loss = -0.5 * K.ops.mean(z_log_var - K.ops.square(z_mean) - K.ops.exp(z_log_var) + 1)
            self.add_loss(kl_loss)
            return reconstructed

    return VariationalAutoEncoder(original_dim, intermediate_dim, latent_dim)


def test_the_guides_variational_autoencoder_trains(keras):
    x = np.random.default_rng(2).random((256, 20)).astype(np.float32)
    ours, theirs = _vae(fk), _vae(keras)
    ours(x[:2])
    theirs(x[:2])
    assert ours.count_params() == theirs.count_params() == 20 * 16 + 16 + 2 * (16 * 4 + 4) + 4 * 16 + 16 + 16 * 20 + 20
    ours.set_weights(theirs.get_weights())
    fk.utils.set_random_seed(0)
    ours.compile(fk.optimizers.Adam(1e-3), loss=fk.losses.MeanSquaredError())
    history = ours.fit(x, x, epochs=4, batch_size=64, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    reconstructed = ours(x)
    (kl,) = ours.losses                  # the KL term of that call (exactly summed in: see above)
    assert kl > 0
    assert not np.allclose(reconstructed, ours(x))      # the sampling draws new noise at every call
