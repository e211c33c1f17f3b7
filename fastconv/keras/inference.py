"""A frozen inference copy of a Functional or Sequential model: ``InferenceModel(model)(x)``.

``predict`` runs each layer as training does: a convolution writes its output, the
BatchNormalization after it reads it and writes a normalised copy, the ReLU after that a third.
At inference BatchNormalization is an affine map per channel with constant coefficients,
``y = s * z + (beta - s * mean)`` with ``s = gamma / sqrt(moving_variance + epsilon)``, so it
folds into the preceding convolution: filters ``w * s`` (per output channel) and bias
``s * (b - mean) + beta``, and a ReLU (or ReLU6) reading the result joins the kernel's epilogue.
A residual ``Add`` of the convolution's result and another tensor (ResNet's blocks) joins the
epilogue too: the kernel computes ``relu(residual + conv + bias)`` into the residual's own buffer
when nothing reads the residual afterwards, so that a block reads and writes each activation once.
Each convolution's plan (:class:`fastconv.conv.ConvPlan`: algorithm, threads) and packed
filters are built once per input shape and reused by every call.

The intermediate tensors live in buffers that are kept between calls (per thread) and handed
from a tensor that is no longer read to the next one of its shape: a call writes into memory it
already touched instead of fresh pages (on ResNet50 at batch 32 the fresh pages of every layer's
output cost more than the adds themselves).  The results returned are the caller's own arrays.

The weights are read when the InferenceModel is built (as an inference engine compiles a
model): later changes to the model's weights are not seen; build a new one after training.
The result equals ``model.predict_on_batch(x)`` up to the rounding of the folded products
(within 1e-5 relative; tests/test_keras_inference_fusion.py).
"""
import threading
import time

import numpy as np

import fastconv
from fastconv.conv import ConvGeometry, ConvPlan
from fastconv.keras import activations
from fastconv.keras.graph import Graph
from fastconv.keras.layers.activations import Activation, ReLU
from fastconv.keras.layers.convolutional import Conv2D, DepthwiseConv2D
from fastconv.keras.layers.core import Dense
from fastconv.keras.layers.merging import Add
from fastconv.keras.layers.normalization import BatchNormalization
from fastconv.keras.layers.reshaping import ZeroPadding2D

__all__ = ["InferenceModel"]


def _activation_of(layer):
    """'relu', 'relu6' or None: the clamp that an activation layer applies (None: not one of them)."""
    if isinstance(layer, Activation):
        return {activations.relu: "relu", activations.relu6: "relu6"}.get(layer.activation)
    if isinstance(layer, ReLU) and layer.negative_slope == 0 and layer.threshold == 0:
        return {None: "relu", 6.0: "relu6"}.get(layer.max_value)
    return None


def _clamp(y, activation):
    """ReLU or ReLU6 in place (NaN stays NaN, as tf.nn.relu and relu6)."""
    if activation is not None:
        np.maximum(y, 0, out=y)
        if activation == "relu6":
            np.minimum(y, 6, out=y)
    return y


def _bn_affine(bn):
    """(scale, shift) per channel, in float64, of an inference-mode BatchNormalization."""
    inv_std = 1 / np.sqrt(np.asarray(bn.moving_variance.value, np.float64) + bn.epsilon)
    scale = inv_std * (np.asarray(bn.gamma.value, np.float64) if bn.scale else 1)
    shift = -np.asarray(bn.moving_mean.value, np.float64) * scale
    if bn.center:
        shift = shift + np.asarray(bn.beta.value, np.float64)
    return scale, shift


class _Step:
    """One node of the frozen graph: reads ``inputs`` (tensor ids), writes ``outputs``."""

    def __init__(self, inputs, outputs):
        self.inputs, self.outputs = inputs, outputs


