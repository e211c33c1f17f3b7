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
