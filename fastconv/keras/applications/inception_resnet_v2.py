"""InceptionResNetV2 (Szegedy et al., 2016), as ``keras.applications.inception_resnet_v2``:
inception branches whose concatenation, projected back to the input's width by a 1x1
convolution, is added to the input as a scaled residual (``CustomScaleLayer``: x + scale * up,
which keeps the sum of many residuals from growing); inputs scaled to [-1, 1]."""
from fastconv.keras import backend, layers
from fastconv.keras.applications import _common, imagenet_utils
from fastconv.keras.applications.imagenet_utils import decode_predictions  # noqa: F401
from fastconv.keras.layers.base import Layer

__all__ = ["CustomScaleLayer", "InceptionResNetV2", "decode_predictions", "preprocess_input"]

BASE_WEIGHTS_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/inception_resnet_v2/"
WEIGHTS_FILES = {True: ("inception_resnet_v2_weights_tf_dim_ordering_tf_kernels.h5",
                        "e693bd0210a403b3192acc6073ad2e96"),
                 False: ("inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
                         "d19885ff4a710c122648d3b5c3b684e4")}
BLOCK_TYPES = ("block35", "block17", "block8")


class CustomScaleLayer(Layer):
    """``[x, up] -> x + scale * up``, Keras's layer of the same name (no weights)."""

    _multiple_inputs = True

    def __init__(self, scale, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def compute_output_shape(self, input_shapes):
        if not isinstance(input_shapes, (list, tuple)) or len(input_shapes) != 2 \
                or tuple(input_shapes[0]) != tuple(input_shapes[1]):
            raise ValueError(f'CustomScaleLayer "{self.name}" takes a list of two tensors of the same shape. '
                             f"Received: input_shape={input_shapes}")
        return tuple(input_shapes[0])

    def call(self, inputs, training=False):
        x, up = inputs
        return x + up * self.scale

    def forward(self, inputs, training=False):
        return self.call(inputs), None

    def backward(self, cache, grad, need_input_grad=True):
        return [grad, grad * self.scale], {}

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def conv2d_bn(x, filters, kernel_size, strides=1, padding="same", activation="relu", use_bias=False, name=None):
    """Conv2D; without bias it is followed by a BatchNormalization without scale; then ``activation``."""
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=use_bias, name=name)(x)
    if not use_bias:
        x = layers.BatchNormalization(axis=_common.channel_axis(), scale=False,
                                      name=None if name is None else f"{name}_bn")(x)
    if activation is not None:
        x = layers.Activation(activation, name=None if name is None else f"{name}_ac")(x)
    return x


def inception_resnet_block(x, scale, block_type, block_idx, activation="relu"):
    """One residual inception block: "block35" (35x35 grid), "block17" (17x17) or "block8" (8x8)."""
    if block_type == "block35":
        branch_0 = conv2d_bn(x, 32, 1)
        branch_1 = conv2d_bn(conv2d_bn(x, 32, 1), 32, 3)
        branch_2 = conv2d_bn(conv2d_bn(conv2d_bn(x, 32, 1), 48, 3), 64, 3)
        branches = [branch_0, branch_1, branch_2]
    elif block_type == "block17":
        branch_0 = conv2d_bn(x, 192, 1)
        branch_1 = conv2d_bn(conv2d_bn(conv2d_bn(x, 128, 1), 160, [1, 7]), 192, [7, 1])
        branches = [branch_0, branch_1]
    elif block_type == "block8":
        branch_0 = conv2d_bn(x, 192, 1)
        branch_1 = conv2d_bn(conv2d_bn(conv2d_bn(x, 192, 1), 224, [1, 3]), 256, [3, 1])
        branches = [branch_0, branch_1]
    else:
        raise ValueError('Unknown Inception-ResNet block type. Expects "block35", "block17" or "block8", but got: '
                         f"{block_type}")
    block_name = f"{block_type}_{block_idx}"
    axis = _common.channel_axis()
    mixed = layers.Concatenate(axis=axis, name=f"{block_name}_mixed")(branches)
    up = conv2d_bn(mixed, x.shape[axis], 1, activation=None, use_bias=True, name=f"{block_name}_conv")
    x = CustomScaleLayer(scale)([x, up])
    if activation is not None:
        x = layers.Activation(activation, name=f"{block_name}_ac")(x)
    return x