class _Buffers:
    """The arrays of one thread's calls: free ones by (shape, dtype), kept between calls, and
    those that the current call's tensors hold."""

    def __init__(self):
        self.free = {}
        self.owned = {}      # id -> array: handed out in this call and not given back
        self.pinned = set()  # ids of owned arrays a layer read: its outputs may be views of them
        self.dying = set()   # ids of owned arrays that no step reads after the running one

    def take(self, shape, dtype):
        stack = self.free.get((tuple(shape), np.dtype(dtype)))
        a = stack.pop() if stack else np.empty(shape, dtype)
        self.owned[id(a)] = a
        return a

    def may_overwrite(self, a):
        """Whether the running step may write into ``a`` (it reads ``a`` last)."""
        return id(a) in self.dying

    def give(self, a):
        del self.owned[id(a)]
        self.free.setdefault((a.shape, a.dtype), []).append(a)

    def finish(self, outputs):
        """The call's outputs as arrays of their own, and every owned array back to the free lists."""
        outputs = [o.copy() if any(np.may_share_memory(o, a) for a in self.owned.values()) else o for o in outputs]
        for a in list(self.owned.values()):
            self.give(a)
        self.pinned.clear()
        self.dying.clear()
        return outputs


class _LayerStep(_Step):
    """A layer the pass does not rewrite: its own inference call."""

    def __init__(self, node):
        super().__init__([id(t) for t in node.inputs], [id(t) for t in node.outputs])
        self.layer = node.layer
        self.training = bool(node.training)

    def __call__(self, args, buffers):
        y = self.layer._invoke_call(args if self.layer._multiple_inputs else args[0], self.training)
        return y if len(self.outputs) > 1 else [y]


class _ConvStep(_Step):
    """Conv2D (channels_last) with the ZeroPadding2D before it (``pads``, for a 'valid' Conv2D) and
    the BatchNormalization, the residual Add and the activation after it folded in (inputs: the
    convolution's, and the residual's when there is one)."""

    def __init__(self, layer, inputs, outputs, bn, activation, pads=None):
        super().__init__(inputs, outputs)
        self.layer, self.activation = layer, activation
        self.padding = layer._padding if pads is None else [[0, 0], list(pads[0]), list(pads[1]), [0, 0]]
        w = np.asarray(layer.kernel.value, np.float64)
        b = np.asarray(layer.bias.value, np.float64) if layer.use_bias else np.zeros(w.shape[-1])
        if bn is not None:
            scale, shift = _bn_affine(bn)
            w, b = w * scale, b * scale + shift
        # Folded in float64, kept in the layer's dtype (rounded once): with a float64 copy and a
        # copy per plan for the fallback, ResNet50's frozen predict at batch 32 peaked at 1075 MiB
        # (resident, fresh process), 891 MiB without.
        dtype = layer.kernel.value.dtype if layer.kernel.value.dtype.kind == "f" else np.float32
        self.filters, self.bias = w.astype(dtype), b.astype(dtype)
        self.plans = {}  # (input shape, dtype) -> (plan, packed filters, bias, filters for the fallback)

    def _plan(self, x):
        key = (x.shape, x.dtype)
        if key not in self.plans:
            layer = self.layer
            geometry = ConvGeometry("InferenceModel", x.shape, self.filters.shape, layer.strides, self.padding,
                                    "NHWC", layer.dilation_rate)
            w = self.filters.astype(x.dtype, copy=False)
            plan = ConvPlan(geometry, "forward", x.dtype, finite_filters=bool(np.isfinite(w).all()))
            self.plans[key] = (plan, plan.pack(w), self.bias.astype(x.dtype, copy=False), w)
        return self.plans[key]

    def __call__(self, args, buffers):
        x = np.ascontiguousarray(args[0])
        residual = args[1] if len(args) > 1 else None
        if 0 in x.shape or 0 in self.filters.shape:  # nothing to plan: the public function's own cases
            y = fastconv.conv2d(x, self.filters.astype(x.dtype), bias=self.bias.astype(x.dtype),
                                **{**self.layer._conv_args(), "padding": self.padding})
            return [_clamp(y if residual is None else y + residual, self.activation)]
        plan, packed, bias, w = self._plan(x)
        shape = plan.geometry.output_nhwc
        relu = self.activation is not None
        # ReLU6 in the micro-kernel's epilogue; Winograd's output transform has ReLU only (the upper
        # clamp after it, a pass over the output: 17 of them in MobileNetV2)
        relu6 = self.activation == "relu6" and plan.algorithm != "winograd"
        if residual is not None and plan.algorithm != "winograd" and residual.shape == shape and \
                residual.dtype == x.dtype and residual.flags.c_contiguous:
            # relu(residual + conv + bias) in the kernel's epilogue, into the residual's buffer if
            # nothing reads it after this step.
            if buffers.may_overwrite(residual):
                y = residual
            else:
                y = buffers.take(shape, x.dtype)
                np.copyto(y, residual)
            plan.run(x, packed, y, bias, relu, accumulate=True, relu6=relu6)
        else:
            y = buffers.take(shape, x.dtype)
            fused_relu, fused_relu6 = relu and residual is None, relu6 and residual is None
            if not plan.run(x, packed, y, bias, fused_relu, relu6=fused_relu6):
                plan.fallback.run(x, plan.fallback.pack(w), y, bias, fused_relu)  # an infinity or NaN in x
            if residual is not None:  # Winograd (no accumulating epilogue), or the Add's broadcasting
                y = np.add(y, residual, out=y) if residual.shape == shape and residual.dtype == y.dtype \
                    else y + residual
                return [_clamp(y, self.activation)]
        if self.activation == "relu6" and not relu6:
            np.minimum(y, 6, out=y)
        return [y]


