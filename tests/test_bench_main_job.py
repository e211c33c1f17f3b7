"""benchmarks/bench_main_job.py in its quick form: the main job's augmented run against Keras's
plain run, taking turns epoch by epoch in one process."""
import json
import threading

import numpy as np
import pytest

import bench_main_job as bench

QUICK = ["--limit", "600", "--image-size", "24", "--epochs", "3", "--keras-epochs", "2", "--patience", "1"]


def test_turns_alternate_and_count_only_the_waiting():
    turns = bench.Turns("a", "b")
    events = []

    def worker(me, steps):
        turns.wait(me)
        for step in range(steps):
            events.append((me, step))
            turns.done_with_turn(me)
        turns.finish(me)

    threads = [threading.Thread(target=worker, args=("a", 4)), threading.Thread(target=worker, args=("b", 2))]
    for t in threads[::-1]:          # b starts first and must still wait for a's turn
        t.start()
    for t in threads:
        t.join(timeout=30)
        assert not t.is_alive()
    # a, b, a, b, then a alone once b has finished
    assert events == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("a", 3)]
    assert turns.waited["b"] > 0 and turns.waited["a"] >= 0


def test_quick_run_reports_both_runs_and_runs_the_main_job_itself(tmp_path, keras, monkeypatch, capsys):
    monkeypatch.delenv("FASTCONV_MALARIA_DIR", raising=False)
    out = tmp_path / "results.json"
    results = bench.main(QUICK + ["--json", str(out)])
    printed = capsys.readouterr().out
    assert json.loads(out.read_text())["ratio"] == pytest.approx(results["ratio"])
    assert results["source"].startswith("SYNTHETIC") and results["cells"] == 600
    fastconv, keras_run = results["fastconv"], results["keras"]
    assert 1 <= fastconv["epochs"] <= 3 and 1 <= keras_run["epochs"] <= 2
    for run in (fastconv, keras_run):
        assert run["seconds"] > 0 and 0 <= run["test_accuracy"] <= 1
    assert results["ratio"] == pytest.approx(fastconv["seconds"] / keras_run["seconds"])
    # each epoch of each library printed once, the two taking turns from Keras's first epoch
    epoch_lines = [line.split()[0] for line in printed.splitlines() if " epoch " in line]
    assert epoch_lines.count("keras") == keras_run["epochs"] and epoch_lines.count("fastconv") == fastconv["epochs"]
    assert epoch_lines[:2] == ["keras", "fastconv"]

    # the fastconv side is the main job's augmented run: the same command gives the same accuracy
    from fastconv.examples import malaria as job

    alone = job.main(["--augment", "--limit", "600", "--image-size", "24", "--epochs", "3", "--patience", "1",
                      "--no-figures", "--verbose", "0"])
    assert alone["epochs"] == fastconv["epochs"]
    assert alone["accuracy"] == fastconv["test_accuracy"]
    assert np.isfinite(alone["history"]["val_loss"]).all()


def test_a_failing_keras_run_is_reported_not_waited_for(monkeypatch, keras):
    monkeypatch.delenv("FASTCONV_MALARIA_DIR", raising=False)

    def broken(*args, **kwargs):
        raise ValueError("no model today")

    monkeypatch.setattr(bench, "malaria_cnn", broken)
    with pytest.raises(RuntimeError, match="Keras's run failed: ValueError\\('no model today'\\)"):
        bench.main(QUICK)
