"""Helpers shared by the tests (importable because pyproject.toml puts tests/ on the path)."""
import contextlib
import os
import subprocess
import sys
import tempfile

import numpy as np
from hypothesis import strategies as st

DTYPES = (np.float32, np.float64)


def assert_close(actual, expected, dtype, magnitude=1.0):
    """Compare a kernel's result with a float64 reference: float32 to ~1e-5 of the magnitude of
    the sums involved, float64 to ~1e-12."""
    tol = 2e-5 if np.dtype(dtype) == np.float32 else 1e-12
    np.testing.assert_allclose(actual, expected, rtol=tol * 10, atol=tol * magnitude)
    assert np.asarray(actual).dtype == np.dtype(dtype)


def tf_padding(padding, data_format="NHWC"):
    """fastconv.reference padding -> TensorFlow's argument form."""
    if isinstance(padding, str):
        return padding
    (top, bottom), (left, right) = padding
    pairs = [[top, bottom], [left, right]]
    return [[0, 0], *pairs, [0, 0]] if data_format == "NHWC" else [[0, 0], [0, 0], *pairs]


def randomise_batch_norms(model, rng, affine=True):
    """Moving statistics (and, with ``affine``, gamma and beta) of every BatchNormalization far from
    their initial values, so that folding them into a convolution is not trivial."""
    from fastconv.keras import layers
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            c = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.standard_normal(c).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.2, 3.0, c).astype(np.float32))
            if affine and layer.scale:
                layer.gamma.assign(rng.uniform(-2.0, 2.0, c).astype(np.float32))
            if affine and layer.center:
                layer.beta.assign(rng.standard_normal(c).astype(np.float32))


@contextlib.contextmanager
def floatx_of_both(keras, dtype):
    """Keras's and fastconv.keras's default float type set to ``dtype`` for the block, then restored.
    Keras's losses compute in floatx whatever the model's dtype, so a float64 comparison of training
    needs floatx float64 on both sides, not only float64 layers."""
    import fastconv.keras as fk
    saved = keras.config.floatx(), fk.config.floatx()
    keras.config.set_floatx(dtype)
    fk.config.set_floatx(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(saved[0])
        fk.config.set_floatx(saved[1])


def child_env(**extra):
    """The environment for a child interpreter that imports the very fastconv this process imported
    (the installed package, or the sanitizer's in-place build), with ``extra`` variables set."""
    import fastconv
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    return env


def run_python(code, *args, cwd=None, env=None, **kwargs):
    """Run ``python -c code *args`` in a fresh interpreter. ``python -c`` puts its working directory
    first on the path, so it runs from a temporary folder (or ``cwd``), never from a source checkout
    whose uncompiled ``fastconv/`` would shadow the package under test."""
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    with tempfile.TemporaryDirectory() as neutral:
        return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd or neutral,
                              env=env or child_env(), **kwargs)


@st.composite
def conv_problems(draw, max_size=9, max_channels=12, allow_dilation=True):
    """A random convolution whose filter fits: shapes, strides, dilations, padding."""
    n = draw(st.integers(1, 3))
    h, w = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    cin, cout = draw(st.integers(1, max_channels)), draw(st.integers(1, 2 * max_channels + 5))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilations = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if allow_dilation else (1, 1)
    padding = draw(st.one_of(
        st.sampled_from(["SAME", "VALID"]),
        st.tuples(st.tuples(st.integers(0, 3), st.integers(0, 3)), st.tuples(st.integers(0, 3), st.integers(0, 3))),
    ))
    pads = (0, 0, 0, 0) if padding in ("SAME", "VALID") else (*padding[0], *padding[1])
    eff_h, eff_w = (kh - 1) * dilations[0] + 1, (kw - 1) * dilations[1] + 1
    if padding == "VALID" or not isinstance(padding, str):
        # make the filter fit the padded input
        h = max(h, eff_h - pads[0] - pads[1])
        w = max(w, eff_w - pads[2] - pads[3])
    return dict(x_shape=(n, h, w, cin), w_shape=(kh, kw, cin, cout), strides=strides,
                dilations=dilations, padding=padding)


# ------------------------------------------------- models shared by the Keras tests (K = keras or fastconv.keras)
def _keras_module(K):
    """K, or fastconv.keras by default (imported here, so that the kernel tests do not import it)."""
    if K is None:
        import fastconv.keras as K
    return K


def malaria_cnn(K=None, size=100, dropout=0.5):
    """The lecture's malaria CNN, built with Keras (K=keras) or fastconv.keras."""
    K = _keras_module(K)
    model = K.Sequential()
    model.add(K.layers.Conv2D(filters=32, input_shape=(size, size, 3), kernel_size=(3, 3), padding="same",
                              activation="relu"))
    model.add(K.layers.MaxPooling2D(pool_size=(2, 2)))
    model.add(K.layers.Conv2D(64, kernel_size=(3, 3), activation="relu"))
    model.add(K.layers.MaxPooling2D(pool_size=(2, 2)))
    model.add(K.layers.Flatten())
    model.add(K.layers.Dropout(dropout))
    model.add(K.layers.Dense(1, activation="sigmoid"))
    return model


def lenet5(K=None, pool=None):
    K = _keras_module(K)
    pool = pool or (lambda: K.layers.AveragePooling2D())
    return K.Sequential([
        K.layers.Conv2D(6, (3, 3), activation="relu", input_shape=(32, 32, 1)), pool(),
        K.layers.Conv2D(16, (3, 3), activation="relu"), pool(), K.layers.Flatten(),
        K.layers.Dense(120, activation="relu"), K.layers.Dense(84, activation="relu"),
        K.layers.Dense(10, activation="softmax")])


def residual_model(K=None, dtype=None):
    K = _keras_module(K)
    kw = {} if dtype is None else {"dtype": dtype}
    i = K.Input((8, 8, 3), **kw)
    x = K.layers.Conv2D(4, 3, padding="same", activation="relu", **kw)(i)
    # No bias before a batch normalization: its gradient would be zero up to rounding.
    y = K.layers.Conv2D(4, 3, padding="same", use_bias=False, **kw)(x)
    y = K.layers.BatchNormalization(**kw)(y)
    z = K.layers.ReLU(**kw)(K.layers.Add(**kw)([x, y]))
    z = K.layers.GlobalAveragePooling2D(**kw)(z)
    return K.Model(i, K.layers.Dense(3, activation="softmax", **kw)(z), **kw)


def predict_layer_by_layer(model, x):
    """``model.predict_on_batch(x)`` computed layer by layer, as a model that is not frozen runs:
    the reference of the InferenceModel tests (predict itself runs through an InferenceModel)."""
    xs = list(x) if isinstance(x, (list, tuple)) else [x]
    xs = [np.asarray(a, model.dtype) for a in xs]
    return model._structured(model._graph_for(xs[0].shape).run(xs, training=False)[0])
