"""An optimizer's state in the order of Keras's optimizer variables, and back.

Keras lists an optimizer's variables in the order it creates them: ``iteration`` (int64),
``learning_rate`` (float32, absent with a schedule), then, when built, the slots of the trained
variables, one group per ``add_optimizer_variables`` call, each group variable by variable
(Adam: momentum and velocity of each variable, then every ``velocity_hat``; RMSprop: every
velocity, then every momentum, then every average gradient), then the optimizer's own scalars
(Nadam's ``u_product``).  fastconv's optimizers keep their state per variable
(``state_arrays``: variable by variable, slot by slot, then the scalars); this module maps
one order onto the other.
"""
import numpy as np

from fastconv.keras.saving.layer_order import keras_weights

MAX_ITERATIONS = 2 ** 62

# Keras's groups of slots (one add_optimizer_variables call each) where an optimizer makes
# several; any other optimizer creates all its slots in one call.
_KERAS_SLOT_GROUPS = {"Adam": (("momentum", "velocity"), ("velocity_hat",)),
                      "RMSprop": (("velocity",), ("momentum",), ("average_gradient",))}
# Slots that Keras's base optimizer creates before the optimizer's own, each in its own call.
_BASE_SLOTS = ("average", "gradient_accumulator")


def _groups(optimizer, names):
    groups = [[n] for n in _BASE_SLOTS if n in names]
    rest = [n for n in names if n not in _BASE_SLOTS]
    table = next((_KERAS_SLOT_GROUPS[c.__name__] for c in type(optimizer).__mro__ if c.__name__ in _KERAS_SLOT_GROUPS),
                 ((),))
    for group in table:
        groups.append([n for n in group if n in rest])
    groups.append([n for n in rest if not any(n in g for g in table)])
    return [g for g in groups if g]


class OptimizerState:
    """``names`` and ``arrays`` of ``model.optimizer``'s variables in Keras's order.

    ``build=False`` leaves an unbuilt optimizer as it is (Keras then has iteration and learning
    rate only); otherwise the optimizer is built on the model's trainable weights, as Keras does
    when it loads a compiled model.
    """

    def __init__(self, model, build=True):
        optimizer = self.optimizer = model.optimizer
        # Keras builds its optimizer on the trainable weights in its order of the layers.
        trainable = keras_weights(model, True)
        if build and trainable:
            optimizer.build(trainable)
        entries = optimizer.variables          # fastconv's order: variable by variable
        n_lr = 1 if len(entries) > 1 and entries[1][0] == "learning_rate" else 0
        if not optimizer.built:
            self._order = list(range(1 + n_lr))
        else:
            self._order = [0] + list(range(1, 1 + n_lr)) + self._slot_order(entries, trainable)
            self._order += [i for i in range(len(entries)) if i not in set(self._order)]   # own scalars
        self.names = [entries[i][0] for i in self._order]
        self.arrays = [np.asarray(entries[i][1]) for i in self._order]

    def _slot_order(self, entries, trainable):
        """Indices of the slot entries in Keras's order of slot groups."""
        if not trainable:
            return []
        slot_names = list(self.optimizer._state(trainable[0]))
        index = {name: i for i, (name, _) in enumerate(entries)}
        prefixes = [v.path.replace("/", "_") for v in trainable]
        try:
            return [index[f"{prefixes[i]}_{slot}"] for group in _groups(self.optimizer, slot_names)
                    for i in range(len(trainable)) for slot in group]
        except KeyError as exc:
            raise ValueError(f"optimizer {self.optimizer.name}: it has no state {exc} for a trained variable; its "
                             "state cannot be written in Keras's order") from None

    def check(self, values, error):
        """Raise ``error(index, message)`` for a value that no optimizer state may hold."""
        iterations = np.asarray(values[0]).item()
        if not (np.isfinite(iterations) and 0 <= iterations <= MAX_ITERATIONS and float(iterations) == int(iterations)):
            raise error(0, f"the optimizer's iteration count is {iterations}; it must be an integer in "
                           f"[0, {MAX_ITERATIONS}]")
        for k, (name, value) in enumerate(zip(self.names, values)):
            if k and value.ndim == 0 and not np.isfinite(value):
                raise error(k, f"the optimizer's {name} is {float(value)}; it must be finite")
            if name == "learning_rate" and value < 0:
                raise error(k, f"the learning rate is {float(value)}; it must be >= 0")

    def load(self, values):
        """Load ``values`` (checked, in Keras's order) into the optimizer."""
        store = {str(i): value for i, value in zip(self._order, values)}
        self.optimizer.load_own_variables(store)
