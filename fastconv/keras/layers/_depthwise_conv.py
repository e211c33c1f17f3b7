"""Depthwise and depthwise-separable convolution layers, as Keras 3's ``DepthwiseConv2D`` and
``SeparableConv2D`` (re-exported by the convolutional family, ``layers/convolutional.py``).

DepthwiseConv2D: each input channel convolved with its own ``depth_multiplier`` filters, kernel
(kh, kw, in_channels, depth_multiplier) named ``kernel`` as in Keras; forward by
``fastconv.depthwise_conv2d`` with the bias and a ReLU or ReLU6 fused into the kernel's epilogue,
backward
by ``depthwise_conv2d_backprop_filter``, ``bias_add_grad`` and, when something before the layer
needs it, ``depthwise_conv2d_backprop_input``.

SeparableConv2D: that depthwise convolution (``depthwise_kernel``, no bias), then a 1x1
``fastconv.conv2d`` (``pointwise_kernel`` (1, 1, in_channels * depth_multiplier, filters)) that
carries the bias and the activation, as ``tf.nn.separable_conv2d``.  Backward runs the two in
reverse: the 1x1 convolution's gradients, then the depthwise ones from the gradient of the
intermediate feature map.
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
    windowed_output_shape,
)
from fastconv.keras.layers._with_activation import WithActivation
from fastconv.keras.layers.base import InputSpec, Layer


class DepthwiseConvCache(NamedTuple):
    x: np.ndarray
    y: np.ndarray
    logits: Optional[np.ndarray]


class SeparableConvCache(NamedTuple):
    x: np.ndarray
    depthwise: np.ndarray   # the depthwise convolution's output, the 1x1 convolution's input
    y: np.ndarray
    logits: Optional[np.ndarray]


def _positive_int(value, name, owner):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{owner}: invalid value for argument `{name}`. Expected a strictly positive value. "
                         f"Received {name}={value!r}")
    return int(value)


class _DepthwiseWindow(WithActivation, Layer):
    """What the two layers share: the depthwise window's arguments, their validation, the input's
    channel count and the arguments of fastconv's depthwise kernels."""

    # The activations that fastconv's last kernel of the layer applies in its epilogue.
    _FUSED = {}

    def _set_window(self, rank, depth_multiplier, kernel_size, strides, padding, data_format, dilation_rate,
                    activation, use_bias, depthwise_initializer, bias_initializer, depthwise_regularizer,
                    bias_regularizer, activity_regularizer, depthwise_constraint, bias_constraint):
        owner = f'{type(self).__name__} "{self.name}"'
        self._set_activity_regularizer(activity_regularizer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.depthwise_constraint = constraints.get(depthwise_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        if rank != 2:
            raise ValueError(f"{owner}: fastconv implements 2-D convolutions only (rank=2). Received: rank={rank}")
        self.rank = rank
        self.depth_multiplier = _positive_int(depth_multiplier, "depth_multiplier", owner)
        self.kernel_size = standardize_tuple(kernel_size, rank, "kernel_size", owner)
        self.strides = standardize_tuple(strides, rank, "strides", owner)
        self.dilation_rate = standardize_tuple(dilation_rate, rank, "dilation_rate", owner)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            # Keras on TensorFlow fails there too (tf.nn.depthwise_conv2d refuses the pair).
            raise ValueError(f"{owner}: strides > 1 not supported in conjunction with dilation_rate > 1. "
                             f"Received: strides={self.strides} and dilation_rate={self.dilation_rate}")
        self.padding = standardize_padding(padding, owner)
        self.data_format = standardize_data_format(data_format, owner)
        self._set_activation(activation)
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.input_spec = InputSpec(ndim=rank + 2)
        self._format = tf_data_format(self.data_format)
        # None, or the activation that runs inside the last kernel of the layer, after the bias.
        self._fused = self._FUSED.get(self.activation)

    def _input_channels(self, input_shape):
        channels = input_shape[channel_axis(self.data_format)]
        if channels is None:
            raise ValueError(f'{type(self).__name__} "{self.name}": the channel axis of the input must be known; '
                             f"received shape {tuple(input_shape)}")
        self.input_spec = InputSpec(ndim=self.rank + 2, axes={channel_axis(self.data_format): channels})
        return channels

    def _output_shape(self, input_shape, channels):
        return windowed_output_shape(self, input_shape, self.kernel_size, self.strides, self.dilation_rate,
                                     self.padding, self.data_format, channels)

    def _check_input(self, shapes):
        super()._check_input(shapes)
        self.compute_output_shape(shapes[0])  # says, with the layer's name, when the window does not fit

    def _depthwise_args(self):
        return dict(strides=self.strides, padding=self.padding.upper(), data_format=self._format,
                    dilations=self.dilation_rate)

    def _window_config(self):
        return {"depth_multiplier": self.depth_multiplier, "kernel_size": self.kernel_size, "strides": self.strides,
                "padding": self.padding, "data_format": self.data_format, "dilation_rate": self.dilation_rate,
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "depthwise_constraint": constraints.serialize(self.depthwise_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint)}

    def _add_bias(self, size):
        return (self.add_weight(shape=(size,), initializer=self.bias_initializer, name="bias",
                                regularizer=self.bias_regularizer, constraint=self.bias_constraint)
                if self.use_bias else None)


class BaseDepthwiseConv(_DepthwiseWindow):
    """A depthwise convolution of ``rank`` spatial dimensions (fastconv implements rank 2)."""

    _FUSED = {activations.relu: "relu", activations.relu6: "relu6"}

    def __init__(self, rank, depth_multiplier, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self._set_window(rank, depth_multiplier, kernel_size, strides, padding, data_format, dilation_rate,
                         activation, use_bias, depthwise_initializer, bias_initializer, depthwise_regularizer,
                         bias_regularizer, activity_regularizer, depthwise_constraint, bias_constraint)

    def build(self, input_shape):
        channels = self._input_channels(input_shape)
        self.kernel = self.add_weight(shape=(*self.kernel_size, channels, self.depth_multiplier),
                                      initializer=self.depthwise_initializer, name="kernel",
                                      regularizer=self.depthwise_regularizer, constraint=self.depthwise_constraint)
        self.bias = self._add_bias(channels * self.depth_multiplier)
        self.built = True

    def compute_output_shape(self, input_shape):
        channels = input_shape[channel_axis(self.data_format)]
        return self._output_shape(input_shape, None if channels is None else channels * self.depth_multiplier)

    def forward(self, x, training=False):
        bias = self.bias.value if self.use_bias else None
        if self._fused:
            y = fastconv.depthwise_conv2d(x, self.kernel.value, bias=bias, activation=self._fused,
                                          **self._depthwise_args())
            self._record_activity(y)
            return y, DepthwiseConvCache(x, y, None)
        z = fastconv.depthwise_conv2d(x, self.kernel.value, bias=bias, **self._depthwise_args())
        y, logits = self._activate(z)
        return y, DepthwiseConvCache(x, y, logits)

    def backward_from_logits(self, cache, dz, need_input_grad=True):
        x = cache.x
        grads = {}
        if self.trainable:
            grads[self.kernel] = fastconv.depthwise_conv2d_backprop_filter(x, self.kernel.shape, dz,
                                                                           **self._depthwise_args())
            if self.use_bias:
                grads[self.bias] = fastconv.bias_add_grad(dz, data_format=self._format)
        dx = None
        if need_input_grad:
            dx = fastconv.depthwise_conv2d_backprop_input(x.shape, self.kernel.value, dz, **self._depthwise_args())
        return dx, grads

    def get_config(self):
        return {**super().get_config(), **self._window_config()}


class DepthwiseConv2D(BaseDepthwiseConv):
    """2-D depthwise convolution: ``DepthwiseConv2D(3, padding='same', depth_multiplier=1)``; kernel of
    shape (kernel_height, kernel_width, in_channels, depth_multiplier), output channel
    ``c * depth_multiplier + m`` from input channel ``c``."""

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True, **kwargs):
        super().__init__(2, depth_multiplier, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias, **kwargs)


class BaseSeparableConv(_DepthwiseWindow):
    """A depthwise-separable convolution of ``rank`` spatial dimensions (fastconv implements rank 2)."""

    _FUSED = {activations.relu: "relu"}   # what fastconv.conv2d fuses

    def __init__(self, rank, depth_multiplier, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 pointwise_initializer="glorot_uniform", bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, pointwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = _positive_int(filters, "filters", f'{type(self).__name__} "{self.name}"')
        self._set_window(rank, depth_multiplier, kernel_size, strides, padding, data_format, dilation_rate,
                         activation, use_bias, depthwise_initializer, bias_initializer, depthwise_regularizer,
                         bias_regularizer, activity_regularizer, depthwise_constraint, bias_constraint)
        self.pointwise_initializer = initializers.get(pointwise_initializer)
        self.pointwise_regularizer = regularizers.get(pointwise_regularizer)
        self.pointwise_constraint = constraints.get(pointwise_constraint)

    def build(self, input_shape):
        channels = self._input_channels(input_shape)
        self.depthwise_kernel = self.add_weight(shape=(*self.kernel_size, channels, self.depth_multiplier),
                                                initializer=self.depthwise_initializer, name="depthwise_kernel",
                                                regularizer=self.depthwise_regularizer,
                                                constraint=self.depthwise_constraint)
        self.pointwise_kernel = self.add_weight(
            shape=(1,) * self.rank + (channels * self.depth_multiplier, self.filters),
            initializer=self.pointwise_initializer, name="pointwise_kernel", regularizer=self.pointwise_regularizer,
            constraint=self.pointwise_constraint)
        self.bias = self._add_bias(self.filters)
        self.built = True

    def compute_output_shape(self, input_shape):
        return self._output_shape(input_shape, self.filters)

    def _pointwise_args(self):
        return dict(strides=1, padding="VALID", data_format=self._format)

    def forward(self, x, training=False):
        d = fastconv.depthwise_conv2d(x, self.depthwise_kernel.value, **self._depthwise_args())
        bias = self.bias.value if self.use_bias else None
        if self._fused:
            y = fastconv.conv2d(d, self.pointwise_kernel.value, bias=bias, activation=self._fused,
                                **self._pointwise_args())
            self._record_activity(y)
            return y, SeparableConvCache(x, d, y, None)
        z = fastconv.conv2d(d, self.pointwise_kernel.value, bias=bias, **self._pointwise_args())
        y, logits = self._activate(z)
        return y, SeparableConvCache(x, d, y, logits)

    def backward_from_logits(self, cache, dz, need_input_grad=True):
        x, d = cache.x, cache.depthwise
        grads = {}
        if self.trainable:
            grads[self.pointwise_kernel] = fastconv.conv2d_backprop_filter(d, self.pointwise_kernel.shape, dz,
                                                                           **self._pointwise_args())
            if self.use_bias:
                grads[self.bias] = fastconv.bias_add_grad(dz, data_format=self._format)
        if not (self.trainable or need_input_grad):
            return None, grads
        dd = fastconv.conv2d_backprop_input(d.shape, self.pointwise_kernel.value, dz, **self._pointwise_args())
        if self.trainable:
            grads[self.depthwise_kernel] = fastconv.depthwise_conv2d_backprop_filter(
                x, self.depthwise_kernel.shape, dd, **self._depthwise_args())
        dx = None
        if need_input_grad:
            dx = fastconv.depthwise_conv2d_backprop_input(x.shape, self.depthwise_kernel.value, dd,
                                                          **self._depthwise_args())
        return dx, grads

    def get_config(self):
        return {**super().get_config(), **self._window_config(), "filters": self.filters,
                "pointwise_initializer": initializers.serialize(self.pointwise_initializer),
                "pointwise_regularizer": regularizers.serialize(self.pointwise_regularizer),
                "pointwise_constraint": constraints.serialize(self.pointwise_constraint)}


class SeparableConv2D(BaseSeparableConv):
    """2-D depthwise-separable convolution: ``SeparableConv2D(64, 3, padding='same', activation='relu')``;
    a depthwise convolution (``depthwise_kernel`` (kh, kw, in_channels, depth_multiplier)) followed
    by a 1x1 convolution (``pointwise_kernel`` (1, 1, in_channels * depth_multiplier, filters))."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None, dilation_rate=(1, 1),
                 depth_multiplier=1, activation=None, use_bias=True, **kwargs):
        super().__init__(2, depth_multiplier, filters, kernel_size, strides=strides, padding=padding,
                         data_format=data_format, dilation_rate=dilation_rate, activation=activation,
                         use_bias=use_bias, **kwargs)
