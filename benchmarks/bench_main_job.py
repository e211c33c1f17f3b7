"""The main job against Keras: fastconv's augmented run of the lecture's malaria CNN against
Keras's plain run of the same CNN, on the same cells, in one process.

    python benchmarks/bench_main_job.py --data-dir ../shared/malaria     # 1.5-2 hours on 2 cores
    python benchmarks/bench_main_job.py --limit 400 --image-size 32 --epochs 2 --keras-epochs 2

fastconv: ``python -m fastconv.examples.malaria --augment`` (its own ``train``: the lecture's
ImageDataGenerator augmentation, whole training slides held out for early stopping, at most
--epochs epochs).  Keras on TensorFlow: the main job's plain run (no augmentation, the last 10%
of the training cells for validation, at most --keras-epochs epochs), the lecture's model and
fit arguments, Keras's own EarlyStopping with the same patience.  Same cells, same split by
slide (the test slides are never seen by either), the same batch size.

The two runs are two ``fit`` calls in two threads of this process that take turns epoch by
epoch (a callback passes the turn on at the end of each epoch and waits for it to come back), so
that the drift of a shared machine hits both alike while each library runs its own training loop
undisturbed; a thread that waits for its turn uses no CPU.  Each run's time is its thread's wall
time (model, fit, test predictions) minus the time it spent waiting.  Reported: epochs, the time
of each run, seconds per epoch, the accuracy on the test slides, and the ratio of the times.
"""
import argparse
import json
import os
import sys
import threading
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_training import malaria_cnn  # noqa: E402  (the lecture's model, Keras's own code)


class Turns:
    """Two workers that alternate: ``wait(me)`` blocks until it is ``me``'s turn (or the other
    has finished), ``done_with_turn(me)`` hands the turn over, ``finish(me)`` for good."""

    def __init__(self, first, second):
        self._other = {first: second, second: first}
        self._turn = first
        self._finished = set()
        self._condition = threading.Condition()
        self.waited = {first: 0.0, second: 0.0}

    def wait(self, me):
        started = time.perf_counter()
        with self._condition:
            while self._turn != me and self._other[me] not in self._finished:
                self._condition.wait()
        self.waited[me] += time.perf_counter() - started

    def done_with_turn(self, me):
        with self._condition:
            self._turn = self._other[me]
            self._condition.notify_all()
        self.wait(me)

    def finish(self, me):
        with self._condition:
            self._finished.add(me)
            self._turn = self._other[me]
            self._condition.notify_all()


def turn_callback(base, turns, me):
    """A callback of the Callback class ``base`` (Keras's or fastconv's) that hands the turn
    over at the end of every epoch (after the validation and the early stopping)."""
    class TakeTurns(base):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            print(f"{me:8s} epoch {epoch + 1:2d}: {time.perf_counter() - self.epoch_started:6.1f} s, "
                  f"loss {logs.get('loss', float('nan')):.4f}, val_loss {logs.get('val_loss', float('nan')):.4f}, "
                  f"val_accuracy {logs.get('val_accuracy', float('nan')):.4f}", flush=True)
            turns.done_with_turn(me)
    return TakeTurns()


def accuracy(model, x, y, batch_size):
    probabilities = np.asarray(model.predict(x, batch_size=batch_size, verbose=0)).reshape(y.shape)
    return float(np.mean((probabilities > 0.5).astype(y.dtype) == y))


def run_keras(turns, args, x_train, y_train, x_test, y_test, result):
    """Keras's plain run: the main job's fit without augmentation, Keras's own callbacks."""
    try:
        import keras     # imports are not timed, for either library

        turns.wait("keras")
        started, waited_before = time.perf_counter(), turns.waited["keras"]
        keras.utils.set_random_seed(args.seed)
        model = malaria_cnn(keras, x_train.shape[1])
        stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=args.patience,
                                                 restore_best_weights=True)
        history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.keras_epochs,
                            validation_split=0.1, verbose=0,
                            callbacks=[stopping, turn_callback(keras.callbacks.Callback, turns, "keras")])
        result.update(epochs=len(history.history["loss"]),
                      test_accuracy=accuracy(model, x_test, y_test, args.batch_size),
                      seconds=time.perf_counter() - started - (turns.waited["keras"] - waited_before),
                      keras_version=keras.__version__)
    except BaseException as error:     # reported by the main thread, which must not wait for ever
        result["error"] = repr(error)
    finally:
        turns.finish("keras")


