"""Public Keras CNN programs (Keras examples, TensorFlow tutorials, Chollet's and Géron's notebooks), their
essential lines with only the imports changed, on tiny synthetic data."""
import subprocess
import sys


def test_import_fastconv_as_tf_gives_tf_keras_without_importing_fastconv_keras():
    # The TensorFlow tutorials write `import tensorflow as tf` and then only use tf.keras.*: with
    # `import fastconv as tf`, tf.keras must be there although nothing imported fastconv.keras yet
    # (a fresh interpreter, as a program starts).
    program = ("import sys, fastconv as tf\n"
               "assert 'fastconv.keras' not in sys.modules\n"
               "model = tf.keras.Sequential([tf.keras.Input(shape=(8, 8, 1)), tf.keras.layers.Conv2D(2, 3)])\n"
               "model.compile(optimizer='adam', loss=tf.keras.losses.MeanSquaredError())\n"
               "print(model.count_params())\n")
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
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
