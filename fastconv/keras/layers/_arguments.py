"""Validation of the layer arguments that several layers share (as Keras's argument_validation)."""
import numpy as np


def standardize_tuple(value, n, name, owner):
    """An int or a sequence of ``n`` positive ints -> a tuple of ``n`` ints."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        items = (int(value),) * n
    else:
        try:
            items = tuple(value)
        except TypeError:
            items = None
        if items is None or len(items) != n or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                                        for v in items):
            raise ValueError(f"{owner}: the `{name}` argument must be a tuple of {n} integers. "
                             f"Received: {name}={value!r}")
        items = tuple(int(v) for v in items)
    if any(v < 1 for v in items):
        raise ValueError(f"{owner}: the `{name}` argument must be a tuple of {n} positive integers. "
                         f"Received: {name}={value!r}")
    return items


def standardize_padding(value, owner):
    padding = value.lower() if isinstance(value, str) else value
    if padding not in ("valid", "same"):
        raise ValueError(f'{owner}: the `padding` argument must be "valid" or "same". Received: padding={value!r}')
    return padding


def standardize_data_format(value, owner):
    if value is None:
        return "channels_last"
    fmt = value.lower() if isinstance(value, str) else value
    if fmt not in ("channels_last", "channels_first"):
        raise ValueError(f'{owner}: the `data_format` argument must be "channels_last" or "channels_first". '
                         f"Received: data_format={value!r}")
    return fmt


def tf_data_format(data_format):
    """Keras's data_format -> the NHWC / NCHW of fastconv's kernels."""
    return "NHWC" if data_format == "channels_last" else "NCHW"


def spatial_axes(data_format):
    return (1, 2) if data_format == "channels_last" else (2, 3)


def channel_axis(data_format):
    return -1 if data_format == "channels_last" else 1


def window_output_size(size, window, stride, dilation, padding):
    """One spatial size after a window: 'valid' keeps the positions where the (dilated) window
    fits, floor((size - eff) / stride) + 1; 'same' gives ceil(size / stride)."""
    if size is None:
        return None
    if padding == "same":
        return -(-size // stride)
    eff = (window - 1) * dilation + 1
    return (size - eff) // stride + 1 if size >= eff else 0


def windowed_output_shape(layer, input_shape, window, strides, dilation, padding, data_format, channels):
    """Output shape of a convolution or pooling layer, with an error naming the layer when the
    window does not fit."""
    h_axis, w_axis = spatial_axes(data_format)
    sizes = [window_output_size(input_shape[a], k, s, d, padding)
             for a, k, s, d in zip((h_axis, w_axis), window, strides, dilation)]
    if any(s is not None and s < 1 for s in sizes):
        raise ValueError(
            f'Layer "{layer.name}" ({type(layer).__name__}): the {window[0]}x{window[1]} window '
            f"(dilation {tuple(dilation)}) does not fit the input of shape {tuple(input_shape)} with "
            f'padding="{padding}": the output would be empty. Use padding="same", a smaller window, '
            f"or fewer pooling layers before this one.")
    n = input_shape[0]
    if data_format == "channels_last":
        return (n, sizes[0], sizes[1], channels)
    return (n, channels, sizes[0], sizes[1])


def refuse_unsupported(layer, **arguments):
    """Regularizers and constraints are not implemented: refuse them rather than ignore them."""
    given = [name for name, value in arguments.items() if value is not None]
    if given:
        raise ValueError(f'{type(layer).__name__} "{layer.name}": fastconv.keras does not implement '
                         f"{', '.join(given)}; pass None (the default)")
