"""The graph of layer calls behind Sequential and functional models, and how it runs.

``Graph(inputs, outputs)`` collects the nodes (layer calls) between symbolic inputs and outputs
in an order where every node comes after the nodes it reads.  ``run`` computes the outputs from
arrays, dropping each intermediate array as soon as its last reader is done; with
``record=True`` it also keeps, per node, the cache that the layer's ``backward`` needs (the
"tape").  ``backprop`` walks the tape backwards: it gives each node the gradient of its output,
sums the gradients of tensors read by several nodes (a residual connection), frees each cache
once used, and asks a layer for the gradient of its input only when something before it has
weights to train.

``trace_call`` records the call() of a custom layer or a subclassed model the same way: run on
symbolic inputs, its layer calls and ops (fastconv.keras.ops) become the nodes of a Graph.
"""
from typing import NamedTuple, Optional

import numpy as np

from fastconv.keras.layers.base import KerasTensor, tracing
from fastconv.keras.layers.core import InputLayer


def _check_tracked(owner, graph):
    """Refuse a call() that uses a layer its owner does not hold (one created inside call()):
    its weights would be outside the owner's weights, never saved nor trained."""
    tracked, pending = set(), [owner]
    while pending:
        for sub in pending.pop()._sublayers():
            if id(sub) not in tracked:
                tracked.add(id(sub))
                pending.append(sub)
    for layer in graph.layers:
        if not (layer._is_operation or isinstance(layer, InputLayer) or id(layer) in tracked):
            raise ValueError(f'the call() of "{owner.name}" ({type(owner).__name__}) uses layer "{layer.name}" '
                             f"({type(layer).__name__}), which it does not hold as an attribute: its weights would "
                             "be neither tracked, saved nor trained. Create the layers in __init__() (or build()) "
                             "and keep them as attributes (alone, or in lists or dicts)")


class Tape(list):
    """What ``Graph.run(record=True)`` keeps: (node, cache) per node, and the graph it ran."""

    def __init__(self, graph):
        super().__init__()
        self.graph = graph


class TracedCall(NamedTuple):
    """call() traced for one input signature: its graph, whether it returns a list, and (for a
    call() that could not be traced) the error, with ``graph`` None."""
    graph: Optional["Graph"]
    many: bool = False
    error: Optional[Exception] = None


def trace_call(layer, shapes, dtypes, training, strict=False):
    """Run ``layer.call`` on symbolic inputs of ``shapes`` (batch None) and ``dtypes``.

    An error raised by call() on symbolic tensors (NumPy asked for values, an unsupported
    operation...) gives a TracedCall without graph (or is raised, with ``strict``).
    """
    inputs = [InputLayer(batch_shape=shape, dtype=dtype if dtype in ("float32", "float64") else layer.dtype,
                         name=f"{layer.name}_input" + (f"_{i}" if len(shapes) > 1 else "")).output
              for i, (shape, dtype) in enumerate(zip(shapes, dtypes))]
    losses = []
    try:
        with tracing(losses, inputs):
            out = layer._invoke_call(inputs if layer._multiple_inputs else inputs[0], training)
        many = isinstance(out, (list, tuple))
        outputs = list(out) if many else [out]
        for t in outputs:
            if not isinstance(t, KerasTensor):
                raise TypeError(f'the call() of layer "{layer.name}" ({type(layer).__name__}) returned '
                                f"{type(t).__name__}, not a tensor computed from its inputs")
        graph = Graph(inputs, outputs, layer.name, losses=losses)
        _check_tracked(layer, graph)
        return TracedCall(graph, many)
    except Exception as exc:  # noqa: BLE001 -- any failure of call() on symbolic tensors
        if strict:
            raise
        return TracedCall(None, error=exc)


def _producer(tensor):
    layer, node_index, _ = tensor._keras_history
    return layer._inbound_nodes[node_index]


