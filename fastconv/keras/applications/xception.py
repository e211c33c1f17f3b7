"""Xception (Chollet, 2017), as ``keras.applications.xception``: depthwise separable
convolutions throughout, in an entry flow (with strided 1x1 projection shortcuts), eight middle
blocks with identity shortcuts, and an exit flow; inputs scaled to [-1, 1]."""
from fastconv.keras import backend, layers
from fastconv.keras.applications import _common, imagenet_utils
from fastconv.keras.applications.imagenet_utils import decode_predictions  # noqa: F401

__all__ = ["Xception", "decode_predictions", "preprocess_input"]

BASE_WEIGHTS_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/xception/"
WEIGHTS_FILES = {True: ("xception_weights_tf_dim_ordering_tf_kernels.h5", "0a58e3b7378bc2990ea3b43d5981f1f6"),
                 False: ("xception_weights_tf_dim_ordering_tf_kernels_notop.h5", "b0042744bf5b25fce3cb969f33bebb97")}


def _bn(name=None):
    return layers.BatchNormalization(axis=_common.channel_axis(), name=name)


def _sepconv_bn(x, filters, name):
    x = layers.SeparableConv2D(filters, (3, 3), padding="same", use_bias=False, name=name)(x)
    return _bn(f"{name}_bn")(x)


def _projection(x, filters):
    """The entry and exit flows' shortcut: a strided 1x1 convolution, normalised (unnamed, as in Keras)."""
    residual = layers.Conv2D(filters, (1, 1), strides=(2, 2), padding="same", use_bias=False)(x)
    return _bn()(residual)


def _downsampling_block(x, block, filters, first_relu=True):
    """Two separable convolutions (``filters`` = their widths), a strided max pooling, plus the
    projected shortcut (blocks 2, 3, 4 and 13)."""
    residual = _projection(x, filters[1])
    if first_relu:
        x = layers.Activation("relu", name=f"block{block}_sepconv1_act")(x)
    x = _sepconv_bn(x, filters[0], f"block{block}_sepconv1")
    x = layers.Activation("relu", name=f"block{block}_sepconv2_act")(x)
    x = _sepconv_bn(x, filters[1], f"block{block}_sepconv2")
    x = layers.MaxPooling2D((3, 3), strides=(2, 2), padding="same", name=f"block{block}_pool")(x)
    return layers.add([x, residual])


def Xception(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
             classifier_activation="softmax", name="xception"):
    """Xception: 36 convolutions (34 of them separable), 22.9 M parameters, 299x299 inputs by default."""
    _common.check_arguments(weights, include_top, classes, pooling, name)
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=299, min_size=71,
                                                    data_format=backend.image_data_format(),
                                                    require_flatten=include_top, weights=weights)
    img_input = _common.image_input(input_tensor, input_shape)
    x = layers.Conv2D(32, (3, 3), strides=(2, 2), use_bias=False, name="block1_conv1")(img_input)
    x = _bn("block1_conv1_bn")(x)
    x = layers.Activation("relu", name="block1_conv1_act")(x)
    x = layers.Conv2D(64, (3, 3), use_bias=False, name="block1_conv2")(x)
    x = _bn("block1_conv2_bn")(x)
    x = layers.Activation("relu", name="block1_conv2_act")(x)
    # Keras's block 2 has no ReLU before its first separable convolution (block 1 ends with one).
    x = _downsampling_block(x, 2, (128, 128), first_relu=False)
    x = _downsampling_block(x, 3, (256, 256))
    x = _downsampling_block(x, 4, (728, 728))
    for block in range(5, 13):
        residual = x
        for conv in (1, 2, 3):
            x = layers.Activation("relu", name=f"block{block}_sepconv{conv}_act")(x)
            x = _sepconv_bn(x, 728, f"block{block}_sepconv{conv}")
        x = layers.add([x, residual])
    x = _downsampling_block(x, 13, (728, 1024))
    x = _sepconv_bn(x, 1536, "block14_sepconv1")
    x = layers.Activation("relu", name="block14_sepconv1_act")(x)
    x = _sepconv_bn(x, 2048, "block14_sepconv2")
    x = layers.Activation("relu", name="block14_sepconv2_act")(x)
    x = _common.head(x, include_top, pooling, classes, classifier_activation, weights)
    model = _common.functional(input_tensor, img_input, x, name)
    return _common.load_weights(model, weights, include_top, WEIGHTS_FILES, BASE_WEIGHTS_PATH)


def preprocess_input(x, data_format=None):
    """Images in 0..255 as Xception expects them: scaled to [-1, 1] ("tf")."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")
