"""fastconv.dask: the chunked ops against the in-memory ones, models on chunked images against
model.predict, predictions on a LocalCluster, and the refusals."""
import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="fastconv.dask needs dask (pip install 'dask[array,distributed]')")

import fastconv  # noqa: E402
import fastconv.dask as fd  # noqa: E402
from fastconv.keras import Input, Model, Sequential  # noqa: E402
from fastconv.keras.layers import (  # noqa: E402
    Activation,
    Add,
    AveragePooling2D,
    BatchNormalization,
    Concatenate,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPooling2D,
    ReLU,
    ZeroPadding2D,
)
from fastconv.keras.utils import set_random_seed  # noqa: E402

# Chunkings of a (2, 23, 19, C) image: ragged, single rows or columns, smaller than the halos,
# whole (single pixels on a smaller image below).
CHUNKINGS = [(1, 5, 4), (2, 1, 19), (1, 23, 1), (2, 3, 2), (2, 23, 19), (1, (10, 1, 12), (2, 15, 2))]

CONV_ARGS = [
    dict(strides=1, padding="SAME"),
    dict(strides=2, padding="SAME"),
    dict(strides=3, padding="VALID"),
    dict(strides=[2, 3], padding=[[0, 0], [2, 1], [0, 3], [0, 0]]),
    dict(strides=1, padding="SAME", dilations=[2, 3]),
    dict(strides=[1, 1, 2, 1], padding=[[4, 0], [1, 5]], dilations=1),
    dict(strides=1, padding="VALID", dilations=[3, 1]),
]


@pytest.fixture(autouse=True)
def _one_thread_scheduler(request):
    """The chunked ops on the synchronous scheduler (tiny chunks: threads only add overhead);
    the predictions on the default one."""
    if "predict" in request.node.name or "local_client" in request.fixturenames:
        yield
        return
    import dask
    with dask.config.set(scheduler="synchronous"):
        yield


def _relative_error(got, want):
    return np.abs(got - want).max() / max(np.abs(want).max(), 1e-30)


def _chunked(x, chunking):
    n, h, w = chunking
    return da.from_array(x, chunks=(n, h, w, x.shape[3]))


@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize("args", CONV_ARGS)
def test_conv2d_equals_in_memory(chunking, args):
    rng = np.random.default_rng(abs(hash((str(chunking), str(args)))) % 2**32)
    kh, kw, cin, cout = rng.integers(1, 6), rng.integers(1, 6), rng.integers(1, 4), rng.integers(1, 5)
    x = rng.standard_normal((2, 23, 19, cin)).astype(np.float32)
    w = rng.standard_normal((kh, kw, cin, cout)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    want = fastconv.conv2d(x, w, bias=b, activation="relu", **args)
    got = fd.conv2d(_chunked(x, chunking), w, bias=b, activation="relu", **args)
    assert isinstance(got, da.Array)
    got = got.compute()
    assert got.shape == want.shape and got.dtype == want.dtype
    assert _relative_error(got, want) < 1e-5


@pytest.mark.parametrize("args", CONV_ARGS[:5])
def test_single_pixel_chunks(args):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 8, 7, 2)).astype(np.float32)
    w = rng.standard_normal((3, 2, 2, 3)).astype(np.float32)
    pixels = da.from_array(x, chunks=(1, 1, 1, 2))
    assert _relative_error(fd.conv2d(pixels, w, **args).compute(), fastconv.conv2d(x, w, **args)) < 1e-5
    pool = dict(ksize=3, strides=args["strides"], padding="SAME")
    np.testing.assert_array_equal(fd.max_pool2d(pixels, **pool).compute(), fastconv.max_pool2d(x, **pool))
    assert _relative_error(fd.avg_pool2d(pixels, **pool).compute(), fastconv.avg_pool2d(x, **pool)) < 1e-6


def test_conv2d_without_bias_in_float64_and_integers():
    rng = np.random.default_rng(1)
    x = rng.integers(-3, 4, (1, 17, 13, 2))
    w = rng.standard_normal((3, 3, 2, 3))
    want = fastconv.conv2d(x, w, 2, "SAME")
    got = fd.conv2d(da.from_array(x, chunks=(1, 4, 5, 2)), w, 2, "SAME").compute()
    assert got.dtype == np.float64 and _relative_error(got, want) < 1e-12


