"""The pytest-benchmark suite: `pytest benchmarks/ --benchmark-only` (not part of the default run).

FASTCONV_BENCH_QUICK=1 shrinks every case to a batch of 2 and at most 32x32 pixels (CI's smoke run).
"""
import os

import pytest

import contenders

QUICK = os.environ.get("FASTCONV_BENCH_QUICK", "") not in ("", "0")
ROUNDS = 3 if QUICK else 7


@pytest.fixture(scope="session")
def tf():
    """TensorFlow or None: without it only fastconv's contenders run (TensorFlow's are skipped)."""
    return contenders.load_tensorflow()


@pytest.fixture
def run(benchmark):
    """Time one contender the way bench_conv.py does: one warm-up, then ROUNDS single calls."""
    def timed(group, callables, name):
        if name not in callables:
            pytest.skip("TensorFlow is not installed")
        benchmark.group = group
        benchmark.pedantic(callables[name], rounds=ROUNDS, iterations=1, warmup_rounds=1)
    return timed
