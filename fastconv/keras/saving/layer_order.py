"""The order in which Keras lists a functional model's layers, which its files depend on.

Keras orders a functional model's layers by depth (the longest path to an output, deepest
first), and within a depth by when a depth-first walk from the outputs first reached them.
Files rely on that order: a .keras file numbers its layers per class in it (``layers/conv2d``,
``layers/conv2d_1``...), a legacy .h5 file matches layers by it, and the optimizer's variables
follow the trainable weights in it.  ``Graph.layers`` is that order (fastconv.keras.graph); here
are the weights in it.
"""


def keras_layers(model, operations=False):
    """``model.layers`` in Keras's order (Sequential and subclassed models: as they are);
    ``operations``: the graph's keras.ops nodes too (what a configuration lists).  A functional
    model's graph already lists its layers in Keras's order (Graph.layers)."""
    from fastconv.keras import models

    if not isinstance(model, models.Model) or getattr(model, "_subclassed", False) or model._is_sequential \
            or not model.outputs:
        return list(model.layers)
    return list(model._graph.layers if operations else model.layers)


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
