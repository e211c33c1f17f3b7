"""Convolution layers on fastconv's kernels: a base class and ``Conv2D`` (rank 2), as in Keras 3.

Forward: ``fastconv.conv2d`` with the bias and a ReLU fused into the kernel's epilogue.
Backward: the filter gradient by ``conv2d_backprop_filter``, the bias gradient by
``bias_add_grad`` and, only when something before the layer needs it, the input gradient by
``conv2d_backprop_input``.
"""
from typing import NamedTuple, Optional

import numpy as np

import fastconv
from fastconv.keras import activations, constraints, initializers, regularizers
from fastconv.keras.layers._arguments import (
    channel_axis,
    standardize_data_format,
    standardize_padding,
    standardize_tuple,
    tf_data_format,
    window_output_size,
    windowed_output_shape,
)
from fastconv.keras.layers.base import InputSpec, Layer

__all__ = ["BaseConv", "BaseDepthwiseConv", "BaseSeparableConv", "Conv2D", "Conv2DTranspose", "DepthwiseConv2D",
           "SeparableConv2D"]
from fastconv.keras.layers._depthwise_conv import (
    BaseDepthwiseConv,
    BaseSeparableConv,
    DepthwiseConv2D,
    SeparableConv2D,
)
from fastconv.keras.layers._with_activation import WithActivation


class ConvCache(NamedTuple):
    x: np.ndarray
    y: np.ndarray
    logits: Optional[np.ndarray]