class _DepthwiseStep(_Step):
    """DepthwiseConv2D (channels_last) with the ZeroPadding2D before it (``pads``, for a 'valid'
    layer) and the BatchNormalization and activation after it folded in."""

    def __init__(self, layer, inputs, outputs, bn, activation, pads=None):
        super().__init__(inputs, outputs)
        self.layer, self.activation = layer, activation
        self.padding = layer.padding.upper() if pads is None else [[0, 0], list(pads[0]), list(pads[1]), [0, 0]]
        w = np.asarray(layer.kernel.value, np.float64)
        kh, kw, cin, multiplier = w.shape
        b = np.asarray(layer.bias.value, np.float64) if layer.use_bias else np.zeros(cin * multiplier)
        if bn is not None:
            scale, shift = _bn_affine(bn)  # per output channel c * multiplier + m
            w, b = w * scale.reshape(cin, multiplier), b * scale + shift
        self.filters, self.bias = {}, b
        self.filters64 = w
        self.output_shapes = {}  # (input shape, dtype) -> output shape, learnt from the first call

    def __call__(self, args, buffers):
        x = args[0]
        dtype = np.float64 if x.dtype == np.float64 else np.float32
        if dtype not in self.filters:
            self.filters[dtype] = (self.filters64.astype(dtype), self.bias.astype(dtype))
        w, b = self.filters[dtype]
        key = (x.shape, x.dtype)
        out = buffers.take(self.output_shapes[key], dtype) if key in self.output_shapes else None
        y = fastconv.depthwise_conv2d(x, w, bias=b, activation=self.activation, out=out,
                                      **{**self.layer._depthwise_args(), "padding": self.padding})
        self.output_shapes[key] = y.shape
        return [y]


