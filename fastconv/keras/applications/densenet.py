"""DenseNet121, DenseNet169 and DenseNet201 (Huang et al., 2017), as ``keras.applications.densenet``:
dense blocks, where each layer's 32 new feature maps are concatenated to all the maps before
them, and transition blocks (1x1 convolution halving the width, 2x2 average pooling) between
them; inputs normalised as torchvision does ("torch")."""
from fastconv.keras import backend, layers
from fastconv.keras.applications import _common, imagenet_utils
from fastconv.keras.applications.imagenet_utils import decode_predictions  # noqa: F401

__all__ = ["DenseNet121", "DenseNet169", "DenseNet201", "decode_predictions", "preprocess_input"]

BASE_WEIGHTS_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/densenet/"
# blocks per dense block -> (model, md5 with the top, md5 without).
WEIGHTS_HASHES = {
    (6, 12, 24, 16): ("densenet121", "9d60b8095a5708f2dcce2bca79d332c7", "30ee3e1110167f948a6b9946edeeb738"),
    (6, 12, 32, 32): ("densenet169", "d699b8f76981ab1b30698df4c175e90b", "b8c4d4c20dd625c148057b9ff1c1176b"),
    (6, 12, 48, 32): ("densenet201", "1ceb130c1ea1b78c3bf6114dbdfd8807", "c13680b51ded0fb44dff2d8f86ac8bb1"),
}
BN_EPSILON = 1.001e-5
GROWTH_RATE = 32


def _bn(name):
    return layers.BatchNormalization(axis=_common.channel_axis(), epsilon=BN_EPSILON, name=name)


def conv_block(x, growth_rate, name):
    """BN-ReLU-1x1 conv (4 growth_rate) - BN-ReLU-3x3 conv (growth_rate), concatenated to ``x``."""
    x1 = _bn(f"{name}_0_bn")(x)
    x1 = layers.Activation("relu", name=f"{name}_0_relu")(x1)
    x1 = layers.Conv2D(4 * growth_rate, 1, use_bias=False, name=f"{name}_1_conv")(x1)
    x1 = _bn(f"{name}_1_bn")(x1)
    x1 = layers.Activation("relu", name=f"{name}_1_relu")(x1)
    x1 = layers.Conv2D(growth_rate, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(x1)
    return layers.Concatenate(axis=_common.channel_axis(), name=f"{name}_concat")([x, x1])


def dense_block(x, blocks, name):
    for i in range(blocks):
        x = conv_block(x, GROWTH_RATE, name=f"{name}_block{i + 1}")
    return x


def transition_block(x, reduction, name):
    x = _bn(f"{name}_bn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    x = layers.Conv2D(int(x.shape[_common.channel_axis()] * reduction), 1, use_bias=False, name=f"{name}_conv")(x)
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


def DenseNet(blocks, include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", name="densenet"):
    """A DenseNet with ``blocks[i]`` conv blocks in dense block i."""
    if backend.image_data_format() == "channels_first":
        raise ValueError("DenseNet does not support the `channels_first` image data format. Switch to "
                         "`channels_last` by editing your local config file at ~/.keras/keras.json")
    _common.check_arguments(weights, include_top, classes, pooling, name)
    blocks = tuple(blocks)
    if weights == "imagenet" and blocks not in WEIGHTS_HASHES:
        raise ValueError(f"{name}: no ImageNet weights are published for blocks={list(blocks)}")
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=224, min_size=32,
                                                    data_format=backend.image_data_format(),
                                                    require_flatten=include_top, weights=weights)
    img_input = _common.image_input(input_tensor, input_shape)
    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)))(img_input)
    x = layers.Conv2D(64, 7, strides=2, use_bias=False, name="conv1_conv")(x)
    x = _bn("conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)))(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for i, count in enumerate(blocks):
        x = dense_block(x, count, name=f"conv{i + 2}")
        if i < len(blocks) - 1:
            x = transition_block(x, 0.5, name=f"pool{i + 2}")
    x = _bn("bn")(x)
    x = layers.Activation("relu", name="relu")(x)
    x = _common.head(x, include_top, pooling, classes, classifier_activation, weights,
                     pool_names=("avg_pool", "max_pool"))
    model = _common.functional(input_tensor, img_input, x, name)
    files = None
    if weights == "imagenet":
        stem, top_hash, notop_hash = WEIGHTS_HASHES[blocks]
        files = {True: (f"{stem}_weights_tf_dim_ordering_tf_kernels.h5", top_hash),
                 False: (f"{stem}_weights_tf_dim_ordering_tf_kernels_notop.h5", notop_hash)}
    return _common.load_weights(model, weights, include_top, files, BASE_WEIGHTS_PATH)


def DenseNet121(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="densenet121"):
    """DenseNet121: dense blocks of 6, 12, 24 and 16 layers, 8.1 M parameters."""
    return DenseNet([6, 12, 24, 16], include_top, weights, input_tensor, input_shape, pooling, classes,
                    classifier_activation, name=name)


def DenseNet169(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="densenet169"):
    """DenseNet169: dense blocks of 6, 12, 32 and 32 layers, 14.3 M parameters."""
    return DenseNet([6, 12, 32, 32], include_top, weights, input_tensor, input_shape, pooling, classes,
                    classifier_activation, name=name)


def DenseNet201(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="densenet201"):
    """DenseNet201: dense blocks of 6, 12, 48 and 32 layers, 20.2 M parameters."""
    return DenseNet([6, 12, 48, 32], include_top, weights, input_tensor, input_shape, pooling, classes,
                    classifier_activation, name=name)


def preprocess_input(x, data_format=None):
    """Images in 0..255 as DenseNet expects them: scaled to [0, 1], normalised by ImageNet's
    per-channel means and deviations ("torch")."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="torch")
