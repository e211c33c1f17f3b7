"""fastconv.keras.callbacks against Keras 3: the learning-rate callbacks change the rate at the
same epochs on the same logs, ModelCheckpoint saves the same files, TensorBoard writes event files
that TensorFlow reads back with the logged values, and BackupAndRestore resumes a training killed
at a random moment to the very same weights as an uninterrupted run."""
import importlib.util
import os
import signal
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

from fastconv import keras as fk
from fastconv.keras import callbacks as C
from fastconv.keras import optimizers
from _helpers import child_env, run_python


class _FakeModel:
    """What the callbacks touch: an optimizer, stop_training, metrics, save/save_weights."""

    def __init__(self, optimizer=None):
        self.optimizer = optimizer
        self.stop_training = False
        self.metrics = []
        self.saved = []

    def save(self, filepath, overwrite=True):
        self.saved.append(os.path.basename(filepath))

    save_weights = save


def _learning_rates(callback, model, losses):
    """Run the callback over one epoch per loss; the learning rate at the end of each epoch."""
    callback.set_model(model)
    callback.on_train_begin()
    rates, logged = [], []
    for epoch, loss in enumerate(losses):
        callback.on_epoch_begin(epoch)
        logs = {"loss": loss, "val_loss": loss, "val_accuracy": -loss}
        callback.on_epoch_end(epoch, logs)
        rates.append(float(model.optimizer.learning_rate))
        logged.append(logs.get("learning_rate"))
    return rates, logged


PLATEAU_CASES = [
    (dict(patience=1), [1.0, 0.9, 0.95, 0.97, 0.5, 0.6, 0.7, 0.8]),
    (dict(patience=2, factor=0.5, cooldown=2), [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
    (dict(patience=0, factor=0.2, min_lr=0.003), [1.0, 1.1, 1.2, 1.3, 1.4, 1.5]),
    (dict(patience=1, min_delta=0.1), [1.0, 0.95, 0.92, 0.7, 0.69, 0.68]),
    (dict(monitor="val_accuracy", mode="max", patience=1), [1.0, 0.9, 0.95, 0.97, 0.5]),
]


@pytest.mark.parametrize("kwargs, losses", PLATEAU_CASES)
def test_reduce_lr_on_plateau_matches_keras(tf, kwargs, losses):
    import keras
    expected = _learning_rates(keras.callbacks.ReduceLROnPlateau(**kwargs),
                               _FakeModel(keras.optimizers.SGD(0.1)), losses)
    got = _learning_rates(C.ReduceLROnPlateau(**kwargs), _FakeModel(optimizers.SGD(0.1)), losses)
    assert got == expected


def _schedule_of_epoch(epoch):
    return 0.1 * 0.5 ** (epoch // 2)


def _schedule_of_epoch_and_rate(epoch, lr):
    return lr if epoch < 2 else lr * 0.9


@pytest.mark.parametrize("schedule", [_schedule_of_epoch, _schedule_of_epoch_and_rate])
def test_learning_rate_scheduler_matches_keras(tf, schedule):
    import keras
    losses = [1.0] * 6
    expected = _learning_rates(keras.callbacks.LearningRateScheduler(schedule), _FakeModel(keras.optimizers.Adam(0.1)),
                               losses)
    got = _learning_rates(C.LearningRateScheduler(schedule), _FakeModel(optimizers.Adam(0.1)), losses)
    assert got == expected
    with pytest.raises(ValueError, match="should be a float"):
        _learning_rates(C.LearningRateScheduler(lambda epoch: "0.1"), _FakeModel(optimizers.Adam(0.1)), losses)


def _data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 1.5], np.float32) > 0).astype(np.float32)
    return x, y


