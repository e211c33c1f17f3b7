"""Public Keras CNN programs (Keras examples, TensorFlow tutorials, Chollet's and Géron's notebooks), their
essential lines with only the imports changed, on tiny synthetic data."""
from _helpers import run_python


def test_import_fastconv_as_tf_gives_tf_keras_without_importing_fastconv_keras():
    # The TensorFlow tutorials write `import tensorflow as tf` and then only use tf.keras.*: with
    # `import fastconv as tf`, tf.keras must be there although nothing imported fastconv.keras yet
    # (a fresh interpreter, as a program starts).
    program = ("import sys, fastconv as tf\n"
               "assert 'fastconv.keras' not in sys.modules\n"
               "model = tf.keras.Sequential([tf.keras.Input(shape=(8, 8, 1)), tf.keras.layers.Conv2D(2, 3)])\n"
               "model.compile(optimizer='adam', loss=tf.keras.losses.MeanSquaredError())\n"
               "print(model.count_params())\n")
    result = run_python(program, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["20"]


def test_tf_data_augmentation_tutorial_sequentials_built_by_their_first_call():
    # TensorFlow's "Data augmentation" tutorial: resize_and_rescale is first called on one image
    # (height, width, channels), then mapped over the elements of a dataset; data_augmentation is
    # tried on a batch of one image of the raw size, then mapped over batches of resized images.
    import numpy as np

    from fastconv.keras import Sequential, layers

    rng = np.random.RandomState(0)
    image = rng.randint(0, 256, (15, 14, 3)).astype("float32")
    resize_and_rescale = Sequential([layers.Resizing(18, 18), layers.Rescaling(1. / 255)])
    result = resize_and_rescale(image)
    assert result.shape == (18, 18, 3)
    np.testing.assert_allclose(resize_and_rescale(image[:12, :10]), layers.Resizing(18, 18)(image[:12, :10]) / 255,
                               rtol=1e-6)
    data_augmentation = Sequential([layers.RandomFlip("horizontal_and_vertical"), layers.RandomRotation(0.2)])
    assert data_augmentation(image[None]).shape == (1, 15, 14, 3)
    assert data_augmentation(np.stack([result] * 4), training=True).shape == (4, 18, 18, 3)


def test_sequential_build_takes_the_first_axis_for_the_batch(tf):
    # As Keras: build((batch, ...)) with a batch of any size; the summary counts are Keras's.
    import numpy as np

    from fastconv import keras

    def counts_and_shape(k):
        model = k.Sequential([k.layers.Conv2D(4, 3), k.layers.Flatten(), k.layers.Dense(2)])
        model.build((8, 10, 10, 1))
        return model.count_params(), tuple(model(np.zeros((3, 10, 10, 1), "float32")).shape)

    assert counts_and_shape(keras) == counts_and_shape(tf.keras) == (4 * 10 + 8 * 8 * 4 * 2 + 2, (3, 2))


def test_keras_utils_load_img_and_img_to_array_as_the_image_classification_example(tmp_path, tf):
    # The Keras example "Image classification from scratch" ends with
    # keras.utils.load_img(path, target_size=...) -> keras.utils.img_to_array -> keras.ops.expand_dims.
    import numpy as np
    from PIL import Image

    from fastconv import keras

    path = str(tmp_path / "cat.jpg")
    Image.fromarray(np.random.RandomState(0).randint(0, 256, (30, 24, 3)).astype("uint8")).save(path)
    img_array = keras.ops.expand_dims(keras.utils.img_to_array(keras.utils.load_img(path, target_size=(18, 18))), 0)
    expected = tf.keras.utils.img_to_array(tf.keras.utils.load_img(path, target_size=(18, 18)))[None]
    assert img_array.dtype == expected.dtype
    np.testing.assert_array_equal(np.asarray(img_array), expected)


def test_tf_random_set_seed_repeats_the_initial_weights_as_in_geron():
    # Géron's notebooks: `tf.random.set_seed(42)` before each model, with `import fastconv as tf`.
    import numpy as np
    import pytest

    import fastconv as tf

    def weights():
        tf.random.set_seed(42)
        model = tf.keras.Sequential([tf.keras.Input(shape=(6, 6, 1)), tf.keras.layers.Conv2D(3, 3)])
        return model.get_weights()[0]

    np.testing.assert_array_equal(weights(), weights())
    with pytest.raises(TypeError, match="seed"):
        tf.random.set_seed(1.5)


def _transfer_model(k, preprocess_input, base):
    # TensorFlow's "Transfer learning and fine-tuning" tutorial, its model (weights=None: no download).
    inputs = k.Input(shape=(32, 32, 3))
    x = preprocess_input(inputs)
    x = base(x, training=False)
    x = k.layers.GlobalAveragePooling2D()(x)
    outputs = k.layers.Dense(1)(x)
    return k.Model(inputs, outputs)


def test_transfer_learning_tutorial_preprocess_input_inside_the_model(tf):
    import numpy as np

    from fastconv import keras

    def small_base(k):   # in place of MobileNetV2(include_top=False, weights=None), to stay quick
        inputs = k.Input(shape=(32, 32, 3))
        return k.Model(inputs, k.layers.DepthwiseConv2D(3, strides=2)(k.layers.Conv2D(8, 3)(inputs)))

    ours_base, theirs_base = small_base(keras), small_base(tf.keras)
    ours_base.trainable = theirs_base.trainable = False
    ours = _transfer_model(keras, keras.applications.mobilenet_v2.preprocess_input, ours_base)
    theirs = _transfer_model(tf.keras, tf.keras.applications.mobilenet_v2.preprocess_input, theirs_base)
    assert ours.count_params() == theirs.count_params()
    assert len(ours.trainable_weights) == len(theirs.trainable_weights) == 2
    ours.set_weights(theirs.get_weights())
    images = np.random.RandomState(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(ours.predict(images, verbose=0), theirs.predict(images, verbose=0), rtol=1e-4,
                               atol=1e-5)
    # "torch" mode too (DenseNet); "caffe" (VGG, ResNet) is refused inside a model, with the reason.
    inputs = keras.Input(shape=(4, 4, 3))
    torch_model = keras.Model(inputs, keras.applications.densenet.preprocess_input(inputs))
    np.testing.assert_allclose(torch_model.predict(images[:, :4, :4], verbose=0),
                               tf.keras.applications.densenet.preprocess_input(images[:, :4, :4].copy()), rtol=1e-5,
                               atol=1e-5)
    import pytest
    with pytest.raises(TypeError, match="caffe"):
        keras.applications.resnet50.preprocess_input(inputs)


def test_geron_transfer_learning_builds_on_base_model_input_and_output(tf):
    # Géron ch. 14: Model(inputs=base_model.input, outputs=Dense(...)(GlobalAveragePooling2D()(base_model.output))).
    from fastconv import keras

    def head_on(k):
        inputs = k.Input(shape=(None, None, 3))
        base_model = k.Model(inputs, k.layers.Conv2D(8, 3)(inputs))
        avg = k.layers.GlobalAveragePooling2D()(base_model.output)
        output = k.layers.Dense(5, activation="softmax")(avg)
        model = k.Model(inputs=base_model.input, outputs=output)
        return model.count_params(), base_model.input.shape, base_model.output.shape

    assert head_on(keras) == head_on(tf.keras)
