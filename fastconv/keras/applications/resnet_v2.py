"""ResNet50V2, ResNet101V2 and ResNet152V2 (He et al., 2016, "Identity Mappings in Deep Residual
Networks"), as ``keras.applications.resnet_v2``: pre-activation blocks (see ``resnet``), inputs
scaled to [-1, 1]."""
from fastconv.keras.applications import imagenet_utils
from fastconv.keras.applications.imagenet_utils import decode_predictions  # noqa: F401
from fastconv.keras.applications.resnet import ResNet, stack_residual_blocks_v2

__all__ = ["ResNet101V2", "ResNet152V2", "ResNet50V2", "decode_predictions", "preprocess_input"]


def _v2_stacks(blocks):
    def stack_fn(x):
        for i, (filters, count) in enumerate(zip((64, 128, 256, 512), blocks)):
            x = stack_residual_blocks_v2(x, filters, count, stride1=1 if i == 3 else 2, name=f"conv{i + 2}")
        return x
    return stack_fn


def ResNet50V2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
               classifier_activation="softmax", name="resnet50v2"):
    """ResNet50V2: stacks of 3, 4, 6 and 3 pre-activation blocks, 25.6 M parameters."""
    return ResNet(_v2_stacks((3, 4, 6, 3)), True, True, include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name=name, weights_name="resnet50v2")


def ResNet101V2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="resnet101v2"):
    """ResNet101V2: stacks of 3, 4, 23 and 3 pre-activation blocks, 44.7 M parameters."""
    return ResNet(_v2_stacks((3, 4, 23, 3)), True, True, include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name=name, weights_name="resnet101v2")


def ResNet152V2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="resnet152v2"):
    """ResNet152V2: stacks of 3, 8, 36 and 3 pre-activation blocks, 60.4 M parameters."""
    return ResNet(_v2_stacks((3, 8, 36, 3)), True, True, include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name=name, weights_name="resnet152v2")


def preprocess_input(x, data_format=None):
    """Images in 0..255 as ResNetV2 expects them: scaled to [-1, 1] ("tf")."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")