class _DenseStep(_Step):
    """Dense on float inputs of its kernel's dtype: the product as a 1x1 convolution of the rows
    (fastconv's kernel and threads), the bias and a ReLU in its epilogue, other activations after.
    NumPy's threaded BLAS, called between fastconv's kernels on a loaded 2-core machine, took a
    median 35 ms (60 ms right after a convolution) for ResNet50's 32 x 2048 x 1000 classifier,
    whose fastest run took 1.7 ms."""

    def __init__(self, node):
        super().__init__([id(node.inputs[0])], [id(node.outputs[0])])
        self.layer = layer = node.layer
        self.kernel = np.array(layer.kernel.value)
        self.bias = np.array(layer.bias.value) if layer.use_bias else None
        self.fallback = _LayerStep(node)
        self.plans = {}  # rows -> (plan, packed filters)

    def __call__(self, args, buffers):
        x, w, layer = args[0], self.kernel, self.layer
        if x.dtype != w.dtype or x.dtype not in (np.float32, np.float64) or x.size == 0 or w.size == 0:
            return self.fallback(args, buffers)
        rows = np.ascontiguousarray(x).reshape(1, 1, -1, w.shape[0])
        if rows.shape not in self.plans:
            geometry = ConvGeometry("InferenceModel", rows.shape, (1, 1, *w.shape), 1, "VALID", "NHWC", None)
            plan = ConvPlan(geometry, "forward", x.dtype, finite_filters=bool(np.isfinite(w).all()))
            self.plans[rows.shape] = (plan, plan.pack(w.reshape(1, 1, *w.shape)))
        plan, packed = self.plans[rows.shape]
        y = buffers.take((*x.shape[:-1], w.shape[1]), x.dtype)
        relu = layer.activation is activations.relu
        plan.run(rows, packed, y.reshape(1, 1, -1, w.shape[1]), self.bias, relu)
        return [y if relu or layer.activation is activations.linear else layer._activate(y)[0]]


class _PadStep(_Step):
    """ZeroPadding2D (channels_last) into a kept buffer: the borders zeroed, the image copied in."""

    def __init__(self, layer, inputs, outputs):
        super().__init__(inputs, outputs)
        self.layer = layer

    def __call__(self, args, buffers):
        x = args[0]
        (top, bottom), (left, right) = self.layer.padding
        n, h, w, c = x.shape
        y = buffers.take((n, h + top + bottom, w + left + right, c), x.dtype)
        y[:, :top] = 0
        y[:, top + h:] = 0
        y[:, top:top + h, :left] = 0
        y[:, top:top + h, left + w:] = 0
        y[:, top:top + h, left:left + w] = x
        return [y]


class _AffineStep(_Step):
    """A BatchNormalization that follows no convolution (channels last), and its activation."""

    def __init__(self, bn, inputs, outputs, activation):
        super().__init__(inputs, outputs)
        self.scale, self.shift = _bn_affine(bn)
        self.activation = activation

    def __call__(self, args, buffers):
        x = args[0]
        dtype = np.float64 if x.dtype == np.float64 else np.float32
        y = buffers.take(x.shape, np.result_type(x, dtype))
        np.multiply(x, self.scale.astype(dtype), out=y)
        y += self.shift.astype(dtype)
        return [_clamp(y, self.activation)]


class _AddStep(_Step):
    """Add of any number of inputs, with the ReLU after it, in one output buffer."""

    def __init__(self, inputs, outputs, activation):
        super().__init__(inputs, outputs)
        self.activation = activation

    def __call__(self, args, buffers):
        if len({a.shape for a in args}) > 1 or len({a.dtype for a in args}) > 1:
            y = args[0]
            for a in args[1:]:
                y = y + a  # broadcasting and type promotion as the Add layer
        else:
            y = buffers.take(args[0].shape, args[0].dtype)
            if len(args) > 1:
                np.add(args[0], args[1], out=y)
            else:
                np.copyto(y, args[0])
            for a in args[2:]:
                y += a
        return [_clamp(y, self.activation)]


