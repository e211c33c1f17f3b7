"""What every ImageNet application shares, as Keras's ``keras.applications.imagenet_utils``:
``preprocess_input`` (the "caffe", "tf" and "torch" modes), ``decode_predictions`` (with the
class index shipped inside fastconv: nothing is downloaded), the input-shape rules, the padding
of strided convolutions and the weights files.

Unlike Keras, ``preprocess_input`` never modifies its argument (Keras divides a float NumPy
array in place); the values it returns are Keras's.
"""
import json
import os

import numpy as np

from fastconv.keras import activations, backend
from fastconv.keras.file_utils import get_file
from fastconv.keras.layers.base import KerasTensor

# The ImageNet class index, byte for byte Keras's imagenet_class_index.json (md5
# c2c37ea517e94d9795004a39431a14cb): index -> [WordNet id, first lemma].
CLASS_INDEX_PATH = os.path.join(os.path.dirname(__file__), "imagenet_class_index.json")
_class_index = None

PREPROCESS_MODES = ("caffe", "tf", "torch")
# Per-channel statistics of ImageNet, as Keras: caffe's BGR means (pixels 0..255), torch's RGB
# means and standard deviations (pixels 0..1).
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)

# Where Keras keeps its application weights.
WEIGHTS_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"


def preprocess_input(x, data_format=None, mode="caffe"):
    """A batch of images (or one image) of pixels in 0..255 prepared as a model of ``mode``
    expects: "caffe" flips RGB to BGR and subtracts ImageNet's mean per channel; "tf" scales to
    [-1, 1]; "torch" scales to [0, 1] and normalises with ImageNet's means and deviations."""
    if mode not in PREPROCESS_MODES:
        raise ValueError(f"Expected mode to be one of `caffe`, `tf` or `torch`. Received: mode={mode}")
    if data_format is None:
        data_format = backend.image_data_format()
    elif data_format not in ("channels_first", "channels_last"):
        raise ValueError("Expected data_format to be one of `channels_first` or `channels_last`. "
                         f"Received: data_format={data_format}")
    if isinstance(x, KerasTensor):
        return _preprocess_symbolic(x, data_format, mode)
    x = np.array(x, copy=True)
    if x.dtype.kind not in "f":
        x = x.astype(backend.floatx())
    if x.ndim not in (3, 4):
        raise ValueError(f"preprocess_input expects one image (3-D) or a batch (4-D); received shape {x.shape}")
    channel_axis = -1 if data_format == "channels_last" else (0 if x.ndim == 3 else 1)
    if x.shape[channel_axis] != 3:
        raise ValueError(f"preprocess_input expects 3 channels on axis {channel_axis} ({data_format}); received "
                         f"shape {x.shape}")
    if mode == "tf":
        x /= 127.5
        x -= 1.0
        return x
    if mode == "torch":
        x /= 255.0
        mean, std = TORCH_MEAN, TORCH_STD
    else:
        x = np.flip(x, axis=channel_axis).copy()
        mean, std = CAFFE_BGR_MEAN, None
    shape = [1] * x.ndim
    shape[channel_axis] = 3
    x -= np.asarray(mean, dtype=x.dtype).reshape(shape)
    if std is not None:
        x /= np.asarray(std, dtype=x.dtype).reshape(shape)
    return x


def _preprocess_symbolic(x, data_format, mode):
    """preprocess_input inside a model (``x = preprocess_input(inputs)``, as TensorFlow's transfer
    learning tutorial writes it): graph nodes of the same arithmetic.  Caffe's channel flip has no
    graph node in fastconv.keras, so that mode is refused there."""
    if mode == "caffe":
        raise TypeError("preprocess_input: mode 'caffe' (VGG, ResNet) flips the channels, which fastconv.keras "
                        "cannot record in a model; apply it to the images before the model (or in a tf.data map)")
    if mode == "tf":
        return x / 127.5 - 1.0
    if len(x.shape) not in (3, 4):
        raise ValueError(f"preprocess_input expects one image (3-D) or a batch (4-D); received shape {x.shape}")
    channel_axis = -1 if data_format == "channels_last" else (0 if len(x.shape) == 3 else 1)
    shape = [1] * len(x.shape)
    shape[channel_axis] = 3
    x = x / 255.0
    x = x - np.asarray(TORCH_MEAN, dtype=np.float32).reshape(shape)
    return x / np.asarray(TORCH_STD, dtype=np.float32).reshape(shape)


def _load_class_index():
    global _class_index
    if _class_index is None:
        with open(CLASS_INDEX_PATH, encoding="utf-8") as f:
            _class_index = json.load(f)
    return _class_index


