"""The order in which Keras lists a functional model's layers, which its files depend on.

Keras orders a functional model's layers by depth (the longest path to an output, deepest
first), and within a depth by when a depth-first walk from the outputs first reached them.
Files rely on that order: a .keras file numbers its layers per class in it (``layers/conv2d``,
``layers/conv2d_1``...), a legacy .h5 file matches layers by it, and the optimizer's variables
follow the trainable weights in it.  fastconv's graph lists layers in the order its own walk
runs them, which differs for branching graphs (a ResNet's shortcut convolution), so the
saving code asks for Keras's order here.
"""


def keras_layers(model, operations=False):
    """``model.layers`` in Keras's order (Sequential and subclassed models: as they are);
    ``operations``: the graph's keras.ops nodes too (what a configuration lists)."""
    from fastconv.keras import models

    if not isinstance(model, models.Model) or getattr(model, "_subclassed", False) or model._is_sequential \
            or not model.outputs:
        return list(model.layers)
    inputs = {id(t) for t in model.inputs}
    finished, in_progress, post_order, first_seen = set(), set(), [], {}
    for output in model.outputs:
        # Keras's recursive walk, iteratively: a node gets its traversal index when first
        # reached, joins post_order once all its inputs have.
        stack = [(output, False)]
        while stack:
            tensor, expanded = stack.pop()
            layer, node_index, _ = tensor._keras_history
            node = layer._inbound_nodes[node_index]
            if expanded:
                in_progress.discard(id(node))
                finished.add(id(node))
                post_order.append(node)
                continue
            if id(node) in finished or id(node) in in_progress:
                continue
            if node.inputs and id(tensor) in inputs:
                finished.add(id(node))
                continue
            first_seen.setdefault(id(layer), len(first_seen))
            in_progress.add(id(node))
            stack.append((tensor, True))
            stack.extend((t, False) for t in reversed(node.inputs))
    in_graph = {id(n) for n in post_order}
    node_depth, layer_depth, layers = {}, {}, {}
    for node in reversed(post_order):
        depth = max(node_depth.setdefault(id(node), 0), layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = node_depth[id(node)] = depth
        layers[id(node.layer)] = node.layer
        for parent in node.parent_nodes:
            if id(parent) in in_graph:
                node_depth[id(parent)] = max(depth + 1, node_depth.get(id(parent), 0))
    listed = model._graph.layers if operations else model.layers
    own = {id(layer) for layer in listed}
    ordered = sorted(layer_depth, key=lambda i: (-layer_depth[i], first_seen.get(i, -1)))
    return [layers[i] for i in ordered if i in own] + [layer for layer in listed if id(layer) not in layers]


def keras_weights(layer, trainable):
    """A layer's trainable (or non-trainable) weights in Keras's order: its own, then those of
    the layers it holds, a functional model's in Keras's order of its layers."""
    from fastconv.keras import models

    if not isinstance(layer, models.Model) or getattr(layer, "_subclassed", False):
        return layer.trainable_weights if trainable else layer.non_trainable_weights
    if not layer.trainable:
        return [] if trainable else _unique(w for inner in keras_layers(layer) for w in _every_weight(inner))
    return _unique(w for inner in keras_layers(layer) for w in keras_weights(inner, trainable))


def _every_weight(layer):
    """All of a layer's weights, as Keras's ``weights``: trainable ones first, layer by layer."""
    from fastconv.keras import models

    if isinstance(layer, models.Model) and not getattr(layer, "_subclassed", False):
        return [w for inner in keras_layers(layer) for w in _every_weight(inner)]
    weights = layer.weights
    return [w for w in weights if w.trainable] + [w for w in weights if not w.trainable]


def _unique(weights):
    out, seen = [], set()
    for w in weights:
        if id(w) not in seen:
            seen.add(id(w))
            out.append(w)
    return out
