"""Merging layers: ``Add`` (the join of a residual block)."""
from fastconv.keras.layers.base import Layer

__all__ = ["Add"]


def _unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting stretched, back to ``shape``."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    axes = tuple(i for i, d in enumerate(shape) if d == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


class Add(Layer):
    """The element-wise sum of a list of inputs of the same shape: ``Add()([x, shortcut])``."""

    _multiple_inputs = True

    def compute_output_shape(self, input_shapes):
        if len(input_shapes) < 2:
            raise ValueError(f'Add "{self.name}": takes a list of at least 2 inputs. Received {len(input_shapes)}')
        out = list(input_shapes[0])
        for shape in input_shapes[1:]:
            if len(shape) != len(out):
                raise ValueError(f'Add "{self.name}": inputs have incompatible shapes. Received shapes {input_shapes}')
            for i, d in enumerate(shape):
                if out[i] is None or out[i] == 1:
                    out[i] = d if d is not None else out[i]
                elif d is not None and d != 1 and d != out[i]:
                    raise ValueError(f'Add "{self.name}": inputs have incompatible shapes. Received shapes {input_shapes}')
        return tuple(out)

    def _check_input(self, shapes):
        self.compute_output_shape([tuple(s) for s in shapes])

    def forward(self, inputs, training=False):
        y = inputs[0]
        for x in inputs[1:]:
            y = y + x
        return y, [x.shape for x in inputs]

    def backward(self, shapes, grad, need_input_grad=True):
        return [_unbroadcast(grad, shape) for shape in shapes], {}