def decode_predictions(preds, top=5):
    """For each row of ``preds`` (samples, 1000), the ``top`` classes as
    ``(wordnet_id, class_name, score)`` tuples, the most likely first."""
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != 1000:
        raise ValueError("`decode_predictions` expects a batch of predictions (i.e. a 2D array of shape "
                         f"(samples, 1000)). Received array with shape: {preds.shape}")
    if not isinstance(top, (int, np.integer)) or isinstance(top, bool) or not 1 <= top <= 1000:
        raise ValueError(f"decode_predictions: top must be an integer in [1, 1000]. Received: top={top!r}")
    index = _load_class_index()
    results = []
    for pred in preds:
        top_indices = pred.argsort()[-top:][::-1]
        result = [tuple(index[str(i)]) + (pred[i],) for i in top_indices]
        result.sort(key=lambda r: r[2], reverse=True)
        results.append(result)
    return results


def obtain_input_shape(input_shape, default_size, min_size, data_format, require_flatten, weights=None):
    """The model's input shape (height, width, channels), validated as Keras validates it."""
    if weights != "imagenet" and input_shape and len(input_shape) == 3:
        channels = input_shape[0] if data_format == "channels_first" else input_shape[-1]
        default_shape = ((channels, default_size, default_size) if data_format == "channels_first"
                         else (default_size, default_size, channels))
    else:
        default_shape = (3, default_size, default_size) if data_format == "channels_first" \
            else (default_size, default_size, 3)
    if weights == "imagenet" and require_flatten:
        if input_shape is not None and tuple(input_shape) != default_shape:
            raise ValueError("When setting `include_top=True` and loading `imagenet` weights, `input_shape` should "
                             f"be {default_shape}.  Received: input_shape={input_shape}")
        return default_shape
    if input_shape:
        input_shape = tuple(input_shape)
        if len(input_shape) != 3:
            raise ValueError("`input_shape` must be a tuple of three integers.")
        channels = input_shape[0] if data_format == "channels_first" else input_shape[-1]
        spatial = input_shape[1:] if data_format == "channels_first" else input_shape[:2]
        if channels != 3 and weights == "imagenet":
            raise ValueError(f"The input must have 3 channels; Received `input_shape={input_shape}`")
        if any(d is not None and d < min_size for d in spatial):
            raise ValueError(f"Input size must be at least {min_size}x{min_size}; Received: "
                             f"input_shape={input_shape}")
    elif require_flatten:
        input_shape = default_shape
    else:
        input_shape = (3, None, None) if data_format == "channels_first" else (None, None, 3)
    if require_flatten and None in input_shape:
        raise ValueError("If `include_top` is True, you should specify a static `input_shape`. "
                         f"Received: input_shape={input_shape}")
    return input_shape


def correct_pad(inputs, kernel_size):
    """The ((top, bottom), (left, right)) zero padding before a strided 'valid' convolution that
    makes it cover the input as 'same' would (Keras's rule, used by MobileNetV2 and EfficientNet)."""
    img_dim = 2 if backend.image_data_format() == "channels_first" else 1
    input_size = inputs.shape[img_dim:img_dim + 2]
    if isinstance(kernel_size, int):
        kernel_size = (kernel_size, kernel_size)
    adjust = (1, 1) if input_size[0] is None else (1 - input_size[0] % 2, 1 - input_size[1] % 2)
    correct = (kernel_size[0] // 2, kernel_size[1] // 2)
    return ((correct[0] - adjust[0], correct[0]), (correct[1] - adjust[1], correct[1]))


def validate_activation(classifier_activation, weights):
    """Pre-trained weights expect the classifier's activation they were trained with."""
    if weights is None:
        return
    fn = activations.get(classifier_activation)
    if fn not in (activations.get("softmax"), activations.get(None)):
        raise ValueError("Only `None` and `softmax` activations are allowed for the `classifier_activation` "
                         "argument when using pretrained weights, with `include_top=True`; Received: "
                         f"classifier_activation={classifier_activation}")


def check_weights_argument(weights, include_top, classes, model_name, classes_for_imagenet=1000):
    """Keras's check of ``weights`` (None, "imagenet" or a file path) against ``classes``."""
    if not (weights in {"imagenet", None} or (isinstance(weights, (str, os.PathLike))
                                             and os.path.exists(weights))):
        raise ValueError("The `weights` argument should be either `None` (random initialization), 'imagenet' "
                         "(pre-training on ImageNet), or the path to the weights file to be loaded.  Received: "
                         f"weights={weights}")
    if weights == "imagenet" and include_top and classes != classes_for_imagenet:
        raise ValueError(f'If using `weights="imagenet"` with `include_top=True`, `classes` should be '
                         f"{classes_for_imagenet}.  Received classes={classes}")


def load_model_weights(model, weights, fname, origin, file_hash):
    """Load ``weights`` into ``model``: a path as given, or for "imagenet" Keras's file
    ``fname`` from ``origin`` through Keras's cache (``~/.keras/models``, or ``$KERAS_HOME``): a
    file Keras downloaded before is used as it is, offline."""
    if weights is None:
        return
    if weights == "imagenet":
        weights = get_file(fname, origin, cache_subdir="models", file_hash=file_hash)
    model.load_weights(weights)
