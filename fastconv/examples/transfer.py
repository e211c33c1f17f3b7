"""Transfer learning on image cells from a Keras Application, as Keras's guide does it: the base
(the network without its classifier, its features averaged over the image) frozen, every cell
passed through it once with ``predict``, a new classifier (dropout and one sigmoid unit) trained
on those features; then the base's last block unfrozen and the whole model fine-tuned with a low
learning rate, the base called with ``training=False`` so that its BatchNormalization layers stay
in inference mode (their statistics, learned on ImageNet, do not move on a small data set).

Shared by the main job (``python -m fastconv.examples.malaria --base NAME``) and
``examples/13_transfer_learning.py``.  The base's weights (:func:`resolve_weights`): ``auto``
(Keras's ImageNet file when it is in Keras's cache, ``$KERAS_HOME/models`` or ``~/.keras/models``,
else random), ``imagenet`` (Keras's file, fetched through Keras's cache), ``none`` (random) or
the path of a Keras weights file; the description returned always says which, and a random base
is called RANDOM: it shows the procedure, never the gain of pre-training.
"""
import dataclasses
import os
import time

import numpy as np

from fastconv.keras import Input, Model, Sequential, optimizers
from fastconv.keras.applications import densenet, efficientnet, mobilenet_v2, resnet, vgg16
from fastconv.keras.callbacks import EarlyStopping
from fastconv.keras.file_utils import keras_home
from fastconv.keras.layers import Dense, Dropout

WEIGHTS_CHOICES = ("auto", "imagenet", "none")   # or a path
HEAD_LEARNING_RATE = 1e-3
FINE_TUNE_LEARNING_RATE = 1e-5   # low: the pre-trained filters are adjusted, not relearned
HEAD_DROPOUT = 0.2


@dataclasses.dataclass(frozen=True)
class BaseSpec:
    """A Keras Application usable as a base: its module (builder and ``preprocess_input``),
    the smallest image side its builder accepts (Keras's ``min_size``), the first layer of its
    last block (unfrozen with everything after it for fine-tuning) and where Keras keeps its
    ImageNet weights without the classifier (``notop_path``, under the module's
    ``BASE_WEIGHTS_PATH``; ``{side}`` is the resolution of MobileNetV2's file)."""
    name: str
    module: object
    builder_name: str
    min_size: int
    first_unfrozen: str
    notop_path: str

    @property
    def builder(self):
        return getattr(self.module, self.builder_name)

    def notop_file(self, side):
        """(file name in Keras's cache, URL) of the ImageNet weights the builder loads at ``side``."""
        # MobileNetV2's files exist for five resolutions; at any other side Keras loads the
        # 224x224 one (and warns): the weights do not depend on the side, only the statistics
        # they were trained with do.
        side = side if side in mobilenet_v2.IMAGENET_SIZES else 224
        url_path = self.notop_path.format(side=side)
        return url_path.rsplit("/", 1)[-1], self.module.BASE_WEIGHTS_PATH + url_path