def run_fastconv(turns, job_args, x_train, y_train, train_names, x_test, y_test):
    """The main job's augmented run, through the main job's own ``train``."""
    from fastconv.examples import malaria as job
    from fastconv.keras.backend import clear_session
    from fastconv.keras.callbacks import Callback
    from fastconv.keras.utils import set_random_seed

    turns.wait("fastconv")
    started, waited_before = time.perf_counter(), turns.waited["fastconv"]
    set_random_seed(job_args.seed)
    clear_session()
    model = job.build_model(x_train.shape[1:3])
    history = job.train(model, job_args, x_train, y_train, train_names,
                        callbacks=[turn_callback(Callback, turns, "fastconv")])
    result = dict(epochs=len(history.history["loss"]),
                  test_accuracy=accuracy(model, x_test, y_test, job_args.batch_size))
    turns.finish("fastconv")
    result["seconds"] = time.perf_counter() - started - (turns.waited["fastconv"] - waited_before)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="the malaria cells (default: $FASTCONV_MALARIA_DIR, else synthetic)")
    parser.add_argument("--limit", type=int, help="a balanced subset of this many cells")
    parser.add_argument("--image-size", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=40, help="fastconv's augmented run: at most this many")
    parser.add_argument("--keras-epochs", type=int, default=30, help="Keras's plain run: at most this many")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    from fastconv.examples import malaria as job

    job_argv = ["--augment", "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
                "--image-size", str(args.image_size), "--patience", str(args.patience), "--seed", str(args.seed),
                "--no-figures", "--verbose", "0"]
    if args.data_dir:
        job_argv += ["--data-dir", args.data_dir]
    if args.limit:
        job_argv += ["--limit", str(args.limit)]
    job_args = job.parse_args(job_argv)
    load_started = time.perf_counter()
    x, y, names, source = job.load_data(job_args)
    load_seconds = time.perf_counter() - load_started
    train_idx, test_idx = job.split(job_args, y, names)
    x_train, y_train, x_test, y_test = x[train_idx], y[train_idx], x[test_idx], y[test_idx]
    print(f"{len(x)} cells ({source}), loaded in {load_seconds:.1f} s; {len(x_train)} for training, "
          f"{len(x_test)} test cells of slides neither run sees", flush=True)

    load_before = os.getloadavg()[0]
    turns = Turns("keras", "fastconv")
    keras_result = {}
    keras_thread = threading.Thread(target=run_keras, name="keras-run",
                                    args=(turns, args, x_train, y_train, x_test, y_test, keras_result))
    keras_thread.start()
    try:
        fastconv_result = run_fastconv(turns, job_args, x_train, y_train, names[train_idx], x_test, y_test)
    finally:
        turns.finish("fastconv")
        keras_thread.join()
    if "error" in keras_result:
        raise RuntimeError(f"Keras's run failed: {keras_result['error']}")

    rows = [("fastconv, --augment", fastconv_result), ("Keras, plain", keras_result)]
    print(f"\n{'run':22s} {'epochs':>6s} {'seconds':>9s} {'s/epoch':>8s} {'test accuracy':>14s}")
    for name, r in rows:
        print(f"{name:22s} {r['epochs']:6d} {r['seconds']:9.1f} {r['seconds'] / r['epochs']:8.1f} "
              f"{r['test_accuracy']:14.4f}")
    ratio = fastconv_result["seconds"] / keras_result["seconds"]
    print(f"time of fastconv's augmented run / Keras's plain run: {ratio:.3f} "
          f"(load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; cells loaded once for both "
          f"in {load_seconds:.1f} s, not counted)")
    results = dict(fastconv=fastconv_result, keras=keras_result, ratio=ratio, cells=len(x),
                   n_train=len(x_train), n_test=len(x_test), source=source, load_seconds=load_seconds,
                   argv=sys.argv[1:] if argv is None else list(argv))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
