"""The ``activation=`` argument that Dense and the convolutions share: applied after the layer's
affine map, with its derivative and the logits path of a cross-entropy loss; and their
``activity_regularizer``, a penalty on the output."""
from fastconv.keras import activations, regularizers


class WithActivation:
    """An ``activation`` applied after the layer's affine map, and its derivative.

    The layer's forward cache is a NamedTuple with fields ``y`` (the output) and ``logits``
    (the pre-activation, kept only for sigmoid and softmax, whose losses take it as logits, and
    for the activations whose derivative needs it: ``activations.needs_input``).

    ``backward`` turns dL/dy into dL/dz through the activation and hands it to
    ``backward_from_logits``, which a model calls directly when the loss has given the gradient of
    the logits z (a cross-entropy on a sigmoid or softmax output, as Keras computes it).
    """

    def _set_activation(self, activation):
        self.activation = activations.get(activation)
        self._activation_grad = activations.gradient(self.activation)

    @property
    def produces_logits(self):
        return self.activation in activations.LOGIT_ACTIVATIONS

    def logits(self, cache):
        """The pre-activation z of a forward pass when the activation is sigmoid or softmax."""
        return cache.logits

    def _activate(self, z):
        """(y, z kept as logits or None)."""
        keep = self.produces_logits or activations.needs_input(self.activation)
        y = self.activation(z)
        self._record_activity(y)
        return y, (z if keep else None)

    # ----------------------------------------------------------------- activity regularizer
    activity_regularizer = None

    def _set_activity_regularizer(self, activity_regularizer):
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self._activity_losses = []

    def _record_activity(self, y):
        """The activity penalty of this call, as Keras adds it: regularizer(output) / batch size."""
        if self.activity_regularizer is not None:
            self._activity_losses = [self.activity_regularizer(y) / max(len(y), 1)]

    def add_activity_gradient(self, cache, grad, wrt_logits):
        """``grad`` (of the output, or of the logits when ``wrt_logits``; None: nothing reached
        the output) plus the gradient of the activity penalty of the forward pass of ``cache``."""
        y = cache.y
        extra = self.activity_regularizer.gradient(y) / y.dtype.type(max(len(y), 1))
        if wrt_logits:
            extra = self._activation_grad(y, extra, cache.logits)
        return extra if grad is None else grad + extra

    def backward(self, cache, grad, need_input_grad=True):
        y = cache.y
        return self.backward_from_logits(cache, self._activation_grad(y, grad, cache.logits), need_input_grad)
