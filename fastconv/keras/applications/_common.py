"""What the application builders share: the input, the head (classifier or pooling) and the
functional model, with Keras's checks of the arguments and Keras's weight files."""
from fastconv.keras import backend, layers
from fastconv.keras.applications import imagenet_utils
from fastconv.keras.layers.base import KerasTensor
from fastconv.keras.models import Model

POOLING_MODES = (None, "avg", "max")


def channel_axis():
    """The channel axis of a 4-D image batch in the current data format (Keras writes 3 or 1)."""
    return 3 if backend.image_data_format() == "channels_last" else 1


def check_arguments(weights, include_top, classes, pooling, model_name):
    imagenet_utils.check_weights_argument(weights, include_top, classes, model_name)
    if pooling not in POOLING_MODES:
        # Keras ignores any other value silently; fastconv says so.
        raise ValueError(f"{model_name}: `pooling` must be None, 'avg' or 'max'. Received: pooling={pooling!r}")


def image_input(input_tensor, input_shape):
    """The model's image tensor: a new Input, or ``input_tensor`` (a symbolic tensor of
    fastconv.keras, as ``layers.Input(...)`` returns)."""
    if input_tensor is None:
        return layers.Input(shape=input_shape)
    if not isinstance(input_tensor, KerasTensor):
        raise TypeError("input_tensor must be a symbolic tensor of fastconv.keras (the output of "
                        f"fastconv.keras.layers.Input or of a layer). Received: {type(input_tensor).__name__}")
    return input_tensor


def source_inputs(tensor):
    """The Input tensors that ``tensor`` is computed from (Keras's get_source_inputs)."""
    found, seen, stack = [], set(), [tensor]
    while stack:
        t = stack.pop()
        layer, node_index, _ = t._keras_history
        node = layer._inbound_nodes[node_index]
        if not node.inputs:
            if id(t) not in seen:
                seen.add(id(t))
                found.append(t)
            continue
        stack.extend(reversed(node.inputs))
    return found[0] if len(found) == 1 else found


def head(x, include_top, pooling, classes, classifier_activation, weights, top_pool_name="avg_pool",
         pool_names=(None, None), dropout=None):
    """The end of an application: ``include_top`` a global average pooling (``top_pool_name``),
    optional dropout and the classifier "predictions"; else the ``pooling`` asked for, its layers
    named ``pool_names`` (average, max) as each Keras builder names them."""
    if include_top:
        x = layers.GlobalAveragePooling2D(name=top_pool_name)(x)
        if dropout is not None:
            x = dropout(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        return layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name=pool_names[0])(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name=pool_names[1])(x)
    return x


def functional(input_tensor, img_input, x, name):
    inputs = img_input if input_tensor is None else source_inputs(input_tensor)
    return Model(inputs, x, name=name)


def load_weights(model, weights, include_top, files, base_url):
    """``weights``: None, a file path, or "imagenet": ``files[include_top]`` = (path under
    ``base_url``, md5), kept in Keras's cache under the path's last part as Keras keeps it."""
    if weights == "imagenet":
        url_path, file_hash = files[bool(include_top)]
        imagenet_utils.load_model_weights(model, weights, url_path.rsplit("/", 1)[-1], base_url + url_path,
                                          file_hash)
    else:
        imagenet_utils.load_model_weights(model, weights, None, None, None)
    return model