class Graph:
    def __init__(self, inputs, outputs, owner, losses=()):
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        # Scalar tensors that a traced call() gave add_loss(): computed with the outputs, added to
        # the training loss, each given the gradient 1 in backprop.
        self.losses = list(losses)
        for t in self.inputs + self.outputs + self.losses:
            if not isinstance(t, KerasTensor) or t._keras_history is None:
                raise TypeError(f'Model "{owner}": inputs and outputs must be symbolic tensors from Input() and '
                                f"layer calls; received {t!r}")
        for t in self.inputs:
            if not isinstance(t._keras_history[0], InputLayer):
                raise ValueError(f'Model "{owner}": inputs must be the tensors of Input() (or InputLayer); received '
                                 f'the output of layer "{t._keras_history[0].name}"')
        input_ids = {id(t) for t in self.inputs}
        order, seen = [], set()

        def visit(node):
            # Depth first, parents before children: the order in which the nodes can run.
            if id(node) in seen:
                return
            seen.add(id(node))
            if isinstance(node.layer, InputLayer):
                if id(node.outputs[0]) not in input_ids:
                    raise ValueError(f'Model "{owner}": graph disconnected: the outputs depend on input '
                                     f'"{node.layer.name}", which is not among the model\'s inputs')
            else:
                for t in node.inputs:
                    visit(_producer(t))
            order.append(node)

        for t in self.outputs + self.losses:
            visit(_producer(t))
        self.all_nodes = order
        # Nodes that compute (the input layers only hand over the data).
        self.nodes = [n for n in order if not isinstance(n.layer, InputLayer)]
        self.readers = {}
        for node in self.nodes:
            for t in node.inputs:
                self.readers[id(t)] = self.readers.get(id(t), 0) + 1
        self.output_nodes = [_producer(t) for t in self.outputs]

    def output_shapes(self, input_shapes):
        """The shapes of the outputs for inputs of ``input_shapes``, each layer's output shape
        computed from its inputs' (a model built for (None, None, 3) images, given 32x32 ones,
        says what its outputs are at that size)."""
        shapes = self.tensor_shapes(input_shapes)
        return [shapes[id(t)] for t in self.outputs]

    def tensor_shapes(self, input_shapes):
        """{id(tensor): shape} of every tensor of the graph for inputs of ``input_shapes``."""
        shapes = {id(t): tuple(s) for t, s in zip(self.inputs, input_shapes)}
        for node in self.nodes:
            ins = [shapes[id(t)] for t in node.inputs]
            if node.layer._is_operation:
                specs = [(s, np.dtype(t.dtype)) for s, t in zip(ins, node.inputs)]
                out = [node.layer.output_spec(_operand_specs(node.layer, specs))[0]]
            else:
                out = node.layer.compute_output_shape(ins if node.layer._multiple_inputs else ins[0])
                out = out if isinstance(out, list) else [out]
            for t, s in zip(node.outputs, out):
                shapes[id(t)] = tuple(s)
        return shapes

    @property
    def layers(self):
        """The layers (input layers included) in Keras's order, which ``model.layers``,
        ``summary``, ``get_weights`` and weight files by order follow: by decreasing depth (the
        longest path to an output), and within a depth in the order a depth-first walk from the
        outputs, inputs in argument order, first reaches them (Keras's ``map_graph``)."""
        first_reached = {}

        def walk(node, on_path):
            first_reached.setdefault(id(node.layer), len(first_reached))
            if id(node) in on_path:
                return
            on_path.add(id(node))
            if not isinstance(node.layer, InputLayer):
                for t in node.inputs:
                    walk(_producer(t), on_path)

        visited = set()
        for t in self.outputs + self.losses:     # the ops of added losses after the outputs' own
            walk(_producer(t), visited)
        # Depths from the outputs back: a node is one deeper than the deepest node reading it;
        # a layer called several times takes the depth of its deepest call.
        depth = {}
        for node in reversed(self.all_nodes):
            d = depth.setdefault(id(node), 0)
            if not isinstance(node.layer, InputLayer):
                for t in node.inputs:
                    parent = _producer(t)
                    depth[id(parent)] = max(depth.get(id(parent), 0), d + 1)
        layer_depth, layers = {}, {}
        for node in self.all_nodes:
            key = id(node.layer)
            layers[key] = node.layer
            layer_depth[key] = max(layer_depth.get(key, 0), depth[id(node)])
        order = sorted(layers, key=lambda key: (-layer_depth[key], first_reached[key]))
        return [layers[key] for key in order]

    def run(self, arrays, training=False, record=False, want_logits=False, context=None, observer=None,
            loss_values=None):
        """(outputs, tape, logits): ``tape`` is the list of (node, cache) when ``record``; ``logits``
        holds, per output, the pre-activation of a sigmoid/softmax output layer (else None)
        when ``want_logits``.  ``context`` is added to the message of a layer's ValueError;
        ``observer(node, outputs)`` sees every node's outputs; the values of the graph's losses
        (add_loss) are appended to the list ``loss_values``, when given."""
        values = {id(t): a for t, a in zip(self.inputs, arrays)}
        pending = dict(self.readers)
        keep = {id(t) for t in self.outputs + self.losses}
        tape = Tape(self) if record else None
        logits = {}
        for node in self.nodes:
            layer = node.layer
            args = [values[id(t)] for t in node.inputs]
            for t in node.inputs:
                pending[id(t)] -= 1
                if pending[id(t)] == 0 and id(t) not in keep:
                    del values[id(t)]
            x = args if layer._multiple_inputs else args[0]
            node_training = training if node.training is None else node.training
            try:
                layer._check_input([a.shape for a in args])
                wants_cache = record or (want_logits and getattr(layer, "produces_logits", False)
                                         and node in self.output_nodes)
                if wants_cache:
                    y, cache = layer.forward(x, node_training)
                    if record:
                        tape.append((node, cache))
                    if want_logits and getattr(layer, "produces_logits", False):
                        logits[id(node)] = layer.logits(cache)
                else:
                    y = layer._invoke_call(x, node_training)
            except ValueError as exc:
                # Say which model and which data the failing layer was part of (once, not at
                # every level of nested models).
                if context is None or getattr(exc, "_fastconv_context", False):
                    raise
                error = ValueError(f"{exc}\n({context})")
                error._fastconv_context = True
                raise error from None
            outs = y if len(node.outputs) > 1 else [y]
            if observer is not None:
                observer(node, outs)
            for t, value in zip(node.outputs, outs):
                values[id(t)] = value
        outputs = [values[id(t)] for t in self.outputs]
        if loss_values is not None:
            loss_values.extend(values[id(t)] for t in self.losses)
        output_logits = [logits.get(id(node)) for node in self.output_nodes]
        return outputs, tape, output_logits

    def _requires_grad(self, inputs_need_grad):
        """The tensors whose gradient is needed: those computed from a trainable weight (or from
        an input whose gradient is asked for)."""
        needed = {id(t) for t in self.inputs} if inputs_need_grad else set()
        for node in self.nodes:
            if node.layer._differentiable_variables() or any(id(t) in needed for t in node.inputs):
                needed.update(id(t) for t in node.outputs)
        return needed

    def backprop(self, tape, output_grads, wrt_logits=None, inputs_need_grad=False):
        """(gradients of the inputs, {variable: gradient}) from the gradients of the outputs.

        ``wrt_logits[i]`` says that output i's gradient is that of its logits (its layer's
        activation is then skipped).  The tape is consumed (emptied) as it is walked.
        """
        if tape.graph is not self:
            # A subclassed model has one graph per trace of its call(): the tape knows which ran.
            return tape.graph.backprop(tape, output_grads, wrt_logits, inputs_need_grad)
        needed = self._requires_grad(inputs_need_grad)
        grads = {}
        from_logits = set()
        flags = wrt_logits or [False] * len(self.outputs)
        for t, g, node, flag in zip(self.outputs, output_grads, self.output_nodes, flags):
            grads[id(t)] = g
            if flag:
                from_logits.add(id(node))
        for t in self.losses:      # d(total loss) / d(an added loss) = 1
            one = np.ones((), dtype=t.dtype)
            grads[id(t)] = grads[id(t)] + one if id(t) in grads else one
        weight_grads = {}
        while tape:
            node, cache = tape.pop()
            g = [grads.pop(id(t), None) for t in node.outputs]
            if getattr(node.layer, "activity_regularizer", None) is not None:
                # The gradient of the layer's activity penalty joins the one of its output.
                g = [node.layer.add_activity_gradient(cache, g[0], id(node) in from_logits)]
            if all(v is None for v in g):
                continue  # nothing downstream of this node reaches the loss
            layer = node.layer
            need_input = any(id(t) in needed for t in node.inputs)
            grad_out = g[0] if len(g) == 1 else g
            if id(node) in from_logits:
                dx, wgrads = layer.backward_from_logits(cache, grad_out, need_input)
            else:
                dx, wgrads = layer.backward(cache, grad_out, need_input)
            del cache
            for variable, value in wgrads.items():
                weight_grads[variable] = weight_grads[variable] + value if variable in weight_grads else value
            if need_input:
                for t, d in zip(node.inputs, dx if layer._multiple_inputs else [dx]):
                    if id(t) in needed and d is not None:
                        grads[id(t)] = grads[id(t)] + d if id(t) in grads else d
        return [grads.get(id(t)) for t in self.inputs], weight_grads


def _operand_specs(op, tensor_specs):
    """The (shape, dtype) of every operand of an op node, its tensors' given by ``tensor_specs``."""
    from fastconv.keras.ops import operand_spec
    specs = iter(tensor_specs)
    return [next(specs) if v is None else operand_spec(v) for v in op._operands]
