"""The global state of fastconv.keras, as ``keras.backend`` holds it.

- the counters that name layers ``conv2d``, ``conv2d_1``, ... (reset by :func:`clear_session`);
- the random generator behind initializers, dropout and shuffling (seeded by
  ``fastconv.keras.utils.set_random_seed``);
- ``epsilon()`` (1e-7, the fuzz factor of the losses' clipping) and ``floatx()`` ("float32").
"""
import collections
import re

import numpy as np

_EPSILON = 1e-7
_name_counts = collections.defaultdict(int)
_generator = None


def epsilon():
    """The fuzz factor of the cross-entropies: probabilities are clipped to [epsilon, 1 - epsilon]."""
    return _EPSILON


def set_epsilon(value):
    global _EPSILON
    _EPSILON = float(value)


def floatx():
    """The dtype of weights and computations: float32, as in Keras."""
    return "float32"


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