def InceptionResNetV2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                      classes=1000, classifier_activation="softmax", name="inception_resnet_v2"):
    """InceptionResNetV2: 10 block35, 20 block17 and 10 block8 residual blocks, 55.9 M parameters,
    299x299 inputs by default."""
    _common.check_arguments(weights, include_top, classes, pooling, name)
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=299, min_size=75,
                                                    data_format=backend.image_data_format(),
                                                    require_flatten=include_top, weights=weights)
    img_input = _common.image_input(input_tensor, input_shape)
    axis = _common.channel_axis()
    x = conv2d_bn(img_input, 32, 3, strides=2, padding="valid")
    x = conv2d_bn(x, 32, 3, padding="valid")
    x = conv2d_bn(x, 64, 3)
    x = layers.MaxPooling2D(3, strides=2)(x)
    x = conv2d_bn(x, 80, 1, padding="valid")
    x = conv2d_bn(x, 192, 3, padding="valid")
    x = layers.MaxPooling2D(3, strides=2)(x)
    # mixed_5b: Inception-A.
    branch_0 = conv2d_bn(x, 96, 1)
    branch_1 = conv2d_bn(conv2d_bn(x, 48, 1), 64, 5)
    branch_2 = conv2d_bn(conv2d_bn(conv2d_bn(x, 64, 1), 96, 3), 96, 3)
    branch_pool = conv2d_bn(layers.AveragePooling2D(3, strides=1, padding="same")(x), 64, 1)
    x = layers.Concatenate(axis=axis, name="mixed_5b")([branch_0, branch_1, branch_2, branch_pool])
    for block_idx in range(1, 11):
        x = inception_resnet_block(x, scale=0.17, block_type="block35", block_idx=block_idx)
    # mixed_6a: Reduction-A, 35x35 -> 17x17.
    branch_0 = conv2d_bn(x, 384, 3, strides=2, padding="valid")
    branch_1 = conv2d_bn(conv2d_bn(conv2d_bn(x, 256, 1), 256, 3), 384, 3, strides=2, padding="valid")
    branch_pool = layers.MaxPooling2D(3, strides=2, padding="valid")(x)
    x = layers.Concatenate(axis=axis, name="mixed_6a")([branch_0, branch_1, branch_pool])
    for block_idx in range(1, 21):
        x = inception_resnet_block(x, scale=0.1, block_type="block17", block_idx=block_idx)
    # mixed_7a: Reduction-B, 17x17 -> 8x8.
    branch_0 = conv2d_bn(conv2d_bn(x, 256, 1), 384, 3, strides=2, padding="valid")
    branch_1 = conv2d_bn(conv2d_bn(x, 256, 1), 288, 3, strides=2, padding="valid")
    branch_2 = conv2d_bn(conv2d_bn(conv2d_bn(x, 256, 1), 288, 3), 320, 3, strides=2, padding="valid")
    branch_pool = layers.MaxPooling2D(3, strides=2, padding="valid")(x)
    x = layers.Concatenate(axis=axis, name="mixed_7a")([branch_0, branch_1, branch_2, branch_pool])
    for block_idx in range(1, 10):
        x = inception_resnet_block(x, scale=0.2, block_type="block8", block_idx=block_idx)
    x = inception_resnet_block(x, scale=1.0, activation=None, block_type="block8", block_idx=10)
    x = conv2d_bn(x, 1536, 1, name="conv_7b")
    x = _common.head(x, include_top, pooling, classes, classifier_activation, weights)
    model = _common.functional(input_tensor, img_input, x, name)
    return _common.load_weights(model, weights, include_top, WEIGHTS_FILES, BASE_WEIGHTS_PATH)


def preprocess_input(x, data_format=None):
    """Images in 0..255 as InceptionResNetV2 expects them: scaled to [-1, 1] ("tf")."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")