class InferenceModel:
    """``InferenceModel(model)``: a callable ``f(x) -> outputs`` computing ``model.predict_on_batch(x)``
    with BatchNormalization folded into the convolutions and ReLU/ReLU6 into their epilogue
    (see the module's docstring).  ``model`` is a built Functional or Sequential model."""

    def __init__(self, model):
        self.model = model
        self._graphs = {}
        self._local = threading.local()  # each thread's _Buffers

    def _steps_for(self, shape):
        graph = self.model._graph_for(shape)
        if not isinstance(graph, Graph):
            raise TypeError(f"InferenceModel: model {self.model.name!r} is a subclassed model; "
                            "InferenceModel takes Functional and Sequential models")
        if id(graph) not in self._graphs:
            steps = _fold(graph)
            self._graphs[id(graph)] = (graph, steps, _last_reads(steps, graph))
        return self._graphs[id(graph)][:2]

    def __call__(self, x):
        return self.run(x)

    def run(self, x, step_seconds=None):
        """The model's outputs for ``x`` (as calling the InferenceModel); with a list
        ``step_seconds``, also the ``(step, seconds)`` of each step appended to it (a profile:
        see benchmarks/bench_networks.py --profile)."""
        outputs = self.run_list(x if isinstance(x, (list, tuple)) else [x], step_seconds)
        return outputs[0] if len(outputs) == 1 else outputs

    def run_list(self, arrays, step_seconds=None):
        """The list of the model's outputs for the list of its inputs ``arrays``."""
        arrays = [np.asarray(a, dtype=self.model.dtype) for a in arrays]  # as predict_on_batch
        graph, steps = self._steps_for(arrays[0].shape)
        if len(arrays) != len(graph.inputs):
            raise ValueError(f"InferenceModel: model {self.model.name!r} takes {len(graph.inputs)} inputs; "
                             f"received {len(arrays)}")
        last_reads = self._graphs[id(graph)][2]
        buffers = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = _Buffers()
        values = {id(t): a for t, a in zip(graph.inputs, arrays)}
        try:  # on an error too, the buffers go back to the free lists
            for step, dead in zip(steps, last_reads):
                args = [values[i] for i in step.inputs]
                if isinstance(step, _LayerStep):  # pinned for the rest of the call
                    buffers.pinned.update(id(a) for a in args if id(a) in buffers.owned)
                buffers.dying = {id(values[t]) for t in dead} - buffers.pinned
                buffers.dying &= buffers.owned.keys()
                if step_seconds is None:
                    outs = step(args, buffers)
                else:
                    start = time.perf_counter()
                    outs = step(args, buffers)
                    step_seconds.append((step, time.perf_counter() - start))
                kept = {id(o) for o in outs}
                for t in dead:
                    a = values.pop(t)
                    if id(a) in buffers.dying and id(a) not in kept:
                        buffers.give(a)
                values.update(zip(step.outputs, outs))
            outputs = [values[id(t)] for t in graph.outputs]
        except BaseException:
            buffers.finish([])
            raise
        return buffers.finish(outputs)


def _last_reads(steps, graph):
    """For each step, the tensors (ids) that no later step reads and that are not outputs."""
    last = {}
    for i, step in enumerate(steps):
        for t in step.inputs:
            last[t] = i
    keep = {id(t) for t in graph.outputs}
    dead = [[] for _ in steps]
    for t, i in last.items():
        if t not in keep:
            dead[i].append(t)
    return dead


