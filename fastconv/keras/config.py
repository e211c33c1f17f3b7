"""``keras.config``: the global settings of fastconv.keras (kept in fastconv.keras.backend).

``floatx`` / ``set_floatx`` ("float32", "float64"), ``epsilon`` / ``set_epsilon``,
``image_data_format`` / ``set_image_data_format`` ("channels_last" only), ``backend()``
("fastconv"), and ``enable_unsafe_deserialization``: from then on, in the calling thread,
deserializing a ``Lambda`` layer may rebuild its Python code (``load_model`` keeps its own
``safe_mode=True`` default, as in Keras).
"""
from fastconv.keras.backend import (
    backend,
    epsilon,
    floatx,
    image_data_format,
    set_epsilon,
    set_floatx,
    set_image_data_format,
)

__all__ = ["backend", "enable_unsafe_deserialization", "epsilon", "floatx", "image_data_format", "set_epsilon",
           "set_floatx", "set_image_data_format"]


def enable_unsafe_deserialization():
    """Let ``Lambda.from_config`` (and model_from_json...) rebuild Python code stored in a
    configuration, as Keras's function of that name (load_model still needs safe_mode=False)."""
    from fastconv.keras.layers import core

    core._safe_mode.set(False)
