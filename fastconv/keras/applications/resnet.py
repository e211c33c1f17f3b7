"""ResNet50, ResNet101 and ResNet152 (He et al., 2015), as ``keras.applications.resnet``, and
the builder they share with ResNetV2 (``resnet_v2``).

A residual block learns F(x) = H(x) - x, the difference between the mapping it should produce
and its input, and outputs F(x) + x: an identity is then the easy case (F = 0), and the gradient
reaches the early layers through the shortcuts unchanged.  ResNet (v1) puts BatchNormalization
and ReLU after each convolution and after the addition; ResNetV2 ("pre-activation") puts them
before the convolutions, leaving the shortcut path free of any nonlinearity.
"""
from fastconv.keras import backend, layers
from fastconv.keras.applications import _common, imagenet_utils
from fastconv.keras.applications.imagenet_utils import decode_predictions  # noqa: F401

__all__ = ["ResNet101", "ResNet152", "ResNet50", "decode_predictions", "preprocess_input"]

BASE_WEIGHTS_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
# Keras's md5 of each weights file: (with the top, without it).
WEIGHTS_HASHES = {
    "resnet50": ("2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626"),
    "resnet101": ("f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21"),
    "resnet152": ("100835be76be38e30d865e96f2aaae62", "ee4c566cf9a93f14d82f913c2dc6dd0c"),
    "resnet50v2": ("3ef43a0b657b3be2300d5770ece849e0", "fac2f116257151a9d068a22e544a4917"),
    "resnet101v2": ("6343647c601c52e1368623803854d971", "c0ed64b8031c3730f411d2eb4eea35b5"),
    "resnet152v2": ("a49b44d1979771252814e80f8ec446f9", "ed17cf2e0169df9d443503ef94b23b33"),
}
BN_EPSILON = 1.001e-5


def _bn(name):
    return layers.BatchNormalization(axis=_common.channel_axis(), epsilon=BN_EPSILON, name=name)


def ResNet(stack_fn, preact, use_bias, include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
           pooling=None, classes=1000, classifier_activation="softmax", name="resnet", weights_name=None):
    """A ResNet: the 7x7/2 stem, a 3x3/2 max pooling, ``stack_fn``'s residual stacks and the head;
    ``preact`` for ResNetV2 (normalisation before the convolutions)."""
    _common.check_arguments(weights, include_top, classes, pooling, name)
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=224, min_size=32,
                                                    data_format=backend.image_data_format(),
                                                    require_flatten=include_top, weights=weights)
    img_input = _common.image_input(input_tensor, input_shape)
    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)), name="conv1_pad")(img_input)
    x = layers.Conv2D(64, 7, strides=2, use_bias=use_bias, name="conv1_conv")(x)
    if not preact:
        x = _bn("conv1_bn")(x)
        x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    x = stack_fn(x)
    if preact:
        x = _bn("post_bn")(x)
        x = layers.Activation("relu", name="post_relu")(x)
    x = _common.head(x, include_top, pooling, classes, classifier_activation, weights,
                     pool_names=("avg_pool", "max_pool"))
    model = _common.functional(input_tensor, img_input, x, name)
    if weights == "imagenet" and weights_name not in WEIGHTS_HASHES:
        raise ValueError(f"{name}: no ImageNet weights are published for weights_name={weights_name!r}")
    files = None
    if weights == "imagenet":
        top_hash, notop_hash = WEIGHTS_HASHES[weights_name]
        files = {True: (f"{weights_name}_weights_tf_dim_ordering_tf_kernels.h5", top_hash),
                 False: (f"{weights_name}_weights_tf_dim_ordering_tf_kernels_notop.h5", notop_hash)}
    return _common.load_weights(model, weights, include_top, files, BASE_WEIGHTS_PATH)


