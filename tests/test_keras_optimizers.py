"""fastconv.keras.optimizers and their schedules against Keras 3 on TensorFlow: the same
weights and gradients fed to both optimizers for several steps give the same weights (1e-6
relative), the schedules the same values, the configs the same keys and defaults."""
import re

import numpy as np
import pytest

from fastconv.keras import backend, optimizers
from fastconv.keras.layers.base import Variable
from fastconv.keras.optimizers import schedules

OPTIMIZER_CASES = [
    ("SGD", {}), ("SGD", dict(learning_rate=0.1, momentum=0.9)), ("SGD", dict(momentum=0.5, nesterov=True)),
    ("Adam", {}), ("Adam", dict(learning_rate=0.01, beta_1=0.8, epsilon=1e-4)), ("Adam", dict(amsgrad=True)),
    ("RMSprop", {}), ("RMSprop", dict(momentum=0.5)), ("RMSprop", dict(rho=0.8, centered=True)),
    ("AdamW", {}), ("AdamW", dict(learning_rate=0.01, weight_decay=0.1, amsgrad=True)),
    ("Nadam", {}), ("Nadam", dict(learning_rate=0.01, beta_1=0.8, beta_2=0.99)),
    ("Adamax", {}), ("Adamax", dict(learning_rate=0.02, epsilon=1e-3)),
    ("Adagrad", {}), ("Adagrad", dict(learning_rate=0.1, initial_accumulator_value=0.5)),
    ("Adadelta", {}), ("Adadelta", dict(learning_rate=1.0, rho=0.9)),
    ("Lion", {}), ("Lion", dict(learning_rate=0.01, beta_1=0.95, beta_2=0.98)),
    # The common arguments, on a few update rules.
    ("SGD", dict(learning_rate=0.1, weight_decay=0.05)), ("Adam", dict(clipnorm=0.5)),
    ("RMSprop", dict(global_clipnorm=0.3)), ("Nadam", dict(clipvalue=0.01)),
    ("Adam", dict(use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=3)),
    ("SGD", dict(learning_rate=0.1, momentum=0.9, gradient_accumulation_steps=3)),
    ("Nadam", dict(gradient_accumulation_steps=2, use_ema=True)),
]


def _steps(keras_optimizer, fastconv_optimizer, n_steps=8, seed=2, dtype=np.float32):
    """Feed both optimizers the same gradients on the same two weights; yield after each step."""
    import keras
    rng = np.random.default_rng(seed)
    shapes = [(5, 8), (8,)]
    starts = [rng.standard_normal(s).astype(dtype) for s in shapes]
    k_vars = [keras.Variable(w.copy(), name=n) for w, n in zip(starts, ("kernel", "bias"))]
    f_vars = [Variable(w.copy(), n) for w, n in zip(starts, ("kernel", "bias"))]
    for _ in range(n_steps):
        # Gradients over nine orders of magnitude, where the epsilons matter.
        grads = [(rng.standard_normal(s) * 10.0 ** rng.uniform(-9, 0, s)).astype(dtype) for s in shapes]
        keras_optimizer.apply_gradients(list(zip(grads, k_vars)))
        fastconv_optimizer.apply_gradients(list(zip(grads, f_vars)))
        yield k_vars, f_vars


@pytest.mark.parametrize("name, kwargs", OPTIMIZER_CASES)
def test_optimizers_match_keras_step_by_step(tf, name, kwargs):
    import keras
    k_opt, f_opt = getattr(keras.optimizers, name)(**kwargs), getattr(optimizers, name)(**kwargs)
    for k_vars, f_vars in _steps(k_opt, f_opt):
        for kv, fv in zip(k_vars, f_vars):
            np.testing.assert_allclose(fv.value, kv.numpy(), rtol=1e-6, atol=1e-7)
        assert f_opt.iterations == int(k_opt.iterations)
    k_opt.finalize_variable_values(k_vars)
    f_opt.finalize_variable_values(f_vars)
    for kv, fv in zip(k_vars, f_vars):
        np.testing.assert_allclose(fv.value, kv.numpy(), rtol=1e-6, atol=1e-7)
    # The same state, in the same order (Keras's unnamed variable is Nadam's momentum cache).
    assert [n for n, _ in f_opt.variables] == [re.sub(r"^variable(_\d+)?$", "u_product", v.name)
                                                 for v in k_opt.variables]
    for (n, arr), kv in zip(f_opt.variables, k_opt.variables):
        np.testing.assert_allclose(arr, kv.numpy(), rtol=1e-5, atol=1e-12, err_msg=n)