def test_lr_callbacks_in_fit_are_recorded_in_the_history():
    fk.utils.set_random_seed(0)
    model = fk.Sequential([fk.layers.Input((4,)), fk.layers.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer=optimizers.SGD(0.5))
    x, y = _data()
    history = model.fit(x, y, epochs=4, batch_size=8, verbose=0,
                        callbacks=[C.LearningRateScheduler(lambda epoch: 0.5 / (epoch + 1))])
    np.testing.assert_allclose(history.history["learning_rate"], [0.5, 0.25, 0.5 / 3, 0.125], rtol=1e-7)


def test_callbacks_together_in_fit_as_keras(tf, tmp_path):
    """ReduceLROnPlateau's learning_rate reaches History and CSVLogger as in Keras (the user's
    callbacks see the logs before History)."""
    import keras
    x, y = _data(40)
    kernel = np.array([[0.3], [-0.2], [0.1], [0.4]], np.float32)
    runs = []
    for name, K in (("keras", keras), ("fastconv", fk)):
        model = K.Sequential([K.layers.Input((4,)), K.layers.Dense(1, activation="sigmoid")])
        model.set_weights([kernel, np.zeros(1, np.float32)])
        model.compile(loss="binary_crossentropy", optimizer=K.optimizers.SGD(0.5), metrics=["accuracy"])
        history = model.fit(x, y, batch_size=8, epochs=4, validation_split=0.25, shuffle=False, verbose=0,
                            callbacks=[K.callbacks.ReduceLROnPlateau(patience=0, factor=0.5, min_delta=0.5),
                                       K.callbacks.CSVLogger(tmp_path / f"{name}.csv")])
        runs.append((history.history, (tmp_path / f"{name}.csv").read_text().splitlines()))
    (k_history, k_csv), (f_history, f_csv) = runs
    assert sorted(f_history) == sorted(k_history) and "learning_rate" in f_history
    for key in k_history:
        np.testing.assert_allclose(f_history[key], k_history[key], rtol=1e-5, err_msg=key)
    assert f_csv[0] == k_csv[0] and len(f_csv) == len(k_csv) == 5


def test_model_checkpoint_saves_the_files_keras_saves(tf):
    import keras
    logs = [0.9, 0.8, 0.85, 0.7, 0.75]
    for kwargs in (dict(filepath="m-{epoch:02d}-{val_loss:.2f}.keras"),
                   dict(filepath="best-{epoch:02d}.keras", save_best_only=True),
                   dict(filepath="best.weights.h5", save_best_only=True, save_weights_only=True,
                        initial_value_threshold=0.82),
                   dict(filepath="acc-{epoch}.keras", monitor="val_accuracy", save_best_only=True, mode="max"),
                   dict(filepath="b-{epoch}-{batch}.keras", save_freq=3)):
        saved = []
        for module in (keras.callbacks, C):
            model = _FakeModel()
            callback = module.ModelCheckpoint(**kwargs)
            callback.set_model(model)
            callback.on_train_begin()
            for epoch, loss in enumerate(logs):
                callback.on_epoch_begin(epoch)
                for batch in range(2):
                    callback.on_train_batch_end(batch, {"loss": loss})
                callback.on_epoch_end(epoch, {"loss": loss, "val_loss": loss, "val_accuracy": 1 - loss})
            saved.append(model.saved)
        assert saved[1] == saved[0], kwargs
    with pytest.warns(UserWarning, match="Can save best model only with val_auc available"):
        model = _FakeModel()
        callback = C.ModelCheckpoint("x.keras", monitor="val_auc", mode="max", save_best_only=True)
        callback.set_model(model)
        callback.on_epoch_end(0, {"val_loss": 1.0})
    assert model.saved == ["x.keras"]  # as Keras: saved anyway
    with pytest.raises(ValueError, match="must end in `.weights.h5`"):
        C.ModelCheckpoint("w.keras", save_weights_only=True)
    with pytest.raises(ValueError, match="must end in `.keras`"):
        C.ModelCheckpoint("model.npz")
    with pytest.raises(ValueError, match="Unrecognized save_freq"):
        C.ModelCheckpoint("m.keras", save_freq="batch")
    callback = C.ModelCheckpoint("m-{val_auc}.keras")
    callback.set_model(_FakeModel())
    with pytest.raises(KeyError, match="Failed to format this callback filepath"):
        callback.on_epoch_end(0, {"val_loss": 1.0})


def test_csv_logger_appends_under_one_header(tmp_path):
    path = tmp_path / "log.csv"
    for run in range(2):
        logger = C.CSVLogger(path, append=True)
        logger.set_model(_FakeModel())
        logger.on_train_begin()
        for epoch in range(2):
            logger.on_epoch_end(epoch, {"loss": run + epoch / 10, "sizes": [1, 2]})
        logger.on_train_end()
    lines = path.read_text().splitlines()
    sizes = '"""[1, 2]"""'  # a list value, quoted as Keras quotes it
    assert lines == ["epoch,loss,sizes,val_loss,val_sizes", f"0,0.0,{sizes},NA,NA", f"1,0.1,{sizes},NA,NA",
                     f"0,1.0,{sizes},NA,NA", f"1,1.1,{sizes},NA,NA"]


def test_progress_bar_prints_epochs_only_when_there_are_several(capsys):
    model = fk.Sequential([fk.layers.Input((4,)), fk.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    x, y = _data(8)
    model.fit(x, y, epochs=1, verbose=2)
    assert not capsys.readouterr().out.startswith("Epoch")  # Keras 3 prints "Epoch 1/1" no more
    model.fit(x, y, epochs=2, verbose=2, callbacks=[C.ProgbarLogger()])  # one progress bar, not two
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line.startswith("Epoch")] == ["Epoch 1/2", "Epoch 2/2"] and len(lines) == 4


def test_swap_ema_weights_matches_keras(tf):
    import keras
    x, y = _data(40)
    kernel = np.array([[0.3], [-0.2], [0.1], [0.4]], np.float32)
    results = []
    for K in (keras, fk):
        runs = []
        for callbacks in ([], [K.callbacks.SwapEMAWeights(swap_on_epoch=True)]):
            model = K.Sequential([K.layers.Input((4,)), K.layers.Dense(1, activation="sigmoid")])
            model.set_weights([kernel, np.zeros(1, np.float32)])
            model.compile(loss="binary_crossentropy", optimizer=K.optimizers.Adam(0.05, use_ema=True, ema_momentum=0.8))
            history = model.fit(x, y, batch_size=8, epochs=3, validation_split=0.25, shuffle=False, verbose=0,
                                callbacks=callbacks)
            runs.append((history.history["val_loss"], model.get_weights()))
        results.append(runs)
    for (k_val, k_weights), (f_val, f_weights) in zip(*results):
        np.testing.assert_allclose(f_val, k_val, rtol=1e-5)
        for kw, fw in zip(k_weights, f_weights):
            np.testing.assert_allclose(fw, kw, rtol=1e-5, atol=1e-7)
    assert not np.allclose(results[1][0][0], results[1][1][0], rtol=1e-3)  # the averages validate otherwise
    with pytest.raises(ValueError, match="use_ema=True"):
        model = fk.Sequential([fk.layers.Input((4,)), fk.layers.Dense(1)])
        model.compile(loss="mse", optimizer="adam")
        model.fit(x, y, epochs=1, verbose=0, validation_split=0.5, callbacks=[C.SwapEMAWeights()])


# ----------------------------------------------------------------------------------- TensorBoard
def _scalars(folder, tf):
    """{tag: [(step, value)]} of a folder's event files, as TensorBoard's loader reads them
    (fastconv's scalars are simple values, Keras's float tensors; a string tensor gives "text")."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0, "histograms": 0})
    events.Reload()
    out = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    for tag in events.Tags()["tensors"]:
        values = [(e.step, tf.make_ndarray(e.tensor_proto)) for e in events.Tensors(tag)]
        out[tag] = [(step, "text" if v.dtype == object else float(v)) for step, v in values]
    out.update({f"{tag} (histogram)": [(e.step, "histogram") for e in events.Histograms(tag)]
                for tag in events.Tags()["histograms"]})
    return out


def test_tensorboard_writes_what_keras_writes(tf, tmp_path):
    pytest.importorskip("tensorboardX")
    pytest.importorskip("tensorboard")  # Keras's TensorBoard callback and TensorBoard's event reader
    import keras
    x, y = _data(20)
    kernel = np.array([[0.3], [-0.2], [0.1], [0.4]], np.float32)
    results = {}
    for name, K in (("keras", keras), ("fastconv", fk)):
        model = K.Sequential([K.layers.Input((4,)), K.layers.Dense(1, activation="sigmoid")])
        model.set_weights([kernel, np.zeros(1, np.float32)])
        model.compile(loss="binary_crossentropy", optimizer=K.optimizers.SGD(0.1), metrics=["accuracy"])
        board = K.callbacks.TensorBoard(log_dir=tmp_path / name, update_freq=2, write_steps_per_second=True)
        history = model.fit(x, y, batch_size=4, epochs=3, validation_split=0.2, shuffle=False, verbose=0,
                            callbacks=[K.callbacks.LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1)), board])
        results[name] = {which: _scalars(tmp_path / name / which, tf) for which in ("train", "validation")}
        results[name]["history"] = history.history
    keras_run, ours = results["keras"], results["fastconv"]
    for which in ("train", "validation"):
        assert sorted(ours[which]) == sorted(keras_run[which])
        for tag, points in keras_run[which].items():
            assert [s for s, _ in ours[which][tag]] == [s for s, _ in points], tag
            if not isinstance(points[0][1], str) and "steps_per_second" not in tag:  # timings differ
                np.testing.assert_allclose([v for _, v in ours[which][tag]], [v for _, v in points], rtol=1e-5,
                                           err_msg=tag)
    assert {"epoch_steps_per_second", "batch_steps_per_second"} <= set(ours["train"])
    # The values are the logged ones.
    np.testing.assert_allclose([v for _, v in ours["train"]["epoch_loss"]], ours["history"]["loss"], rtol=1e-6)
    np.testing.assert_allclose([v for _, v in ours["validation"]["epoch_loss"]], ours["history"]["val_loss"],
                               rtol=1e-6)
    np.testing.assert_allclose([v for _, v in ours["train"]["epoch_learning_rate"]], [0.1, 0.05, 0.1 / 3], rtol=1e-6)


def test_tensorboard_histograms_and_refusals(tmp_path, monkeypatch):
    pytest.importorskip("tensorboardX")
    model = fk.Sequential([fk.layers.Input((4,)), fk.layers.Dense(2, name="dense")])
    model.compile(loss="mse", optimizer="sgd")
    x, y = _data(8)
    model.fit(x, np.stack([y, y], 1), epochs=2, verbose=0,
              callbacks=[C.TensorBoard(tmp_path, histogram_freq=1, write_graph=False)])
    if importlib.util.find_spec("tensorboard") is not None:
        tags = _scalars(tmp_path / "train", None)
        assert {t: s for t, s in tags.items() if "histogram" in t} == {
            f"dense/{w}/histogram (histogram)": [(0, "histogram"), (1, "histogram")] for w in ("kernel", "bias")}
    with pytest.raises(ValueError, match="write_images is not implemented"):
        C.TensorBoard(tmp_path, write_images=True)
    with pytest.raises(ValueError, match="profile_batch is not implemented"):
        C.TensorBoard(tmp_path, profile_batch=2)
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match="pip install tensorboardX"):
        C.TensorBoard(tmp_path)


# ----------------------------------------------------------------------------- BackupAndRestore
_TRAINING = textwrap.dedent("""
    import os, signal, sys, threading, time, numpy as np
    from fastconv import keras as fk
    backup_dir, out, epochs, kill_after = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    fk.utils.set_random_seed(7)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 6)).astype(np.float32)
    y = (x[:, :3].sum(1) > x[:, 3:].sum(1)).astype(np.float32)
    model = fk.Sequential([fk.layers.Input((6,)), fk.layers.Dense(16, activation="relu"), fk.layers.Dropout(0.3),
                           fk.layers.Dense(8, activation="relu"), fk.layers.Dropout(0.2, seed=3),
                           fk.layers.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer=fk.optimizers.Nadam(0.01), metrics=["accuracy"])

    class Announce(fk.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start = time.perf_counter()
            if kill_after >= 0:  # SIGKILL at that moment, wherever the training is (even mid-write)
                timer = threading.Timer(kill_after, os.kill, (os.getpid(), signal.SIGKILL))
                timer.daemon = True
                timer.start()

        def on_epoch_begin(self, epoch, logs=None):
            print(epoch, flush=True)

        def on_train_end(self, logs=None):
            print("seconds", time.perf_counter() - self.start, flush=True)

    # Callbacks with a state across epochs, which the backup keeps too.
    callbacks = [Announce(), fk.callbacks.ReduceLROnPlateau(monitor="loss", patience=1, factor=0.9, min_delta=0.5),
                 fk.callbacks.EarlyStopping(monitor="val_loss", patience=4, restore_best_weights=True)]
    if backup_dir != "-":
        callbacks.append(fk.callbacks.BackupAndRestore(backup_dir))
    model.fit(x, y, batch_size=8, epochs=epochs, validation_split=0.25, callbacks=callbacks, verbose=0)
    np.savez(out, *model.get_weights(), lr=model.optimizer.learning_rate, iterations=model.optimizer.iterations)
""")


def _child(tmp_path, backup_dir, out, epochs, kill_after=-1.0):
    """Run the training in a child process; (return code, epochs it ran, seconds of fit)."""
    run = run_python(_TRAINING, backup_dir, out, epochs, kill_after, env=child_env(OMP_NUM_THREADS="1"),
                     cwd=tmp_path)
    lines = run.stdout.split("\n")
    epochs_run = [int(line) for line in lines if line.isdigit()]
    seconds = [float(line.split()[1]) for line in lines if line.startswith("seconds")]
    return run.returncode, epochs_run, seconds[0] if seconds else None


def test_backup_and_restore_resumes_a_killed_training_bitwise(tmp_path):
    epochs = 12
    code, reference_epochs, seconds = _child(tmp_path, "-", tmp_path / "reference.npz", epochs)
    assert code == 0 and len(reference_epochs) >= 3  # EarlyStopping may end it before 12
    rng = np.random.default_rng(int(time.time()))
    backup, resumed = tmp_path / "backup", tmp_path / "resumed.npz"
    kills = 0
    for _ in range(2):  # a second kill lands in a resumed run
        code, _, _ = _child(tmp_path, backup, resumed, epochs, kill_after=rng.uniform(0, 0.9 * seconds))
        if code == -signal.SIGKILL:
            kills += 1
            assert not resumed.exists()
        else:  # the machine ran faster than the reference: the run completed before its kill
            assert code == 0
            resumed.unlink()
    assert kills >= 1
    code, resumed_epochs, _ = _child(tmp_path, backup, resumed, epochs)
    assert code == 0 and resumed_epochs[-1] == reference_epochs[-1]
    assert not backup.exists()  # deleted at the end of a complete training
    with np.load(tmp_path / "reference.npz") as a, np.load(resumed) as b:
        assert sorted(a) == sorted(b)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_backup_and_restore_state_and_refusals(tmp_path):
    with pytest.raises(ValueError, match="backs up at epoch ends only"):
        C.BackupAndRestore(tmp_path, save_freq=10)
    with pytest.raises(ValueError, match="Empty `backup_dir`"):
        C.BackupAndRestore("")
    fk.utils.set_random_seed(1)
    model = fk.Sequential([fk.layers.Input((4,)), fk.layers.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer=optimizers.Adam(0.01))
    x, y = _data()
    callback = C.BackupAndRestore(tmp_path / "b", double_checkpoint=True, delete_checkpoint=False)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[callback])
    assert sorted(os.listdir(tmp_path / "b")) == ["latest.backup.npz", "latest.backup.npz.bkp"]
    # A latest backup that cannot be read: the previous one is used (epoch 1 done, one to go).
    latest = tmp_path / "b" / "latest.backup.npz"
    latest.write_bytes(latest.read_bytes()[:300])  # a truncated file (a disk that lost its end)
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y, epochs=2, verbose=0,
                  callbacks=[callback, C.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(epoch))])
    assert seen == [1]
    # Ctrl-C: fit runs on_train_end and raises; the backup stays for the next run to resume.
    def interrupt(epoch, logs):
        if epoch == 1:
            raise KeyboardInterrupt

    stopping = C.BackupAndRestore(tmp_path / "c")
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=4, verbose=0, callbacks=[stopping, C.LambdaCallback(on_epoch_end=interrupt)])
    assert os.listdir(tmp_path / "c") == ["latest.backup.npz"]
    seen.clear()
    model.fit(x, y, epochs=4, verbose=0,
              callbacks=[stopping, C.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(epoch))])
    assert seen == [2, 3] and not (tmp_path / "c").exists()
    other = fk.Sequential([fk.layers.Input((4,)), fk.layers.Dense(1)])
    other.compile(loss="mse", optimizer="sgd")
    with pytest.raises(ValueError, match="made with the optimizer Adam"):
        other.fit(x, y, epochs=1, verbose=0, callbacks=[C.BackupAndRestore(tmp_path / "b")])