def residual_block_v1(x, filters, kernel_size=3, stride=1, conv_shortcut=True, name=None):
    """The bottleneck block of ResNet v1: 1x1 (``filters``), kernel_size x kernel_size, 1x1
    (4 ``filters``) convolutions, each normalised, added to the shortcut, then ReLU."""
    if conv_shortcut:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(x)
        shortcut = _bn(f"{name}_0_bn")(shortcut)
    else:
        shortcut = x
    x = layers.Conv2D(filters, 1, strides=stride, name=f"{name}_1_conv")(x)
    x = _bn(f"{name}_1_bn")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = layers.Conv2D(filters, kernel_size, padding="SAME", name=f"{name}_2_conv")(x)
    x = _bn(f"{name}_2_bn")(x)
    x = layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    x = _bn(f"{name}_3_bn")(x)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def stack_residual_blocks_v1(x, filters, blocks, stride1=2, name=None):
    """``blocks`` v1 blocks; the first has a projection shortcut and stride ``stride1``."""
    x = residual_block_v1(x, filters, stride=stride1, name=f"{name}_block1")
    for i in range(2, blocks + 1):
        x = residual_block_v1(x, filters, conv_shortcut=False, name=f"{name}_block{i}")
    return x


def residual_block_v2(x, filters, kernel_size=3, stride=1, conv_shortcut=False, name=None):
    """The pre-activation bottleneck block of ResNetV2: BN and ReLU first, then the three
    convolutions; the shortcut is a projection, the input, or a 1x1/stride max pooling of it."""
    preact = _bn(f"{name}_preact_bn")(x)
    preact = layers.Activation("relu", name=f"{name}_preact_relu")(preact)
    if conv_shortcut:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(preact)
    else:
        shortcut = layers.MaxPooling2D(1, strides=stride)(x) if stride > 1 else x
    x = layers.Conv2D(filters, 1, strides=1, use_bias=False, name=f"{name}_1_conv")(preact)
    x = _bn(f"{name}_1_bn")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name=f"{name}_2_pad")(x)
    x = layers.Conv2D(filters, kernel_size, strides=stride, use_bias=False, name=f"{name}_2_conv")(x)
    x = _bn(f"{name}_2_bn")(x)
    x = layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    return layers.Add(name=f"{name}_out")([shortcut, x])


def stack_residual_blocks_v2(x, filters, blocks, stride1=2, name=None):
    """``blocks`` v2 blocks: a projection shortcut in the first, the stride ``stride1`` in the last."""
    x = residual_block_v2(x, filters, conv_shortcut=True, name=f"{name}_block1")
    for i in range(2, blocks):
        x = residual_block_v2(x, filters, name=f"{name}_block{i}")
    return residual_block_v2(x, filters, stride=stride1, name=f"{name}_block{blocks}")


def _v1_stacks(blocks):
    def stack_fn(x):
        for i, (filters, count) in enumerate(zip((64, 128, 256, 512), blocks)):
            x = stack_residual_blocks_v1(x, filters, count, stride1=1 if i == 0 else 2, name=f"conv{i + 2}")
        return x
    return stack_fn


def ResNet50(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
             classifier_activation="softmax", name="resnet50"):
    """ResNet50: stacks of 3, 4, 6 and 3 bottleneck blocks, 25.6 M parameters."""
    return ResNet(_v1_stacks((3, 4, 6, 3)), False, True, include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name=name, weights_name="resnet50")


def ResNet101(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
              classifier_activation="softmax", name="resnet101"):
    """ResNet101: stacks of 3, 4, 23 and 3 bottleneck blocks, 44.7 M parameters."""
    return ResNet(_v1_stacks((3, 4, 23, 3)), False, True, include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name=name, weights_name="resnet101")


def ResNet152(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
              classifier_activation="softmax", name="resnet152"):
    """ResNet152: stacks of 3, 8, 36 and 3 bottleneck blocks, 60.4 M parameters."""
    return ResNet(_v1_stacks((3, 8, 36, 3)), False, True, include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name=name, weights_name="resnet152")


def preprocess_input(x, data_format=None):
    """Images in 0..255 (RGB) as ResNet expects them: BGR, ImageNet's mean subtracted ("caffe")."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="caffe")
