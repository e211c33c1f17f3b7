"""Pre-built ImageNet models, as ``keras.applications``: the same builders, arguments, layer
names, shapes and parameter counts as Keras's, so that Keras's weight files load into them.

``weights=None`` (random initialisation), a path to a Keras weights file, or ``"imagenet"``:
Keras's file, from Keras's URL, kept in Keras's cache (``~/.keras/models``, ``$KERAS_HOME``) and
checked against Keras's hash; a file Keras downloaded before is used offline, and a missing one
raises an error that names the file, the URL and where to put it.  Each family's module has its
``preprocess_input`` and ``decode_predictions`` (the ImageNet class index ships with fastconv).
"""
from fastconv.keras.applications import (
    densenet,
    efficientnet,
    imagenet_utils,
    inception_resnet_v2,
    inception_v3,
    mobilenet_v2,
    resnet,
    resnet50,
    resnet_v2,
    vgg16,
    vgg19,
    xception,
)
from fastconv.keras.applications.densenet import DenseNet121, DenseNet169, DenseNet201
from fastconv.keras.applications.efficientnet import (
    EfficientNetB0,
    EfficientNetB1,
    EfficientNetB2,
    EfficientNetB3,
    EfficientNetB4,
    EfficientNetB5,
    EfficientNetB6,
    EfficientNetB7,
)
from fastconv.keras.applications.inception_resnet_v2 import InceptionResNetV2
from fastconv.keras.applications.inception_v3 import InceptionV3
from fastconv.keras.applications.mobilenet_v2 import MobileNetV2
from fastconv.keras.applications.resnet import ResNet50, ResNet101, ResNet152
from fastconv.keras.applications.resnet_v2 import ResNet50V2, ResNet101V2, ResNet152V2
from fastconv.keras.applications.vgg16 import VGG16
from fastconv.keras.applications.vgg19 import VGG19
from fastconv.keras.applications.xception import Xception

# Every builder, by Keras's name.
MODELS = {f.__name__: f for f in (
    DenseNet121, DenseNet169, DenseNet201, EfficientNetB0, EfficientNetB1, EfficientNetB2, EfficientNetB3,
    EfficientNetB4, EfficientNetB5, EfficientNetB6, EfficientNetB7, InceptionResNetV2, InceptionV3, MobileNetV2,
    ResNet50, ResNet101, ResNet152, ResNet50V2, ResNet101V2, ResNet152V2, VGG16, VGG19, Xception)}

__all__ = sorted(MODELS) + ["densenet", "efficientnet", "imagenet_utils", "inception_resnet_v2", "inception_v3",
                            "mobilenet_v2", "resnet", "resnet50", "resnet_v2", "vgg16", "vgg19", "xception"]