POOL_ARGS = [
    dict(ksize=2, strides=2, padding="SAME"),
    dict(ksize=3, strides=2, padding="SAME"),
    dict(ksize=[3, 2], strides=[1, 3], padding="VALID"),
    dict(ksize=[4, 5], strides=[3, 2], padding="SAME"),
    dict(ksize=3, strides=1, padding="SAME"),
]


@pytest.mark.parametrize("chunking", [c for c in CHUNKINGS if c != (2, 23, 19)])
@pytest.mark.parametrize("args", POOL_ARGS)
@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
def test_pooling_equals_in_memory(op, args, chunking):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 23, 19, 3)).astype(np.float32)
    want = getattr(fastconv, op)(x, **args)
    got = getattr(fd, op)(_chunked(x, chunking), **args).compute()
    assert got.shape == want.shape and got.dtype == want.dtype
    if op == "max_pool2d":
        np.testing.assert_array_equal(got, want)
    else:
        assert _relative_error(got, want) < 1e-6


@pytest.mark.parametrize("chunking", CHUNKINGS[:3])
def test_max_pool_explicit_padding_and_infinities(chunking):
    x = np.random.default_rng(6).standard_normal((2, 23, 19, 2)).astype(np.float32)
    x[0, :3, :3] = -np.inf
    x[1, 5:9, 4:8] = np.nan
    padding = [[0, 0], [2, 1], [0, 2], [0, 0]]
    want = fastconv.max_pool2d(x, 3, 2, padding)
    got = fd.max_pool2d(_chunked(x, chunking), 3, 2, padding).compute()
    np.testing.assert_array_equal(got, want)


def test_halo_is_what_the_window_needs():
    """Along H: a 5-tall window at stride 2 borrows 5 - 2 = 3 rows after each chunk; chunks of
    fewer output rows than ceil(3 / 2) = 2 are merged; the chunks stay on the stride grid."""
    x = da.zeros((1, 40, 40, 1), chunks=(1, 10, 1, 1), dtype=np.float32)
    y = fd.conv2d(x, np.ones((5, 1, 1, 1), np.float32), strides=2, padding="SAME")
    # SAME pads 1 row before: image row 10k is padded row 10k + 1, the first output starting at or
    # after it is ceil((10k + 1) / 2).
    assert y.chunks[1] == (6, 5, 5, 4)
    # Windows 1 wide at stride 2 need no halo: one output column per two input columns.
    assert y.chunks[2] == (1,) * 20
    assert y.shape == (1, 20, 20, 1)


def test_lazy_and_input_untouched():
    x = np.random.default_rng(2).standard_normal((1, 9, 9, 1)).astype(np.float32)
    xd = da.from_array(x.copy(), chunks=(1, 3, 3, 1))
    y = fd.conv2d(xd, np.ones((3, 3, 1, 1), np.float32), 1, "SAME")
    assert isinstance(y, da.Array) and y.shape == (1, 9, 9, 1)
    y.compute()
    np.testing.assert_array_equal(xd.compute(), x)


def test_bad_inputs_say_what_is_wrong():
    w = np.ones((3, 3, 2, 1), np.float32)
    with pytest.raises(TypeError, match="must be a dask.array.Array"):
        fd.conv2d(np.ones((1, 8, 8, 2), np.float32), w, 1, "SAME")
    with pytest.raises(ValueError, match="channel axis must be one chunk"):
        fd.conv2d(da.ones((1, 8, 8, 2), chunks=(1, 4, 4, 1)), w, 1, "SAME")
    with pytest.raises(ValueError, match="channel axis must be one chunk"):
        fd.max_pool2d(da.ones((1, 8, 8, 2), chunks=(1, 4, 4, 1)), 2, 2, "SAME")
    with pytest.raises(ValueError, match="must be 4-D"):
        fd.avg_pool2d(da.ones((8, 8, 2)), 2, 2, "SAME")
    with pytest.raises(ValueError, match="filters have 2 input channels but the input has 3"):
        fd.conv2d(da.ones((1, 8, 8, 3)), w, 1, "SAME")
    with pytest.raises(ValueError, match="bias must have shape"):
        fd.conv2d(da.ones((1, 8, 8, 2)), w, 1, "SAME", bias=np.ones(2))
    with pytest.raises(ValueError, match="activation must be None or 'relu'"):
        fd.conv2d(da.ones((1, 8, 8, 2)), w, 1, "SAME", activation="tanh")
    with pytest.raises(ValueError, match="padding must be 'SAME' or 'VALID'"):
        fd.avg_pool2d(da.ones((1, 8, 8, 2)), 2, 2, [[1, 1], [1, 1]])
    with pytest.raises(ValueError, match="does not fit"):
        fd.conv2d(da.ones((1, 2, 2, 2)), w, 1, "VALID")


