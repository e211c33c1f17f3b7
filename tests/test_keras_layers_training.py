"""The new layers inside a model trained by fit: a functional model that joins most of them
(PReLU, GroupNormalization, ZeroPadding2D, Cropping2D, LeakyReLU, Concatenate, Conv2DTranspose
with gelu, Multiply, UpSampling2D, LayerNormalization, GlobalMaxPooling2D, Softmax) gives
Keras's parameter count, predictions, epoch losses and final weights; with regularizers and
constraints on their weights, the same penalties, losses and weights; and .keras files of them
load both ways."""
import numpy as np

from fastconv import keras as fk

from _layer_parity import assert_same_config


def joined_model(K):
    i = K.Input((8, 8, 3))
    a = K.layers.Conv2D(4, 3, padding="same")(i)
    a = K.layers.PReLU(alpha_initializer=K.initializers.Constant(0.2), shared_axes=[1, 2])(a)
    a = K.layers.GroupNormalization(2)(a)
    b = K.layers.Cropping2D(1)(K.layers.ZeroPadding2D(1)(i))
    b = K.layers.LeakyReLU()(K.layers.Conv2D(4, 1)(b))
    m = K.layers.MaxPooling2D()(K.layers.Concatenate()([a, b]))
    m = K.layers.Conv2DTranspose(4, 3, strides=2, padding="same", activation="gelu")(m)
    m = K.layers.Multiply()([m, a])
    m = K.layers.UpSampling2D(interpolation="bilinear")(K.layers.AveragePooling2D(2)(m))
    m = K.layers.LayerNormalization()(m)
    m = K.layers.GlobalMaxPooling2D()(m)
    return K.Model(i, K.layers.Softmax()(K.layers.Dense(3)(m)))


def regularized_model(K):
    i = K.Input((6, 6, 2))
    x = K.layers.Conv2DTranspose(3, 3, strides=2, padding="same", kernel_regularizer=K.regularizers.L2(0.05),
                                 bias_regularizer="l1", activity_regularizer=K.regularizers.L2(0.01),
                                 kernel_constraint=K.constraints.MaxNorm(0.1), activation="tanh")(i)
    x = K.layers.PReLU(alpha_initializer=K.initializers.Constant(0.01), alpha_regularizer=K.regularizers.L2(0.1),
                       alpha_constraint="non_neg", shared_axes=[1, 2])(x)
    x = K.layers.GroupNormalization(3, gamma_regularizer=K.regularizers.L2(0.1), beta_constraint="max_norm")(x)
    x = K.layers.LayerNormalization(beta_regularizer=K.regularizers.L1(0.1),
                                    gamma_constraint=K.constraints.MinMaxNorm(0.5, 1.5))(x)
    x = K.layers.GlobalAveragePooling2D()(x)
    return K.Model(i, K.layers.Dense(2, activation="softmax")(x))


def _copy_weights_by_layer(k_model, f_model):
    # Layer by layer: fastconv.keras lists a functional model's layers in another order than
    # Keras when branches are not written in depth order.
    for k_layer in k_model.layers:
        f_model.get_layer(k_layer.name).set_weights(k_layer.get_weights())


def test_model_of_the_new_layers_trains_as_keras(keras):  # noqa: F811
    rng = np.random.default_rng(1)
    x = rng.random((48, 8, 8, 3), dtype=np.float32)
    y = rng.integers(0, 3, 48)
    k_model, f_model = joined_model(keras), joined_model(fk)
    assert f_model.count_params() == k_model.count_params()
    _copy_weights_by_layer(k_model, f_model)
    np.testing.assert_allclose(f_model.predict(x, verbose=0), k_model.predict(x, verbose=0), atol=1e-5)
    for model in (k_model, f_model):
        model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    k_history = k_model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history
    f_history = f_model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history
    np.testing.assert_allclose(f_history["loss"], k_history["loss"], rtol=1e-4)
    for k_layer in k_model.layers:
        for kw, fw in zip(k_layer.get_weights(), f_model.get_layer(k_layer.name).get_weights()):
            np.testing.assert_allclose(fw, kw, rtol=1e-4, atol=1e-4 * np.abs(kw).max(), err_msg=k_layer.name)


def test_regularizers_and_constraints_of_the_new_layers_as_keras(keras):  # noqa: F811
    rng = np.random.default_rng(2)
    x = rng.standard_normal((32, 6, 6, 2)).astype(np.float32)
    y = rng.integers(0, 2, 32)
    k_model, f_model = regularized_model(keras), regularized_model(fk)
    _copy_weights_by_layer(k_model, f_model)
    kernel = f_model.get_layer("conv2d_transpose").kernel
    assert np.sqrt((kernel.value ** 2).sum(axis=0)).max() > 0.1     # MaxNorm(0.1) will bind
    for name in ("conv2d_transpose", "p_re_lu", "group_normalization", "layer_normalization"):
        assert_same_config(f_model.get_layer(name), k_model.get_layer(name))
    k_model(x)
    f_model.predict(x, verbose=0)
    np.testing.assert_allclose(sum(f_model.losses), sum(float(v) for v in k_model.losses), rtol=1e-5)
    # The MaxNorm and MinMaxNorm constraints bind from the first step.  (With larger steps the
    # float32 rounding differences grow tenfold per step in this small model: chaos, not error.)
    k_model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.SGD(0.1))
    f_model.compile(loss="sparse_categorical_crossentropy", optimizer=fk.optimizers.SGD(0.1))
    k_history = k_model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    f_history = f_model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    np.testing.assert_allclose(f_history["loss"], k_history["loss"], rtol=1e-4)
    for k_layer in k_model.layers:
        for kw, fw in zip(k_layer.get_weights(), f_model.get_layer(k_layer.name).get_weights()):
            np.testing.assert_allclose(fw, kw, rtol=1e-4, atol=1e-4 * np.abs(kw).max(), err_msg=k_layer.name)
    assert np.sqrt((kernel.value ** 2).sum(axis=0)).max() <= 0.1 + 1e-6



def test_models_of_the_new_layers_load_both_ways(keras, tmp_path):  # noqa: F811
    """A Keras .keras file of these layers loads in fastconv.keras and the other way round, with
    the same predictions (configurations and weight layouts agree)."""
    x = np.random.default_rng(3).random((4, 6, 6, 2), dtype=np.float32)
    k_model = regularized_model(keras)
    k_model.save(tmp_path / "keras.keras")
    f_loaded = fk.models.load_model(tmp_path / "keras.keras")
    np.testing.assert_allclose(f_loaded.predict(x, verbose=0), k_model.predict(x, verbose=0), atol=1e-6)
    f_model = joined_model(fk)
    f_model.save(tmp_path / "fastconv.keras")
    k_loaded = keras.models.load_model(tmp_path / "fastconv.keras")
    x = np.random.default_rng(4).random((4, 8, 8, 3), dtype=np.float32)
    np.testing.assert_allclose(k_loaded.predict(x, verbose=0), f_model.predict(x, verbose=0), atol=1e-6)