# The bases whose notop weights Keras publishes, with the file names and minimum sizes of
# fastconv.keras.applications (tests check them against the builders).
BASES = {spec.name: spec for spec in (
    BaseSpec("resnet50", resnet, "ResNet50", 32, "conv5_block3_1_conv",
             "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    BaseSpec("mobilenet_v2", mobilenet_v2, "MobileNetV2", 32, "block_16_expand",
             "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{side}_no_top.h5"),
    BaseSpec("vgg16", vgg16, "VGG16", 32, "block5_conv1", "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    BaseSpec("densenet121", densenet, "DenseNet121", 32, "conv5_block16_0_bn",
             "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    BaseSpec("efficientnetb0", efficientnet, "EfficientNetB0", 32, "block7a_expand_conv", "efficientnetb0_notop.h5"),
)}


def get_spec(name):
    if name not in BASES:
        raise ValueError(f"base must be one of {sorted(BASES)}. Received: base={name!r}")
    return BASES[name]


def check_image_size(spec, side):
    """Refuse cells smaller than the base's builder accepts, naming the base and its minimum."""
    if side < spec.min_size:
        raise ValueError(f"base {spec.name} ({spec.builder_name}) needs images of at least "
                         f"{spec.min_size}x{spec.min_size} pixels, as Keras checks. Received: image_size={side}")


def resolve_weights(spec, choice, side):
    """``(weights, description, pretrained)``: the builder's ``weights`` argument for ``choice``
    (auto, imagenet, none or a file path), a sentence saying which weights these are, and whether
    they are Keras's ImageNet ones (False for random weights and for a file of unknown origin)."""
    fname, url = spec.notop_file(side)
    cache = os.path.join(keras_home(), "models")
    if choice == "auto":
        if not os.path.exists(os.path.join(cache, fname)):
            return None, (f"RANDOM base ({spec.name}), NOT pre-trained: Keras's {fname} is not in {cache} "
                          f"(weights 'auto' takes it only from there; 'imagenet' fetches it, or give a file); "
                          f"the accuracy shows the procedure, not what pre-training gives"), False
        choice = "imagenet"
    if choice == "none":
        return None, (f"RANDOM base ({spec.name}), NOT pre-trained (weights 'none'): the accuracy shows the "
                      f"procedure, not what pre-training gives"), False
    if choice == "imagenet":
        return "imagenet", f"ImageNet {spec.name} base: Keras's {fname} (Keras's cache {cache}, else {url})", True
    if not os.path.isfile(choice):
        raise ValueError(f"base_weights must be auto, imagenet, none or the path of a Keras weights file; no file "
                         f"at {choice!r}")
    return choice, f"{spec.name} base weights from {choice}", False


def build_base(spec, side, weights):
    """The base at ``side`` x ``side`` RGB cells: no classifier, features averaged over the image."""
    check_image_size(spec, side)
    return spec.builder(include_top=False, weights=weights, input_shape=(side, side, 3), pooling="avg")


def preprocess(spec, images):
    """Cells with values in [0, 1] as the base expects them: pixels 0..255 through the
    application's own ``preprocess_input`` (caffe, tf, torch, or the identity for EfficientNet,
    which normalises inside the model).  A new array; ``images`` is not modified."""
    return spec.module.preprocess_input(np.asarray(images, dtype=np.float32) * 255.0)


def build_head(n_features):
    """The new classifier on the base's features: dropout, then one sigmoid unit."""
    head = Sequential([Input((n_features,)), Dropout(HEAD_DROPOUT), Dense(1, activation="sigmoid")])
    head.compile(optimizer=optimizers.Adam(HEAD_LEARNING_RATE), loss="binary_crossentropy", metrics=["accuracy"])
    return head


def unfreeze_top(base, spec):
    """Make the base trainable from ``spec.first_unfrozen`` on (its last block), the layers
    before it frozen; returns the number of layers unfrozen."""
    names = [layer.name for layer in base.layers]
    first = names.index(spec.first_unfrozen)
    base.trainable = True
    for layer in base.layers[:first]:
        layer.trainable = False
    return len(names) - first


def accuracy(probabilities, labels):
    """The fraction of cells whose probability is on the side of 0.5 of their label."""
    return float(np.mean((np.asarray(probabilities).ravel() > 0.5) == np.asarray(labels).ravel()))


def _epochs(history):
    count = len(history["loss"])
    return f"{count} epoch" + ("" if count == 1 else "s")


def _early_stopping(validation, patience):
    if validation is None:
        return []
    return [EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)]


@dataclasses.dataclass
class TransferResult:
    spec: BaseSpec
    weights: object                 # the builder's weights argument
    weights_source: str             # the sentence that says which weights
    pretrained: bool
    base: Model
    head: Model
    model: Model                    # base + head, what fine-tuning trained and --save writes
    x: np.ndarray                   # every cell preprocessed for the base
    features: np.ndarray            # every cell through the frozen base
    extract_seconds: float
    head_history: dict
    head_seconds: float
    frozen_accuracy: float          # the head on the frozen base's features of the test cells
    unfrozen_layers: int
    trainable_params: int
    non_trainable_params: int
    summary: str
    fine_tune_history: dict
    fine_tune_seconds: float
    probabilities: np.ndarray       # the final model's on the test cells (no fine-tuning: the head's)
    accuracy: float                 # the fine-tuned model on the test cells


