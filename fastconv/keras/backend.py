"""The global state of fastconv.keras, as ``keras.backend`` (and ``keras.config``) hold it.

- the counters that name layers ``conv2d``, ``conv2d_1``, ... (reset by :func:`clear_session`);
- the random generator behind initializers, dropout and shuffling (seeded by
  ``fastconv.keras.utils.set_random_seed``);
- ``floatx()``: the dtype of the layers created from then on ("float32"; "float64" with
  ``set_floatx``), ``epsilon()`` (1e-7, the fuzz factor of the losses' clipping) and
  ``image_data_format()`` ("channels_last": fastconv's layers take channels_first only through
  their own ``data_format=`` argument).
"""
import collections
import re

import numpy as np

_EPSILON = 1e-7
_FLOATX = "float32"
_IMAGE_DATA_FORMAT = "channels_last"
_name_counts = collections.defaultdict(int)
_generator = None


def backend():
    """The name of the backend: "fastconv" (Keras says "tensorflow", "jax", "torch" or "numpy")."""
    return "fastconv"


def epsilon():
    """The fuzz factor of the cross-entropies: probabilities are clipped to [epsilon, 1 - epsilon]."""
    return _EPSILON


def set_epsilon(value):
    global _EPSILON
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"set_epsilon: expected a number. Received: value={value!r}") from None
    _EPSILON = value


def floatx():
    """The dtype of the weights and computations of layers created from now on: "float32" as in
    Keras, or "float64" after ``set_floatx("float64")``."""
    return _FLOATX


def set_floatx(value):
    """Set the default float dtype: "float32" or "float64" (fastconv's kernels have no float16 /
    bfloat16 rows).  Layers, losses and metrics created afterwards use it."""
    global _FLOATX
    accepted = ("bfloat16", "float16", "float32", "float64")
    name = str(value)
    if name not in accepted:
        raise ValueError(f"Unknown `floatx` value: {value!r}. Expected one of {set(accepted)}")
    if name not in ("float32", "float64"):
        raise ValueError(f"set_floatx: fastconv.keras computes in float32 or float64 only; {name} is not "
                         f"implemented. Received: value={value!r}")
    _FLOATX = name


def image_data_format():
    """The default ``data_format`` of image layers: "channels_last" (batch, height, width, channels)."""
    return _IMAGE_DATA_FORMAT


def set_image_data_format(data_format):
    """Only "channels_last" can be the default in fastconv.keras (a layer still takes
    ``data_format="channels_first"`` where it implements it)."""
    global _IMAGE_DATA_FORMAT
    fmt = str(data_format).lower()
    if fmt not in ("channels_first", "channels_last"):
        raise ValueError("The `data_format` argument must be one of {'channels_first', 'channels_last'}. "
                         f"Received: data_format={data_format!r}")
    if fmt == "channels_first":
        raise ValueError("set_image_data_format: fastconv.keras's layers default to channels_last only (its kernels "
                         "are fastest in NHWC); pass data_format='channels_first' to the layers that should read "
                         "NCHW instead. Received: data_format='channels_first'")
    _IMAGE_DATA_FORMAT = fmt


def to_snake_case(name):
    """``MaxPooling2D`` -> ``max_pooling2d``, ``ReLU`` -> ``re_lu``: Keras's names for its layers."""
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(prefix):
    """``prefix`` the first time, then ``prefix_1``, ``prefix_2``, ... (one counter per prefix)."""
    count = _name_counts[prefix]
    _name_counts[prefix] += 1
    return prefix if count == 0 else f"{prefix}_{count}"


def auto_name(class_name):
    return unique_name(to_snake_case(class_name))


def clear_session():
    """Reset the layer-name counters (the next Conv2D is ``conv2d`` again), as Keras does."""
    _name_counts.clear()


def random_generator():
    """The generator that initializers, dropout and shuffling draw from."""
    global _generator
    if _generator is None:
        _generator = np.random.default_rng()
    return _generator


def seed_generator(seed):
    global _generator
    _generator = np.random.default_rng(seed)


class Tensor(np.ndarray):
    """A NumPy array that also answers ``.numpy()``, as TensorFlow's tensors do: what calling a
    layer or a model on data returns and what fastconv.keras's datasets yield, so that a
    TensorFlow program's ``images[i].numpy().astype("uint8")`` runs.  It is a view (no copy);
    ``np.asarray`` of it is the plain array, which fastconv's own code works on."""

    def numpy(self):
        """The plain NumPy array (a view)."""
        return self.view(np.ndarray)


def as_tensor(value):
    """``value`` with its arrays (in tuples, lists and dicts) viewed as :class:`Tensor`."""
    if isinstance(value, np.ndarray):
        return value if isinstance(value, Tensor) else value.view(Tensor)
    if isinstance(value, dict):
        return {k: as_tensor(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(as_tensor(v) for v in value)
    return value
