"""The lecture's malaria program (issue 4), verbatim but for its imports and the data it is given."""
import numpy as np
import pytest

pd = pytest.importorskip("pandas", reason="the lecture plots its history with pandas")
pytest.importorskip("matplotlib", reason="the lecture plots its history with pandas/matplotlib")


def test_lecture_malaria_program_runs_with_only_its_imports_changed(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from fastconv.datasets import malaria
    from fastconv.keras.backend import clear_session
    from fastconv.keras.utils import set_random_seed

    clear_session()          # a fresh notebook: the first Conv2D is named 'conv2d', as the lecture expects
    set_random_seed(0)
    data = malaria.synthetic(300, (100, 100), seed=3)
    X_train, y_train = data.images[:240], data.labels[:240]
    X_test, y_test = data.images[240:], data.labels[240:]
    cell = X_test[:1]

    # ---- the lecture's code; only these three imports differ from its tensorflow.keras ones ----
    from fastconv.keras import Sequential, Model
    from fastconv.keras.layers import Dense, Conv2D, MaxPooling2D, Flatten, Dropout
    from fastconv.keras.callbacks import EarlyStopping
    model = Sequential()
    model.add(Conv2D(filters=32, input_shape=(100, 100, 3), kernel_size=(3, 3), padding='same', activation='relu'))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Conv2D(64, kernel_size=(3, 3), activation='relu'))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Flatten()); model.add(Dropout(0.5)); model.add(Dense(1, activation='sigmoid'))  # noqa: E702 (the lecture's line)
    model.compile(loss='binary_crossentropy', optimizer='adam', metrics=['accuracy'])
    lines = []
    model.summary(print_fn=lines.append)  # the lecture calls model.summary(); captured here to check it
    history = model.fit(X_train, y_train, batch_size=100, epochs=50, validation_split=0.1,
                        callbacks=[EarlyStopping(monitor='val_loss', patience=5)], verbose=0)
    pd.DataFrame(history.history).plot()                      # loss, accuracy, val_loss, val_accuracy
    y_pred = (model.predict(X_test) > 0.5).astype(int).reshape(y_test.shape)
    W, b = model.get_layer('conv2d').get_weights()           # W.shape == (3, 3, 3, 32)
    feature_maps = Model(inputs=model.inputs, outputs=model.layers[0].output).predict(cell)  # (1, 100, 100, 32)
    # ---------------------------------------------------------------------------------------------

    assert "Total params: 56,257" in "\n".join(lines)
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert 1 <= len(history.history["loss"]) <= 50
    assert y_pred.shape == y_test.shape and set(np.unique(y_pred)) <= {0, 1}
    assert W.shape == (3, 3, 3, 32) and b.shape == (32,)
    assert feature_maps.shape == (1, 100, 100, 32) and feature_maps.min() >= 0   # after the ReLU
