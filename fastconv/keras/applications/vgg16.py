"""VGG16, as ``keras.applications.vgg16``: five blocks of 3x3 convolutions (2, 2, 3, 3, 3 of
them) each closed by a 2x2 max pooling, then two Dense(4096) and the classifier."""
from fastconv.keras import backend, layers
from fastconv.keras.applications import _common, imagenet_utils
from fastconv.keras.applications.imagenet_utils import decode_predictions  # noqa: F401

__all__ = ["VGG16", "decode_predictions", "preprocess_input"]

BASE_WEIGHTS_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/"
BLOCK_FILTERS = (64, 128, 256, 512, 512)


def build_vgg(convs_per_block, weights_files, include_top, weights, input_tensor, input_shape, pooling, classes,
              classifier_activation, name):
    """A VGG network with ``convs_per_block[i]`` convolutions in block i (VGG16 and VGG19)."""
    _common.check_arguments(weights, include_top, classes, pooling, name)
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=224, min_size=32,
                                                    data_format=backend.image_data_format(),
                                                    require_flatten=include_top, weights=weights)
    img_input = _common.image_input(input_tensor, input_shape)
    x = img_input
    for block, (filters, convs) in enumerate(zip(BLOCK_FILTERS, convs_per_block), start=1):
        for conv in range(1, convs + 1):
            x = layers.Conv2D(filters, (3, 3), activation="relu", padding="same", name=f"block{block}_conv{conv}")(x)
        x = layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{block}_pool")(x)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(4096, activation="relu", name="fc1")(x)
        x = layers.Dense(4096, activation="relu", name="fc2")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = _common.head(x, False, pooling, classes, classifier_activation, weights)
    model = _common.functional(input_tensor, img_input, x, name)
    return _common.load_weights(model, weights, include_top, weights_files, BASE_WEIGHTS_PATH)


def VGG16(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
          classifier_activation="softmax", name="vgg16"):
    """VGG16 (Simonyan & Zisserman, 2014): 13 convolutions and 3 Dense layers, 138 M parameters."""
    files = {True: ("vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5", "64373286793e3c8b2b4e3219cbf3544b"),
             False: ("vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "6d6bbae143d832006294945121d1f1fc")}
    return build_vgg((2, 2, 3, 3, 3), files, include_top, weights, input_tensor, input_shape, pooling, classes,
                     classifier_activation, name)


def preprocess_input(x, data_format=None):
    """Images in 0..255 (RGB) as VGG expects them: BGR, ImageNet's mean subtracted ("caffe")."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="caffe")