def _kernel_and_bias_config(layer):
    """The config entries, with Keras's keys, of a convolution's activation, bias flag, and its
    kernel's and bias's initializers, regularizers and constraints."""
    return {"activation": activations.serialize(layer.activation), "use_bias": layer.use_bias,
            "kernel_initializer": initializers.serialize(layer.kernel_initializer),
            "bias_initializer": initializers.serialize(layer.bias_initializer),
            "kernel_regularizer": regularizers.serialize(layer.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(layer.bias_regularizer),
            "activity_regularizer": regularizers.serialize(layer.activity_regularizer),
            "kernel_constraint": constraints.serialize(layer.kernel_constraint),
            "bias_constraint": constraints.serialize(layer.bias_constraint)}


class BaseConv(WithActivation, Layer):
    """A convolution of ``rank`` spatial dimensions (fastconv implements rank 2)."""

    def __init__(self, rank, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        owner = f'{type(self).__name__} "{self.name}"'
        if rank != 2:
            raise ValueError(f"{owner}: fastconv implements 2-D convolutions only (rank=2). Received: rank={rank}")
        if groups != 1:
            raise ValueError(f"{owner}: grouped convolutions are not implemented; groups must be 1. "
                             f"Received: groups={groups}")
        if not isinstance(filters, int) or isinstance(filters, bool) or filters < 1:
            raise ValueError(f"{owner}: filters must be a positive integer. Received: filters={filters!r}")
        self._set_activity_regularizer(activity_regularizer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.rank = rank
        self.filters = filters
        self.kernel_size = standardize_tuple(kernel_size, rank, "kernel_size", owner)
        self.strides = standardize_tuple(strides, rank, "strides", owner)
        self.dilation_rate = standardize_tuple(dilation_rate, rank, "dilation_rate", owner)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{owner}: strides > 1 not supported in conjunction with dilation_rate > 1. "
                             f"Received: strides={self.strides} and dilation_rate={self.dilation_rate}")
        self.padding = standardize_padding(padding, owner)
        self.data_format = standardize_data_format(data_format, owner)
        self.groups = groups
        self._set_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.input_spec = InputSpec(ndim=rank + 2)
        # The arguments of fastconv's kernels.
        self._format = tf_data_format(self.data_format)
        self._padding = self.padding.upper()
        # A ReLU runs inside the convolution kernel, after the bias.
        self._fused_relu = self.activation is activations.relu

    def build(self, input_shape):
        channels = input_shape[channel_axis(self.data_format)]
        if channels is None:
            raise ValueError(f'{type(self).__name__} "{self.name}": the channel axis of the input must be known; '
                             f"received shape {input_shape}")
        self.kernel = self.add_weight((*self.kernel_size, channels, self.filters), self.kernel_initializer, "kernel",
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.bias = self.add_weight((self.filters,), self.bias_initializer, "bias", regularizer=self.bias_regularizer,
                                    constraint=self.bias_constraint) if self.use_bias else None
        self.input_spec = InputSpec(ndim=self.rank + 2, axes={channel_axis(self.data_format): channels})
        self.built = True

    def compute_output_shape(self, input_shape):
        return windowed_output_shape(self, input_shape, self.kernel_size, self.strides, self.dilation_rate,
                                     self.padding, self.data_format, self.filters)

    def _check_input(self, shapes):
        super()._check_input(shapes)
        self.compute_output_shape(shapes[0])  # says, with the layer's name, when the window does not fit

    def _conv_args(self):
        return dict(strides=self.strides, padding=self._padding, data_format=self._format, dilations=self.dilation_rate)

    def forward(self, x, training=False):
        bias = self.bias.value if self.use_bias else None
        if self._fused_relu:
            y = fastconv.conv2d(x, self.kernel.value, bias=bias, activation="relu", **self._conv_args())
            self._record_activity(y)
            return y, ConvCache(x, y, None)
        z = fastconv.conv2d(x, self.kernel.value, bias=bias, **self._conv_args())
        y, logits = self._activate(z)
        return y, ConvCache(x, y, logits)

    def backward_from_logits(self, cache, dz, need_input_grad=True):
        x = cache.x
        grads = {}
        if self.trainable:
            grads[self.kernel] = fastconv.conv2d_backprop_filter(x, self.kernel.shape, dz, **self._conv_args())
            if self.use_bias:
                grads[self.bias] = fastconv.bias_add_grad(dz, data_format=self._format)
        dx = None
        if need_input_grad:
            dx = fastconv.conv2d_backprop_input(x.shape, self.kernel.value, dz, **self._conv_args())
        return dx, grads

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": self.dilation_rate, "groups": self.groups,
                **_kernel_and_bias_config(self)}


class Conv2D(BaseConv):
    """2-D convolution: ``Conv2D(32, (3, 3), padding='same', activation='relu')``; kernel of shape
    (kernel_height, kernel_width, in_channels, filters)."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True, **kwargs):
        super().__init__(2, filters, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, groups=groups, activation=activation, use_bias=use_bias,
                         **kwargs)


def _transpose_output_size(size, kernel, stride, dilation, padding, output_padding):
    """One spatial size after a transposed convolution, by Keras's formula: 'valid' gives
    (size - 1) * stride + eff + output_padding (by default max(eff, stride) - eff), 'same' gives
    size * stride (by default) or (size - 1) * stride + eff % 2 + output_padding."""
    if size is None:
        return None
    eff = (kernel - 1) * dilation + 1
    if padding == "valid":
        extra = max(eff, stride) - eff if output_padding is None else output_padding
        return (size - 1) * stride + eff + extra
    if output_padding is None:
        return size * stride
    return (size - 1) * stride + eff % 2 + output_padding


class Conv2DTranspose(WithActivation, Layer):
    """Transposed 2-D convolution ("deconvolution"): the gradient of a Conv2D with respect to
    its input, used to enlarge feature maps.  Kernel of shape (kernel_height, kernel_width,
    filters, in_channels), as Keras.

    Forward: ``fastconv.conv2d_transpose``, then the bias and a ReLU in place.
    Backward: the input gradient is the Conv2D of the output gradient with the same kernel; the
    kernel gradient is ``conv2d_backprop_filter`` with input and output swapped (the output
    gradient plays the input of that Conv2D, the layer's input its output gradient).
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", output_padding=None,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(**kwargs)
        owner = f'Conv2DTranspose "{self.name}"'
        if not isinstance(filters, (int, np.integer)) or isinstance(filters, bool) or filters < 1:
            raise ValueError(f"{owner}: invalid value for argument `filters`. Expected a strictly positive integer. "
                             f"Received filters={filters!r}")
        self._set_activity_regularizer(activity_regularizer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.filters = int(filters)
        self.kernel_size = standardize_tuple(kernel_size, 2, "kernel_size", owner)
        self.strides = standardize_tuple(strides, 2, "strides", owner)
        self.dilation_rate = standardize_tuple(dilation_rate, 2, "dilation_rate", owner)
        self.padding = standardize_padding(padding, owner)
        self.output_padding = None
        if output_padding is not None:
            values = (output_padding,) * 2 if isinstance(output_padding, (int, np.integer)) else output_padding
            try:
                values = tuple(values)
            except TypeError:
                values = ()
            if len(values) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0
                                           for v in values):
                raise ValueError(f"{owner}: the `output_padding` argument must be a tuple of 2 non-negative "
                                 f"integers. Received: output_padding={output_padding!r}")
            self.output_padding = tuple(int(v) for v in values)
            for i, (op, s) in enumerate(zip(self.output_padding, self.strides)):
                if op >= s:
                    raise ValueError(f"{owner}: invalid `output_padding` argument. Each value in `output_padding` "
                                     f"must be strictly less than the corresponding `strides` value. At index {i}, "
                                     f"`output_padding` is {op} and `strides` is {s}. Received: "
                                     f"output_padding={self.output_padding}, strides={self.strides}.")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{owner}: `strides > 1` not supported in conjunction with `dilation_rate > 1`. "
                             f"Received: strides={self.strides} and dilation_rate={self.dilation_rate}")
        self.data_format = standardize_data_format(data_format, owner)
        self._set_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.input_spec = InputSpec(ndim=4)
        self._format = tf_data_format(self.data_format)
        self._fused_relu = self.activation is activations.relu

    def build(self, input_shape):
        axis = channel_axis(self.data_format)
        channels = input_shape[axis]
        if channels is None:
            raise ValueError(f'Conv2DTranspose "{self.name}": the channel axis of the input must be known; '
                             f"received shape {tuple(input_shape)}")
        self.kernel = self.add_weight((*self.kernel_size, self.filters, channels), self.kernel_initializer, "kernel",
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.bias = self.add_weight((self.filters,), self.bias_initializer, "bias", regularizer=self.bias_regularizer,
                                    constraint=self.bias_constraint) if self.use_bias else None
        self.input_spec = InputSpec(ndim=4, axes={axis: channels})
        self.built = True

    def compute_output_shape(self, input_shape):
        h_axis, w_axis = (1, 2) if self.data_format == "channels_last" else (2, 3)
        output_padding = self.output_padding or (None, None)
        sizes = []
        for axis, k, s, d, op in zip((h_axis, w_axis), self.kernel_size, self.strides, self.dilation_rate,
                                     output_padding):
            size = _transpose_output_size(input_shape[axis], k, s, d, self.padding, op)
            # The output must be an input of the Conv2D whose gradient this is: with 'same', an
            # even kernel and output_padding 0, it is one row short.
            if size is not None and window_output_size(size, k, s, d, self.padding) != input_shape[axis]:
                raise ValueError(
                    f'Conv2DTranspose "{self.name}": with padding="{self.padding}", kernel_size={self.kernel_size} '
                    f"and output_padding={self.output_padding}, an input of shape {tuple(input_shape)} gives spatial "
                    f"size {size}, which a Conv2D with strides {self.strides} does not map back to "
                    f"{input_shape[axis]}. Use a larger output_padding.")
            sizes.append(size)
        if self.data_format == "channels_last":
            return (input_shape[0], sizes[0], sizes[1], self.filters)
        return (input_shape[0], self.filters, sizes[0], sizes[1])

    def _check_input(self, shapes):
        super()._check_input(shapes)
        self.compute_output_shape(shapes[0])

    def _conv_args(self):
        return dict(strides=self.strides, padding=self.padding.upper(), data_format=self._format,
                    dilations=self.dilation_rate)

    def forward(self, x, training=False):
        out_shape = self.compute_output_shape(x.shape)
        z = fastconv.conv2d_transpose(x, self.kernel.value, out_shape, **self._conv_args())
        # In place on the fresh output: under 3 ms for a 16x64x64x32 output, where
        # fastconv.bias_add(..., relu=True) took 56 ms when this was written.
        if self.use_bias:
            z += self.bias.value if self.data_format == "channels_last" else self.bias.value[:, None, None]
        if self._fused_relu:
            np.maximum(z, 0, out=z)
            self._record_activity(z)
            return z, ConvCache(x, z, None)
        y, logits = self._activate(z)
        return y, ConvCache(x, y, logits)

    def backward_from_logits(self, cache, dz, need_input_grad=True):
        x = cache.x
        grads = {}
        if self.trainable:
            grads[self.kernel] = fastconv.conv2d_backprop_filter(dz, self.kernel.shape, x, **self._conv_args())
            if self.use_bias:
                grads[self.bias] = fastconv.bias_add_grad(dz, data_format=self._format)
        dx = fastconv.conv2d(dz, self.kernel.value, **self._conv_args()) if need_input_grad else None
        return dx, grads

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "output_padding": self.output_padding,
                "data_format": self.data_format, "dilation_rate": self.dilation_rate,
                **_kernel_and_bias_config(self)}