@pytest.mark.parametrize("name, kwargs", OPTIMIZER_CASES)
def test_optimizers_match_keras_in_float64(tf, name, kwargs):
    """float64 weights and floatx float64 (Keras's optimizer variables, the learning rate among
    them, follow floatx): the same weights to 2e-8, which sees the constants Keras rounds through
    float32 in Adam, Adamax and Lion (``ops.cast(beta_1, float64)`` of a Python number goes through
    a float32 tensor on TensorFlow: 7e-6 relative in Adam's first steps).  A few smaller roundings
    of Keras's (weight decay, Nadam's and Adagrad's constants: up to 4e-9) are left."""
    import keras

    from _helpers import floatx_of_both
    with floatx_of_both(keras, "float64"):
        k_opt, f_opt = getattr(keras.optimizers, name)(**kwargs), getattr(optimizers, name)(**kwargs)
        for k_vars, f_vars in _steps(k_opt, f_opt, dtype=np.float64):
            for kv, fv in zip(k_vars, f_vars):
                assert fv.value.dtype == np.float64
                np.testing.assert_allclose(fv.value, kv.numpy(), rtol=2e-8, atol=1e-15)


def test_weight_decay_exclusions_match_keras(tf):
    import keras
    k_opt, f_opt = keras.optimizers.AdamW(learning_rate=0.01), optimizers.AdamW(learning_rate=0.01)
    k_opt.exclude_from_weight_decay(var_names=["bias"])
    f_opt.exclude_from_weight_decay(var_names=["bias"])
    for k_vars, f_vars in _steps(k_opt, f_opt, n_steps=4):
        for kv, fv in zip(k_vars, f_vars):
            np.testing.assert_allclose(fv.value, kv.numpy(), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="before the optimizer is built"):
        f_opt.exclude_from_weight_decay(var_names=["kernel"])


SCHEDULE_CASES = [
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.8)),
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.8, staircase=True)),
    ("PiecewiseConstantDecay", dict(boundaries=[5, 12, 30], values=[1.0, 0.5, 0.1, 0.01])),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=20)),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=9, end_learning_rate=0.01, power=2.0,
                             cycle=True)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=5, decay_rate=0.5)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=5, decay_rate=0.5, staircase=True)),
    ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=25)),
    ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=25, alpha=0.1)),
    ("CosineDecay", dict(initial_learning_rate=0.0, decay_steps=20, warmup_target=0.2, warmup_steps=10,
                         alpha=0.05)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=6)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=5, t_mul=1.0, m_mul=0.5, alpha=0.1)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=4, t_mul=1.5, m_mul=0.8)),
]


@pytest.mark.parametrize("name, kwargs", SCHEDULE_CASES)
def test_schedules_match_keras(tf, name, kwargs):
    import keras
    k_schedule, f_schedule = getattr(keras.optimizers.schedules, name)(**kwargs), getattr(schedules, name)(**kwargs)
    steps = np.arange(60)
    if "warmup_target" in kwargs or name == "CosineDecayRestarts":
        # One step at a time, as optimizers call them (Keras's ops.cond takes scalars, and TensorFlow's
        # vectorised log and cos differ from its scalar ones by a few ulps, which restarts amplify).
        expected = np.array([float(k_schedule(tf.constant(s, dtype=tf.int64))) for s in steps])
    else:
        expected = np.asarray(k_schedule(tf.constant(steps, dtype=tf.int64)), dtype=np.float64)
    got = np.array([float(f_schedule(np.int64(s))) for s in steps])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)
    assert f_schedule.get_config() == k_schedule.get_config()
    assert schedules.serialize(f_schedule) == keras.optimizers.schedules.serialize(k_schedule)
    again = schedules.deserialize(schedules.serialize(f_schedule))
    assert type(again) is type(f_schedule) and again.get_config() == f_schedule.get_config()