# ---------------------------------------------------------------------------- apply


def _branching_model():
    inp = Input((None, None, 3))
    a = Conv2D(4, 3, padding="same", activation="relu")(inp)
    b = Conv2D(4, 5, padding="same", dilation_rate=2)(inp)
    b = Activation("tanh")(BatchNormalization()(b))
    c = MaxPooling2D(2, padding="same")(Add()([a, b]))
    d = Conv2D(3, 3, strides=2, activation="sigmoid")(ZeroPadding2D(((1, 0), (1, 0)))(c))
    e = Conv2D(3, 1)(AveragePooling2D(3, strides=2, padding="same")(c))
    return Model(inp, Concatenate()([d, e]))


def _sequential_model():
    return Sequential([Input((None, None, 2)), Conv2D(6, (5, 3), strides=(2, 1), padding="same"), ReLU(),
                       Dropout(0.5), MaxPooling2D(3, strides=2), Conv2D(2, 3, dilation_rate=3, activation="elu")])


def _lecture_trunk():
    """The malaria CNN's convolutional part (its layers before Flatten)."""
    return Sequential([Input((None, None, 3)), Conv2D(32, 3, padding="same", activation="relu"), MaxPooling2D(2),
                       Conv2D(64, 3, activation="relu"), MaxPooling2D(2)])


@pytest.mark.parametrize("build, shape, chunking", [
    (_branching_model, (2, 36, 40, 3), (1, 8, 9)),
    (_branching_model, (1, 12, 16, 3), (1, 1, 1)),
    (_branching_model, (2, 36, 40, 3), (2, 36, 40)),
    (_sequential_model, (2, 41, 33, 2), (1, 10, 7)),
    (_sequential_model, (1, 41, 33, 2), (1, 3, 33)),
    (_lecture_trunk, (1, 50, 61, 3), (1, 16, 20)),
])
def test_apply_equals_predict(build, shape, chunking):
    set_random_seed(0)
    model = build()
    x = np.random.default_rng(3).random(shape).astype(np.float32)
    if any(isinstance(layer, BatchNormalization) for layer in model.layers):
        bn = next(layer for layer in model.layers if isinstance(layer, BatchNormalization))
        bn.set_weights([np.random.default_rng(4).random(w.shape).astype(np.float32) + 0.5 for w in bn.get_weights()])
    want = model.predict(x, verbose=0)
    got = fd.apply(model, _chunked(x, chunking))
    assert isinstance(got, da.Array)
    got = got.compute()
    assert got.shape == want.shape
    assert _relative_error(got, want) < 1e-5


def test_apply_refuses_dense_and_points_to_predict():
    model = Sequential([Input((16, 16, 1)), Conv2D(2, 3), Flatten(), Dense(1)])
    refusal = r'layer "flatten.*" \(Flatten\) is not fully convolutional.*fastconv.dask.predict'
    with pytest.raises(ValueError, match=refusal):
        fd.apply(model, da.zeros((1, 16, 16, 1), chunks=(1, 8, 8, 1)))
    model = Sequential([Input((None, None, 1)), Dense(3)])
    with pytest.raises(ValueError, match=r"\(Dense\) is not fully convolutional"):
        fd.apply(model, da.zeros((1, 16, 16, 1), chunks=(1, 8, 8, 1)))
    with pytest.raises(TypeError, match="must be a dask.array.Array"):
        fd.apply(model, np.zeros((1, 16, 16, 1)))
    from fastconv.keras.layers import DepthwiseConv2D
    model = Sequential([Input((None, None, 2)), DepthwiseConv2D(3)])
    with pytest.raises(ValueError, match=r"\(DepthwiseConv2D\) is not one of the layers apply runs"):
        fd.apply(model, da.zeros((1, 16, 16, 2), chunks=(1, 8, 8, 2)))


