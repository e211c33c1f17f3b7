"""Convolution layers on fastconv's kernels: a base class and ``Conv2D`` (rank 2), as in Keras 3.

Forward: ``fastconv.conv2d`` with the bias and a ReLU fused into the kernel's epilogue.
Backward: the filter gradient by ``conv2d_backprop_filter``, the bias gradient by
``bias_add_grad`` and, only when something before the layer needs it, the input gradient by
``conv2d_backprop_input``.
"""
from typing import NamedTuple, Optional

import numpy as np

import fastconv
from fastconv.keras import activations, initializers
from fastconv.keras.layers._arguments import (
    channel_axis,
    refuse_unsupported,
    standardize_data_format,
    standardize_padding,
    standardize_tuple,
    tf_data_format,
    windowed_output_shape,
)
from fastconv.keras.layers.base import InputSpec, Layer

__all__ = ["BaseConv", "BaseDepthwiseConv", "BaseSeparableConv", "Conv2D", "DepthwiseConv2D", "SeparableConv2D"]
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
            raise ValueError(f"{owner}: grouped convolutions are not implemented; groups must be 1. Received: groups={groups}")
        if not isinstance(filters, int) or isinstance(filters, bool) or filters < 1:
            raise ValueError(f"{owner}: filters must be a positive integer. Received: filters={filters!r}")
        refuse_unsupported(self, kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                            activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
                            bias_constraint=bias_constraint)
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
        self.kernel = self.add_weight((*self.kernel_size, channels, self.filters), self.kernel_initializer, "kernel")
        self.bias = self.add_weight((self.filters,), self.bias_initializer, "bias") if self.use_bias else None
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
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer)}


class Conv2D(BaseConv):
    """2-D convolution: ``Conv2D(32, (3, 3), padding='same', activation='relu')``; kernel of shape
    (kernel_height, kernel_width, in_channels, filters)."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True, **kwargs):
        super().__init__(2, filters, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, groups=groups, activation=activation, use_bias=use_bias,
                         **kwargs)