def test_an_optimizer_follows_its_schedule_as_keras(tf):
    import keras
    kwargs = dict(initial_learning_rate=0.05, decay_steps=3, decay_rate=0.5, staircase=True)
    k_opt = keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(**kwargs), momentum=0.9)
    f_opt = optimizers.SGD(schedules.ExponentialDecay(**kwargs), momentum=0.9)
    for k_vars, f_vars in _steps(k_opt, f_opt, n_steps=8):
        assert f_opt.learning_rate == pytest.approx(float(k_opt.learning_rate), rel=1e-7)
        for kv, fv in zip(k_vars, f_vars):
            np.testing.assert_allclose(fv.value, kv.numpy(), rtol=1e-6, atol=1e-7)
    with pytest.raises(TypeError, match="not settable"):
        f_opt.learning_rate = 0.1
    config = f_opt.get_config()
    assert config["learning_rate"] == keras.optimizers.schedules.serialize(k_opt._learning_rate)
    again = optimizers.SGD.from_config(config)
    assert isinstance(again._learning_rate, schedules.ExponentialDecay)


class HalvingEvery(schedules.LearningRateSchedule):
    """A user's own schedule."""

    def __init__(self, rate, steps):
        self.rate, self.steps = rate, steps

    def __call__(self, step):
        return self.rate * 0.5 ** (step // self.steps)

    def get_config(self):
        return {"rate": self.rate, "steps": self.steps}


def test_a_schedule_of_ones_own():
    opt = optimizers.Adam(HalvingEvery(0.01, 2))
    v = Variable(np.zeros(3, np.float32), "w")
    rates = []
    for _ in range(5):
        rates.append(opt.learning_rate)
        opt.apply([np.ones(3, np.float32)], [v])
    np.testing.assert_allclose(rates, [0.01, 0.01, 0.005, 0.005, 0.0025], rtol=1e-7)
    again = optimizers.deserialize(optimizers.serialize(opt), custom_objects={"HalvingEvery": HalvingEvery})
    assert again._learning_rate.get_config() == {"rate": 0.01, "steps": 2}
    with pytest.raises(ValueError, match="custom_objects"):
        optimizers.deserialize(optimizers.serialize(opt))
    with pytest.raises(NotImplementedError, match="must override `__call__"):
        schedules.LearningRateSchedule()(0)


def test_configs_and_names_are_keras_ones(tf):
    import keras
    keras.backend.clear_session()
    backend.clear_session()
    for name in ("SGD", "Adam", "AdamW", "Nadam", "Adamax", "Adagrad", "Adadelta", "RMSprop", "Lion"):
        k_opt, f_opt = getattr(keras.optimizers, name)(), getattr(optimizers, name)()
        assert f_opt.get_config() == k_opt.get_config()
        # Named as Keras names them: "adam", then "adam_1"...
        assert (f_opt.name, getattr(optimizers, name)().name) == (k_opt.name, getattr(keras.optimizers, name)().name)
        assert optimizers.serialize(f_opt) == keras.optimizers.serialize(k_opt)
        again = optimizers.deserialize(optimizers.serialize(f_opt))
        assert type(again) is type(f_opt) and again.get_config() == f_opt.get_config()
        assert type(optimizers.get(name.lower())) is type(f_opt) and type(optimizers.get(name)) is type(f_opt)


def test_learning_rate_is_readable_and_assignable_as_in_keras(tf):
    import keras
    k_opt, f_opt = keras.optimizers.RMSprop(0.1), optimizers.RMSprop(0.1)
    k_opt.learning_rate = 0.3
    f_opt.learning_rate = 0.3
    assert f_opt.learning_rate == float(k_opt.learning_rate)  # float32, as Keras's variable
    assert f_opt.get_config()["learning_rate"] == k_opt.get_config()["learning_rate"]
    f_opt.learning_rate = np.float64(0.5)
    assert f_opt.learning_rate == 0.5
    # Keras gives a variable there: numpy() and assign() work too.
    k_opt.learning_rate.assign(0.25)
    f_opt.learning_rate.assign(0.25)
    assert f_opt.learning_rate.numpy() == k_opt.learning_rate.numpy()
    assert f_opt.learning_rate.numpy().dtype == np.float32
    with pytest.raises(ValueError, match="learning_rate"):
        f_opt.learning_rate = "fast"
    opt = optimizers.SGD(lambda: 0.25)  # a callable without arguments, as Keras allows
    assert opt.learning_rate == 0.25


def test_keras_2_spellings():
    with pytest.warns(DeprecationWarning, match="`lr` argument is deprecated"):
        opt = optimizers.SGD(lr=0.5)
    assert opt.learning_rate == 0.5
    # decay: tf.keras 2's lr / (1 + decay * iterations), applied from the next step on.
    with pytest.warns(DeprecationWarning, match="decay"):
        opt = optimizers.SGD(learning_rate=1.0, decay=0.5)
    v = Variable(np.zeros(1, np.float32), "w")
    for _ in range(3):
        opt.apply([np.ones(1, np.float32)], [v])
    np.testing.assert_allclose(v.value, [-(1 + 1 / 1.5 + 1 / 2.0)], rtol=1e-6)
    assert optimizers.SGD.from_config(opt.get_config()).decay == 0.5


def test_unsupported_and_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="does not implement loss_scale_factor"):
        optimizers.Adam(loss_scale_factor=128.0)
    with pytest.raises(ValueError, match="Only one of `clipnorm`, `clipvalue` and `global_clipnorm`"):
        optimizers.Adam(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match="gradient_accumulation_steps` must be an integer >= 2"):
        optimizers.Adam(gradient_accumulation_steps=1)
    with pytest.raises(ValueError, match="ema_momentum"):
        optimizers.Adam(use_ema=True, ema_momentum=1.5)
    with pytest.raises(ValueError, match="Argument\\(s\\) not recognized"):
        optimizers.Adam(betas=(0.9, 0.99))
    with pytest.raises(ValueError, match="weight_decay=None"):
        optimizers.AdamW(weight_decay=None)
    with pytest.raises(ValueError, match="momentum"):
        optimizers.SGD(momentum=1.5)
    with pytest.raises(ValueError, match="SignSGD"):
        optimizers.Lion(beta_1=0.0)
    with pytest.raises(ValueError, match="'ftrl' of keras.optimizers is not implemented"):
        optimizers.get("ftrl")
    with pytest.raises(ValueError, match="Could not interpret optimizer identifier: 'adamw2'"):
        optimizers.get("adamw2")
    with pytest.raises(ValueError, match="must already be built"):
        optimizers.SGD().apply([np.ones(2)])
    v = Variable(np.zeros(2, np.float32), "w")
    with pytest.raises(ValueError, match="No gradients provided for any variable"):
        optimizers.SGD().apply([None], [v])
    with pytest.warns(UserWarning, match=r"Gradients do not exist for variables \['u'\]"):
        optimizers.SGD().apply([np.ones(2), None], [v, Variable(np.zeros(1, np.float32), "u")])
    with pytest.raises(ValueError, match="decay_steps` must be > 0"):
        schedules.CosineDecay(0.1, 0)
    with pytest.raises(ValueError, match="boundaries should be 1 less"):
        schedules.PiecewiseConstantDecay([1, 2], [0.1, 0.2])
    assert optimizers.get(None) is None