def _fold(graph):
    """The graph's nodes as steps, with Conv2D/DepthwiseConv2D -> BatchNormalization -> ReLU chains,
    Conv2D -> BatchNormalization -> Add(with one other tensor) -> ReLU chains (and Add -> ReLU)
    merged into one step each.  A step that takes in an Add runs where the Add is: the Add's
    other input is computed by then."""
    keep = {id(t) for t in graph.outputs}
    readers = {}
    for node in graph.nodes:
        for t in node.inputs:
            readers.setdefault(id(t), []).append(node)

    def sole_reader(node, kind):
        """The node reading ``node``'s only output, when it is the only reader and of ``kind``."""
        if len(node.outputs) != 1 or id(node.outputs[0]) in keep:
            return None
        nodes = readers.get(id(node.outputs[0]), [])
        if len(nodes) != 1 or nodes[0].training or len(nodes[0].inputs) != 1:
            return None
        return nodes[0] if kind(nodes[0].layer) else None

    def inference_bn(layer):
        axis = getattr(layer, "axis", None)
        return isinstance(layer, BatchNormalization) and axis in (-1, 3) and layer.built

    def folds_activation(node):
        return sole_reader(node, lambda layer: _activation_of(layer) is not None)

    def residual_add(node):
        """The Add of two distinct tensors that alone reads ``node``'s only output."""
        if len(node.outputs) != 1 or id(node.outputs[0]) in keep:
            return None
        nodes = readers.get(id(node.outputs[0]), [])
        if len(nodes) != 1 or type(nodes[0].layer) is not Add or len(nodes[0].inputs) != 2 \
                or id(nodes[0]) in deferred:
            return None
        return nodes[0]

    def plannable(layer, kind):
        own = getattr(layer, "activation", None)
        return type(layer) is kind and layer.data_format == "channels_last" and own in (activations.linear,
                                                                                          activations.relu)

    def channels_last_padding(layer):
        return type(layer) is ZeroPadding2D and layer.data_format == "channels_last"

    steps, merged, deferred = [], set(), {}  # deferred: id(Add node) -> the step that runs there
    padded = {}  # id(Conv2D node) -> (the input of the ZeroPadding2D before it, its padding)
    for node in graph.nodes:
        if id(node) in merged:
            if id(node) in deferred:
                steps.append(deferred.pop(id(node)))
            continue
        layer, last, activation, bn = node.layer, node, None, None
        own = getattr(layer, "activation", None)
        conv = plannable(layer, Conv2D)
        depthwise = plannable(layer, DepthwiseConv2D)
        if channels_last_padding(layer) and not node.training:
            reader = sole_reader(node, lambda lay: (plannable(lay, Conv2D) and lay._padding == "VALID")
                                 or (plannable(lay, DepthwiseConv2D) and lay.padding == "valid"))
            if reader is not None:  # the zeros become the convolution's own padding
                padded[id(reader)] = (node.inputs[0], layer.padding)
                continue
        source, pads = padded.get(id(node), (node.inputs[0], None))
        if (conv or depthwise) and own is activations.relu:
            activation = "relu"  # the layer's own: nothing after it folds past the clamp
        elif conv or depthwise:
            bn_node = sole_reader(node, inference_bn)
            if bn_node is not None:
                bn, last = bn_node.layer, bn_node
            act_node = folds_activation(last)
            if act_node is not None:
                activation, last = _activation_of(act_node.layer), act_node
        add_node = residual_add(last) if conv and activation is None else None
        if add_node is not None:
            residual = next(t for t in add_node.inputs if t is not last.outputs[0])
            last = add_node
            act_node = folds_activation(add_node)
            if act_node is not None:
                activation, last = _activation_of(act_node.layer), act_node
            deferred[id(add_node)] = _ConvStep(layer, [id(source), id(residual)], [id(last.outputs[0])],
                                               bn, activation, pads)
            step = None
        elif conv:
            step = _ConvStep(layer, [id(source)], [id(last.outputs[0])], bn, activation, pads)
        elif depthwise:
            step = _DepthwiseStep(layer, [id(source)], [id(last.outputs[0])], bn, activation, pads)
        elif inference_bn(layer) and not node.training:
            act_node = folds_activation(node)
            if act_node is not None:
                activation, last = _activation_of(act_node.layer), act_node
            step = _AffineStep(layer, [id(node.inputs[0])], [id(last.outputs[0])], activation)
        elif channels_last_padding(layer):
            step = _PadStep(layer, [id(node.inputs[0])], [id(node.outputs[0])])
        elif type(layer) is Dense and layer.built:
            step = _DenseStep(node)
        elif type(layer) is Add:
            act_node = folds_activation(node)
            if act_node is not None:
                activation, last = _activation_of(act_node.layer), act_node
            step = _AddStep([id(t) for t in node.inputs], [id(last.outputs[0])], activation)
        else:
            step = _LayerStep(node)
        if step is not None:
            steps.append(step)
        current = node
        while current is not last:
            current = readers[id(current.outputs[0])][0]
            merged.add(id(current))
    return steps
