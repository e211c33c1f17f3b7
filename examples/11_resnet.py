"""Lecture: residual learning (He et al., 2015).  A residual block computes y = relu(F(x) + x):
its layers learn the residual F(x) = H(x) - x, the difference between the mapping H the block
should produce and its input, instead of H itself.  Doing nothing (H = identity) is then the
easy case, F = 0, and the shortcut carries the signal and the gradient past every block.  On it,
ResNet-34 (basic blocks of two 3x3 convolutions, stacks of 3, 4, 6 and 3) and its summary.

    python examples/11_resnet.py [--out out/11_resnet] [--image-size 224] [--batch 2]

The weights are random: this is about the architecture.
"""
import argparse
import os
import time

import numpy as np

import fastconv.keras
from fastconv.keras.utils import plot_model, set_random_seed


def residual_block(x, filters, stride=1, name=None, keras=fastconv.keras):
    """relu(F(x) + shortcut(x)), F = conv3x3-BN-ReLU-conv3x3-BN; the shortcut is x itself, or a
    strided 1x1 convolution (and BN) when the block changes the size or the width."""
    layers = keras.layers
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_proj")(x)
        shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.Activation("relu", name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)   # F(x) = H(x) - x
    y = layers.Add(name=f"{name}_add")([y, shortcut])       # H(x) = F(x) + x
    return layers.Activation("relu", name=f"{name}_out")(y)


def resnet34(input_shape=(224, 224, 3), classes=1000, keras=fastconv.keras):
    """ResNet-34: a 7x7/2 convolution, 3x3/2 max pooling, 16 basic blocks, global pooling, softmax."""
    layers = keras.layers
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(64, 7, strides=2, padding="same", use_bias=False, name="conv1")(inputs)
    x = layers.BatchNormalization(name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    for stage, (filters, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), start=2):
        for block in range(1, blocks + 1):
            stride = 2 if block == 1 and stage > 2 else 1
            x = residual_block(x, filters, stride, name=f"conv{stage}_block{block}", keras=keras)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="resnet34")


def identity_when_residual_is_zero(size=8, filters=16, seed=0):
    """A block whose residual branch is zero (its last BN's gamma and beta at 0) outputs
    relu(x): for x >= 0 exactly its input.  Returns the largest |block(x) - x|."""
    inputs = fastconv.keras.Input((size, size, filters))
    block = fastconv.keras.Model(inputs, residual_block(inputs, filters, name="block"))
    bn2 = block.get_layer("block_bn2")
    bn2.set_weights([np.zeros_like(w) if i < 2 else w for i, w in enumerate(bn2.get_weights())])
    x = np.random.default_rng(seed).random((2, size, size, filters), dtype=np.float32)
    return float(np.max(np.abs(block.predict(x, verbose=0) - x)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=2, help="images in the timed forward pass")
    parser.add_argument("--out", default=os.path.join("out", "11_resnet"))
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    set_random_seed(0)

    gap = identity_when_residual_is_zero()
    print(f"residual branch at zero: the block is the identity on x >= 0 (max |block(x) - x| = {gap:.1e})")
    model = resnet34((args.image_size, args.image_size, 3))
    lines = []
    model.summary(print_fn=lines.append)
    print("\n".join(lines))
    plot_model(model, os.path.join(args.out, "resnet34.png"), show_shapes=True)
    x = np.random.default_rng(0).random((args.batch, args.image_size, args.image_size, 3), dtype=np.float32)
    model.predict(x[:1], verbose=0)  # first call: plans and buffers
    t0 = time.perf_counter()
    probabilities = model.predict(x, verbose=0)
    seconds = time.perf_counter() - t0
    print(f"forward pass of {args.batch} images of {args.image_size}x{args.image_size}: {seconds * 1e3:.0f} ms")
    return {"model": model, "summary": "\n".join(lines), "params": model.count_params(),
            "identity_gap": gap, "probabilities": probabilities, "seconds": seconds}


if __name__ == "__main__":
    main()