def transfer_learn(base_name, images, labels, fit_idx, test_idx, *, val_idx=None, base_weights="auto", epochs=20,
                   fine_tune_epochs=1, batch_size=32, patience=5, verbose=0, log=print):
    """The whole procedure on ``images`` (N, side, side, 3) with values in [0, 1] and 0/1
    ``labels``: features of every cell once through the frozen base, the new classifier trained
    on the ``fit_idx`` cells for at most ``epochs`` (early stopping on the ``val_idx`` cells'
    loss, best weights kept, when ``val_idx`` is given), then ``fine_tune_epochs`` of the whole
    model with the base's last block unfrozen (none: no fine-tuning).  Accuracies are measured on
    the ``test_idx`` cells.  ``log`` receives one line per step."""
    spec = get_spec(base_name)
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] != images.shape[2] or images.shape[3] != 3:
        raise ValueError(f"images must be square RGB cells (N, side, side, 3). Received: shape={images.shape}")
    for arg, value in (("epochs", epochs), ("fine_tune_epochs", fine_tune_epochs)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{arg} must be a non-negative int. Received: {arg}={value!r}")
    side = images.shape[1]
    check_image_size(spec, side)
    labels = np.asarray(labels, dtype=np.float32)
    weights, weights_source, pretrained = resolve_weights(spec, base_weights, side)
    log(weights_source)

    # 1. Frozen base: every cell's features once, then the new classifier on them.
    base = build_base(spec, side, weights)
    base.trainable = False
    x = preprocess(spec, images)
    t0 = time.perf_counter()
    features = base.predict(x, batch_size=batch_size, verbose=0)
    extract_seconds = time.perf_counter() - t0
    log(f"features of {len(x)} cells through the frozen {spec.name} base: {features.shape[1]} each, "
        f"{extract_seconds:.1f} s")
    head = build_head(features.shape[1])
    head_validation = None if val_idx is None else (features[val_idx], labels[val_idx])
    t0 = time.perf_counter()
    head_history = head.fit(features[fit_idx], labels[fit_idx], batch_size=batch_size, epochs=epochs,
                            validation_data=head_validation, callbacks=_early_stopping(head_validation, patience),
                            verbose=verbose).history
    head_seconds = time.perf_counter() - t0
    probabilities = head.predict(features[test_idx], batch_size=batch_size, verbose=0)
    frozen_accuracy = accuracy(probabilities, labels[test_idx])
    log(f"new classifier on the frozen base: {_epochs(head_history)} in {head_seconds:.1f} s; "
        f"test accuracy {frozen_accuracy:.4f}")

    # 2. Fine-tuning: the base's last block unfrozen, BatchNormalization kept in inference mode.
    inputs = Input((side, side, 3))
    model = Model(inputs, head(base(inputs, training=False)))
    unfrozen_layers = unfreeze_top(base, spec)
    model.compile(optimizer=optimizers.Adam(FINE_TUNE_LEARNING_RATE), loss="binary_crossentropy",
                  metrics=["accuracy"])
    lines = []
    model.summary(print_fn=lines.append)
    trainable_params = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    non_trainable_params = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    fine_tune_history, fine_tune_seconds, fine_tuned_accuracy = {}, 0.0, frozen_accuracy
    if fine_tune_epochs > 0:
        validation = None if val_idx is None else (x[val_idx], labels[val_idx])
        t0 = time.perf_counter()
        fine_tune_history = model.fit(x[fit_idx], labels[fit_idx], batch_size=batch_size, epochs=fine_tune_epochs,
                                      validation_data=validation, callbacks=_early_stopping(validation, patience),
                                      verbose=verbose).history
        fine_tune_seconds = time.perf_counter() - t0
        probabilities = model.predict(x[test_idx], batch_size=batch_size, verbose=0)
        fine_tuned_accuracy = accuracy(probabilities, labels[test_idx])
        log(f"fine-tuned from {spec.first_unfrozen} ({unfrozen_layers} layers unfrozen, {trainable_params:,} of "
            f"{trainable_params + non_trainable_params:,} parameters trainable, learning rate "
            f"{FINE_TUNE_LEARNING_RATE:g}): {_epochs(fine_tune_history)} in {fine_tune_seconds:.1f} s; "
            f"test accuracy {fine_tuned_accuracy:.4f}")
    return TransferResult(spec, weights, weights_source, pretrained, base, head, model, x, features,
                          extract_seconds, head_history, head_seconds, frozen_accuracy, unfrozen_layers,
                          trainable_params, non_trainable_params, "\n".join(lines), fine_tune_history,
                          fine_tune_seconds, probabilities, fine_tuned_accuracy)
