"""fastconv.keras: a Keras-compatible training layer on fastconv's kernels.

Programs written for ``tensorflow.keras`` run with their imports changed::

    from fastconv.keras import Sequential
    from fastconv.keras.layers import Conv2D, MaxPooling2D, Flatten, Dense

and give what Keras gives: same layer names and summaries, same initializers, losses, metrics,
optimizers and training loop.  Convolutions and pooling (and their gradients) run on fastconv's
kernels, everything else on NumPy, in float32.  Each layer has an explicit forward/backward
pair (fastconv.keras.layers); a model records its graph of layers (fastconv.keras.graph) and
trains it (fastconv.keras.trainer).
"""
from fastconv.keras import (
    activations,
    applications,
    backend,
    callbacks,
    config,
    datasets,
    initializers,
    layers,
    losses,
    metrics,
    models,
    ops,
    optimizers,
    preprocessing,
    random,
    utils,
)
from fastconv.keras.layers import Input, Layer
from fastconv.keras.models import Model, Sequential

__all__ = ["Input", "Layer", "Model", "Sequential", "activations", "applications", "backend", "callbacks", "config",
           "datasets", "initializers", "layers", "losses", "metrics", "models", "ops", "optimizers", "preprocessing",
           "random", "utils"]