def test_inputs_are_not_modified_and_state_round_trips():
    rng = np.random.default_rng(0)
    v = Variable(rng.standard_normal(6).astype(np.float32), "w")
    g = rng.standard_normal(6).astype(np.float32)
    g_copy = g.copy()
    opt = optimizers.Nadam(learning_rate=0.01, clipnorm=0.1)
    for _ in range(3):
        opt.apply_gradients([(g, v)])
    np.testing.assert_array_equal(g, g_copy)
    # A fresh optimizer given the saved state continues exactly as the first one.
    copy_v = Variable(v.value.copy(), "w")
    twin = optimizers.Nadam.from_config(opt.get_config())
    twin.build([copy_v])
    store = {}
    opt.save_own_variables(store)
    assert sorted(store) == [str(i) for i in range(5)]  # iteration, learning rate, m, v, u_product
    twin.load_own_variables(store)
    for _ in range(3):
        opt.apply_gradients([(g, v)])
        twin.apply_gradients([(g, copy_v)])
    np.testing.assert_array_equal(copy_v.value, v.value)
    # A saved model file holds the slots (state_arrays) and the iteration count.
    slots = optimizers.Adam().state_arrays([v])
    assert [a.shape for a in slots] == [(6,), (6,)]
    with pytest.warns(UserWarning, match="Skipping variable loading"):
        optimizers.Adam().load_own_variables({"0": np.array(3)})
