"""TensorFlow's ``tf.random.set_seed``, for programs that ``import fastconv as tf`` (Géron's notebooks
start every model with ``tf.random.set_seed(42)``)."""
import numbers


def set_seed(seed):
    """Seed the generator of fastconv.keras's initial weights, dropout masks, augmentation and
    ``fit`` shuffling, as ``tf.random.set_seed`` seeds TensorFlow's (Python's and NumPy's generators
    are left alone, as TensorFlow leaves them); ``None`` gives a fresh unseeded generator."""
    if seed is not None and (not isinstance(seed, numbers.Integral) or isinstance(seed, bool)):
        raise TypeError(f"tf.random.set_seed: `seed` must be an integer or None. Received: seed={seed!r} "
                        f"(of type {type(seed).__name__})")
    from fastconv.keras import backend  # loaded on first use: import fastconv stays light
    backend.seed_generator(None if seed is None else int(seed))


__all__ = ["set_seed"]
