"""Learning-rate schedules, as ``keras.optimizers.schedules``: functions of the optimizer's step
counter (``optimizer.iterations``, from 0) that give the learning rate of that step.

Every schedule computes in float32, as Keras does (its ``initial_learning_rate`` becomes a float32
tensor and everything else is cast to its dtype), so that the values agree with Keras's to the last
bits.  A schedule of one's own subclasses :class:`LearningRateSchedule` and defines ``__call__(step)``
and ``get_config()``.
"""
import numpy as np

_f = np.float32
_PI = _f(np.pi)


class LearningRateSchedule:
    """Base class: ``schedule(step)`` -> learning rate; ``get_config``/``from_config`` to save it."""

    def __call__(self, step):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must override "
                                  "`__call__(self, step)`.")

    def get_config(self):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must override `get_config()` in "
                                  "order to be serializable.")

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_positive(name, value):
    if value <= 0:
        raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value}")


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``; with ``staircase`` the
    exponent is floored (the rate drops by ``decay_rate`` every ``decay_steps`` steps)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name
        _check_positive("decay_steps", decay_steps)

    def __call__(self, step):
        p = _f(step) / _f(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return _f(self.initial_learning_rate) * np.power(_f(self.decay_rate), p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` up to and including step ``boundaries[0]``, then ``values[1]`` up to
    ``boundaries[1]``, ..., and ``values[-1]`` after the last boundary."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if len(boundaries) != len(values) - 1:
            raise ValueError("The length of boundaries should be 1 less than the length of values. Received: "
                             f"boundaries={boundaries} of length {len(boundaries)}, and values={values} of length "
                             f"{len(values)}.")
        self.boundaries = boundaries
        self.values = values
        self.name = name

    def __call__(self, step):
        # The first boundary not below the step picks the value (step == boundary keeps the lower piece).
        index = int(np.searchsorted(np.asarray(self.boundaries), step, side="left"))
        return _f(self.values[index])

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """From ``initial_learning_rate`` to ``end_learning_rate`` in ``decay_steps`` steps along
    ``(1 - step / decay_steps) ** power``, then constant; with ``cycle`` the decay restarts with
    ``decay_steps`` stretched to the next multiple above the step."""

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0, cycle=False,
                 name="PolynomialDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle
        self.name = name
        _check_positive("decay_steps", decay_steps)

    def __call__(self, step):
        initial, end = _f(self.initial_learning_rate), _f(self.end_learning_rate)
        step, decay_steps = _f(step), _f(self.decay_steps)
        if self.cycle:
            decay_steps = decay_steps * (_f(1) if step == 0 else np.ceil(step / decay_steps))
        else:
            step = min(step, decay_steps)
        p = step / decay_steps
        return (initial - end) * np.power(_f(1) - p, _f(self.power)) + end

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "end_learning_rate": self.end_learning_rate, "power": self.power, "cycle": self.cycle,
                "name": self.name}


class InverseTimeDecay(LearningRateSchedule):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)`` (the quotient floored
    with ``staircase``)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="InverseTimeDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name
        _check_positive("decay_steps", decay_steps)

    def __call__(self, step):
        p = _f(step) / _f(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return _f(self.initial_learning_rate) / (_f(1) + _f(self.decay_rate) * p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


def _cosine(fraction, alpha):
    """``(1 - alpha) * (1 + cos(pi * fraction)) / 2 + alpha``: from 1 at 0 to alpha at 1."""
    return (_f(1) - alpha) * (_f(0.5) * (_f(1) + np.cos(_PI * fraction))) + alpha


class CosineDecay(LearningRateSchedule):
    """Half a cosine from the learning rate down to ``alpha`` times it in ``decay_steps`` steps,
    then constant.  With ``warmup_target``, first a linear warm-up from
    ``initial_learning_rate`` to ``warmup_target`` in ``warmup_steps`` steps, then the cosine from
    ``warmup_target``."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay", warmup_target=None,
                 warmup_steps=0):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = name
        self.warmup_steps = warmup_steps
        self.warmup_target = warmup_target
        _check_positive("decay_steps", decay_steps)

    def __call__(self, step):
        initial, decay_steps, step = _f(self.initial_learning_rate), _f(self.decay_steps), _f(step)
        alpha = _f(self.alpha)
        if self.warmup_target is None:
            return initial * _cosine(min(step, decay_steps) / decay_steps, alpha)
        target, warmup_steps = _f(self.warmup_target), _f(self.warmup_steps)
        step = min(step, decay_steps + warmup_steps)
        if step < warmup_steps:
            return (target - initial) * (step / warmup_steps) + initial
        return target * _cosine((step - warmup_steps) / decay_steps, alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decays with warm restarts (SGDR): the first lasts ``first_decay_steps`` steps, each
    next one ``t_mul`` times longer and starting ``m_mul`` times lower."""

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0, name="SGDRDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.first_decay_steps = first_decay_steps
        self._t_mul = t_mul
        self._m_mul = m_mul
        self.alpha = alpha
        self.name = name
        _check_positive("first_decay_steps", first_decay_steps)

    def __call__(self, step):
        t_mul, m_mul, one = _f(self._t_mul), _f(self._m_mul), _f(1)
        fraction = _f(step) / _f(self.first_decay_steps)
        if t_mul == 1:
            restart = np.floor(fraction)
            fraction = fraction - restart
        else:
            # Restart i begins at the sum of the first i periods, (1 - t_mul^i) / (1 - t_mul).
            restart = np.floor(np.log(one - fraction * (one - t_mul)) / np.log(t_mul))
            elapsed = (one - np.power(t_mul, restart)) / (one - t_mul)
            fraction = (fraction - elapsed) / np.power(t_mul, restart)
        decayed = _f(0.5) * np.power(m_mul, restart) * (one + np.cos(_PI * fraction))
        alpha = _f(self.alpha)
        return _f(self.initial_learning_rate) * ((one - alpha) * decayed + alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "first_decay_steps": self.first_decay_steps,
                "t_mul": self._t_mul, "m_mul": self._m_mul, "alpha": self.alpha, "name": self.name}


_BUILT_IN = {cls.__name__: cls for cls in (ExponentialDecay, PiecewiseConstantDecay, PolynomialDecay,
                                           InverseTimeDecay, CosineDecay, CosineDecayRestarts)}


def serialize(learning_rate_schedule):
    """The schedule as Keras serializes it: ``{"module", "class_name", "config", "registered_name"}``."""
    if not isinstance(learning_rate_schedule, LearningRateSchedule):
        raise TypeError("serialize expects a LearningRateSchedule. Received: "
                        f"{learning_rate_schedule!r} (of type {type(learning_rate_schedule).__name__})")
    cls = type(learning_rate_schedule)
    built_in = _BUILT_IN.get(cls.__name__) is cls
    return {"module": "keras.optimizers.schedules" if built_in else cls.__module__, "class_name": cls.__name__,
            "config": learning_rate_schedule.get_config(), "registered_name": None if built_in else cls.__name__}


def deserialize(config, custom_objects=None):
    """A schedule from :func:`serialize`'s dict; one's own classes come from ``custom_objects``
    (``{"MySchedule": MySchedule}``)."""
    name = config.get("class_name") if isinstance(config, dict) else None
    custom = dict(custom_objects or {})
    cls = custom.get(config.get("registered_name"), custom.get(name)) if name else None
    cls = cls or _BUILT_IN.get(name)
    if cls is None:
        raise ValueError(f"Could not interpret learning rate schedule: {config!r}. Pass your own classes with "
                         "custom_objects={'MySchedule': MySchedule}.")
    return cls.from_config(config.get("config", {}))
