"""The new layers inside a model trained by fit: a functional model that joins most of them
(PReLU, GroupNormalization, ZeroPadding2D, Cropping2D, LeakyReLU, Concatenate, Conv2DTranspose
with gelu, Multiply, UpSampling2D, LayerNormalization, GlobalMaxPooling2D, Softmax) gives
Keras's parameter count, predictions, per-batch losses and final weights."""
import numpy as np

from fastconv import keras as fk

from test_keras_parity import keras  # noqa: F401 (the fixture)


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
