"""benchmarks/bench_dataset.py in a small form: one epoch of image_dataset_from_directory, plain
and with the tutorials' augmentation mapped over it, fastconv's against Keras's."""
import numpy as np
import pytest

import bench_dataset as bench

PIL = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    root = tmp_path_factory.mktemp("cells")
    rng = np.random.default_rng(0)
    for cls in ("Parasitized", "Uninfected"):
        (root / cls).mkdir()
        for i in range(24):
            PIL.fromarray(rng.integers(0, 256, (60 + i, 70, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return root


@pytest.mark.parametrize("augment", [False, True])
def test_quick_run_times_both_libraries(cells, tf, capsys, augment):
    times = bench.main(["--data-dir", str(cells), "--rounds", "2"] + (["--augment"] if augment else []))
    printed = capsys.readouterr().out
    assert set(times) == {"fastconv", "keras"} and all(len(t) == 2 and min(t) > 0 for t in times.values())
    assert "ratio keras/fastconv" in printed
    assert ("RandomFlip, RandomRotation(0.1)" in printed) == augment


def test_the_augmented_epoch_changes_the_images_and_keeps_their_shapes(cells):
    import fastconv.keras as fk
    from fastconv.keras.image_dataset import image_dataset_from_directory

    plain = image_dataset_from_directory(str(cells), **bench.ARGS)
    augmented = bench.augmented(image_dataset_from_directory(str(cells), **bench.ARGS), fk)
    n = 0
    for (x, y), (xa, ya) in zip(plain, augmented):
        assert xa.shape == x.shape and xa.dtype == np.float32
        np.testing.assert_array_equal(ya, y)  # same files in the same order, labels untouched
        assert np.abs(xa - x).mean() > 1.0  # rotated (and flipped): the pixels moved
        n += len(x)
    assert n == 48
