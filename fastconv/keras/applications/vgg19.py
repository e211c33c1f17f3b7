"""VGG19, as ``keras.applications.vgg19``: VGG16's blocks with 2, 2, 4, 4, 4 convolutions."""
from fastconv.keras.applications.imagenet_utils import decode_predictions  # noqa: F401
from fastconv.keras.applications.vgg16 import build_vgg, preprocess_input  # noqa: F401

__all__ = ["VGG19", "decode_predictions", "preprocess_input"]


def VGG19(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
          classifier_activation="softmax", name="vgg19"):
    """VGG19 (Simonyan & Zisserman, 2014): 16 convolutions and 3 Dense layers, 144 M parameters."""
    files = {True: ("vgg19/vgg19_weights_tf_dim_ordering_tf_kernels.h5", "cbe5617147190e668d6c5d5026f83318"),
             False: ("vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", "253f8cb515780f3b799900260a226db6")}
    return build_vgg((2, 2, 4, 4, 4), files, include_top, weights, input_tensor, input_shape, pooling, classes,
                     classifier_activation, name)