# ---------------------------------------------------------------------------- predict


def _classifier():
    set_random_seed(1)
    return Sequential([Input((20, 20, 3)), Conv2D(4, 3, activation="relu"), MaxPooling2D(2), Flatten(),
                       Dense(2, activation="softmax")])


def test_predict_on_the_local_scheduler():
    model = _classifier()
    x = np.random.default_rng(7).random((45, 20, 20, 3)).astype(np.float32)
    want = model.predict(x, verbose=0)
    got = fd.predict(model, da.from_array(x, chunks=(10, 20, 20, 3)), batch_size=4)
    assert isinstance(got, da.Array) and got.chunks == ((10, 10, 10, 10, 5), (2,))
    np.testing.assert_allclose(got.compute(), want, rtol=1e-5, atol=1e-7)
    # The graph pickles (a process scheduler sends its tasks to other processes).
    import pickle
    again = pickle.loads(pickle.dumps(got))
    np.testing.assert_allclose(again.compute(scheduler="sync"), want, rtol=1e-5, atol=1e-7)


@pytest.fixture(scope="module")
def local_client():
    """A LocalCluster of 2 workers x 1 thread, started and closed by the tests.  In-process
    workers (processes=False) start in a fraction of a second; worker processes give the same
    results (checked by hand) but take some 13 s to start and import here."""
    distributed = pytest.importorskip("distributed", reason="needs dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        yield client


def test_predict_on_a_local_cluster(local_client):
    model = _classifier()
    x = np.random.default_rng(8).random((40, 20, 20, 3)).astype(np.float32)
    want = model.predict(x, verbose=0)
    images = da.from_array(x, chunks=(8, 20, 20, 3))
    np.testing.assert_allclose(fd.predict(model, images, batch_size=5).compute(), want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(fd.predict(model, images, batch_size=5).compute(), want, rtol=1e-5, atol=1e-7)
    # The model went to each worker once (one plugin, set up once, however many predictions),
    # with fastconv's threads set to the worker's one thread.
    plugins = local_client.run(lambda dask_worker: [(name, plugin.predictor.n_threads)
                                                    for name, plugin in dask_worker.plugins.items()
                                                    if name.startswith("fastconv-model-")])
    assert len(plugins) == 2 and all(len(p) == 1 and p[0][1] == 1 for p in plugins.values())


def test_ops_and_apply_on_a_local_cluster(local_client):
    """The graphs' tasks pickle: the cluster computes what the local scheduler computes."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal((1, 36, 40, 3)).astype(np.float32)
    xd = da.from_array(x, chunks=(1, 18, 20, 3))
    w = rng.standard_normal((3, 3, 3, 2)).astype(np.float32)
    np.testing.assert_allclose(fd.conv2d(xd, w, 2, "SAME", bias=np.ones(2)).compute(),
                               fastconv.conv2d(x, w, 2, "SAME", bias=np.ones(2)), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(fd.max_pool2d(xd, 3, 2, "SAME").compute(), fastconv.max_pool2d(x, 3, 2, "SAME"))
    np.testing.assert_allclose(fd.avg_pool2d(xd, 3, 2, "SAME").compute(), fastconv.avg_pool2d(x, 3, 2, "SAME"),
                               rtol=1e-6, atol=1e-6)
    set_random_seed(0)
    model = _branching_model()
    assert _relative_error(fd.apply(model, xd).compute(), model.predict(x, verbose=0)) < 1e-5


def test_predict_refuses_bad_input():
    model = _classifier()
    with pytest.raises(TypeError, match="images must be a dask.array.Array"):
        fd.predict(model, np.zeros((4, 20, 20, 3)))
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        fd.predict(model, da.zeros((4, 20, 20, 3)), batch_size=0)
    with pytest.raises(TypeError, match="model must be a fastconv.keras Model"):
        fd.predict(object(), da.zeros((4, 20, 20, 3)))
